"""Strict checks of model specs: each raises :class:`~latentflow.errors.ManifestError` naming the entry, the
field, what was expected and what came. :func:`validate_entry` checks a G/D pair (a manifest entry, an
exported folder); :mod:`latentflow.models.trained` checks training folders of other kinds with the same
field checkers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from ..errors import ManifestError, OptionError
from ..nets import ARCHITECTURES
from .sampling import CALIBRATION_KEYS, split_calibration
from .spec import PAIR_READERS, READERS, ROLES, ArchSpec, FileRef, ModelEntry

__all__ = [
    "SOURCE_KINDS",
    "ALL_SOURCE_KINDS",
    "D_OUTPUTS",
    "PRIORS",
    "validate_source",
    "validate_file",
    "validate_arch",
    "validate_output",
    "validate_files",
    "validate_sampling",
    "validate_entry",
]

SOURCE_KINDS = ("bundled", "hub", "url")
#: kinds ``resolve`` also makes for refs that are not manifest names (never valid inside the manifest)
ALL_SOURCE_KINDS = SOURCE_KINDS + ("local",)
D_OUTPUTS = ("logit", "prob", "critic")
PRIORS = ("normal", "uniform")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


# -------------------------------------------------------------------------------------------------
# validation
# -------------------------------------------------------------------------------------------------


def _fail(where: str, msg: str):
    raise ManifestError(f"{where}: {msg}")


def _mapping(x, where: str) -> Mapping:
    if not isinstance(x, Mapping):
        _fail(where, f"expected a mapping; got {type(x).__name__} {x!r}")
    return x


def _keys(m: Mapping, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in m]
    if missing:
        _fail(where, f"missing field(s) {', '.join(missing)}")
    unknown = sorted(set(map(str, m)) - set(required) - set(optional))
    if unknown:
        _fail(where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(required + optional)}")


def _opt_str(x, where: str) -> str | None:
    if x is not None and not isinstance(x, str):
        _fail(where, f"expected a string or null; got {type(x).__name__} {x!r}")
    return x


def _int(x, where: str, minimum: int = 1) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x < minimum:
        _fail(where, f"expected an integer >= {minimum}; got {x!r}")
    return x


def _check_relpath(p, where: str) -> str:
    if not isinstance(p, str) or not p:
        _fail(where, f"expected a non-empty relative path; got {p!r}")
    pp = PurePosixPath(p)
    if pp.is_absolute() or ".." in pp.parts or "\\" in p:
        _fail(where, f"expected a relative path without '..'; got {p!r}")
    return p


def validate_source(
    src, where: str, *, allow_sources: tuple[str, ...] = SOURCE_KINDS, pinned_revision: bool = True
) -> dict:
    src = _mapping(src, where)
    kind = src.get("kind")
    if kind not in allow_sources:
        _fail(f"{where}.kind", f"expected one of {', '.join(allow_sources)}; got {kind!r}")
    if kind == "bundled":
        _keys(src, where, ("kind",))
    elif kind == "local":
        _keys(src, where, ("kind", "root"))
    elif kind == "hub":
        _keys(src, where, ("kind", "repo_id", "revision"))
        if not isinstance(src["repo_id"], str) or not _REPO_ID.match(src["repo_id"]):
            _fail(f"{where}.repo_id", f"expected owner/repo; got {src['repo_id']!r}")
        if not isinstance(src["revision"], str) or (pinned_revision and not _HEX40.match(src["revision"])):
            _fail(
                f"{where}.revision",
                "expected a full 40-hex commit id (never a branch name, so the files "
                f"cannot change under the pinned hashes); got {src['revision']!r}",
            )
    else:
        _keys(src, where, ("kind", "base_url"))
        if not isinstance(src["base_url"], str) or not src["base_url"].startswith("https://"):
            _fail(f"{where}.base_url", f"expected an https:// URL; got {src['base_url']!r}")
    return dict(src)


def validate_file(f, where: str, *, local: bool = False) -> FileRef:
    f = _mapping(f, where)
    _keys(f, where, ("path",), ("sha256", "bytes"))
    if local:
        if not isinstance(f["path"], str) or not f["path"]:
            _fail(f"{where}.path", f"expected a file path; got {f['path']!r}")
        path = f["path"]
    else:
        path = _check_relpath(f["path"], f"{where}.path")
    sha = f.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _HEX64.match(sha)):
        _fail(f"{where}.sha256", f"expected 64 lowercase hex digits or null; got {sha!r}")
    size = f.get("bytes")
    if size is not None:
        _int(size, f"{where}.bytes")
    return FileRef(path, sha, size)


def validate_arch(a, where: str, check_registry: bool = True) -> ArchSpec:
    a = _mapping(a, where)
    _keys(a, where, ("name",), ("kwargs",))
    name = a["name"]
    if not isinstance(name, str):
        _fail(f"{where}.name", f"expected an architecture name; got {name!r}")
    if check_registry:
        if name not in ARCHITECTURES:
            _fail(f"{where}.name", f'unknown architecture "{name}"; available: {", ".join(sorted(ARCHITECTURES))}')
    kwargs = a.get("kwargs") or {}
    kwargs = dict(_mapping(kwargs, f"{where}.kwargs"))
    return ArchSpec(name, kwargs)


def validate_output(o, where: str) -> dict:
    o = _mapping(o, where)
    _keys(o, where, (), ("shape", "channels", "size", "range"))
    if "shape" in o and ("channels" in o or "size" in o):
        _fail(where, "give either shape or channels + size, not both")
    if "channels" in o or "size" in o:
        if "channels" not in o or "size" not in o:
            _fail(where, "channels and size go together")
        shape = [
            _int(o["channels"], f"{where}.channels"),
            _int(o["size"], f"{where}.size"),
            _int(o["size"], f"{where}.size"),
        ]
    else:
        shape = o.get("shape")
        if shape is not None:
            if not isinstance(shape, (list, tuple)) or not shape:
                _fail(f"{where}.shape", f"expected a non-empty list of positive integers or null; got {shape!r}")
            shape = [_int(s, f"{where}.shape") for s in shape]
    rng = o.get("range")
    if rng is not None:
        if (
            not isinstance(rng, (list, tuple))
            or len(rng) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)
            or rng[0] >= rng[1]
        ):
            _fail(f"{where}.range", f"expected [low, high] with low < high, or null; got {rng!r}")
        rng = [float(rng[0]), float(rng[1])]
    return {"shape": shape, "range": rng}


def validate_sampling(s, where: str, check_methods: bool = True) -> dict:
    if s is None:
        return {}
    s = _mapping(s, where)
    known = None
    if check_methods:  # the samplers' registry (plug-ins included) says which methods and options exist
        from ..samplers import methods

        known = {name: set(info.options) for name, info in methods().items()}
    out = {}
    for method, opts in s.items():
        if known is not None and method not in known:
            _fail(f"{where}.{method}", f"unknown method; available: {', '.join(known)}")
        opts = dict(_mapping(opts or {}, f"{where}.{method}"))
        try:
            split_calibration(opts, f"{where}.{method}")
        except OptionError as e:  # its message names the block and the key
            raise ManifestError(str(e)) from None
        if known is not None:
            bad = sorted(set(opts) - known[method] - set(CALIBRATION_KEYS))
            if bad:
                _fail(
                    f"{where}.{method}",
                    f"unknown option(s) {', '.join(bad)}; valid: {', '.join(sorted(known[method]))}",
                )
        for k, v in opts.items():
            if not isinstance(v, (int, float, str, bool, type(None), list)):
                _fail(f"{where}.{method}.{k}", f"expected a scalar or list; got {type(v).__name__}")
        out[str(method)] = opts
    return out


_ENTRY_REQUIRED = ("source", "files", "arch", "latent", "output", "d_output")
_ENTRY_OPTIONAL = ("license", "citation", "recipe", "verified", "sampling", "dataset", "reader")


def validate_files(raw_files, reader: str, where: str, *, local: bool = False) -> dict[str, FileRef]:
    """``{G: FileRef, D: FileRef}``: from ``files: {G: ..., D: ...}``, or, with a reader of files holding both
    networks (``reader: xyfjason``), from ``files: {GD: ...}`` (G and D then share one FileRef)."""
    files = _mapping(raw_files, f"{where}.files")
    if reader in PAIR_READERS:
        if set(files) & set(ROLES):
            _fail(
                f"{where}.files",
                f"reader {reader!r} reads G and D from one file: give files: {{GD: {{path, "
                f"sha256, bytes}}}}, not separate G/D files; got keys {sorted(map(str, files))}",
            )
        _keys(files, f"{where}.files", ("GD",))
        f = validate_file(files["GD"], f"{where}.files.GD", local=local)
        return {"G": f, "D": f}
    if "GD" in files:
        _fail(
            f"{where}.files",
            f"files.GD (one file holding G and D) needs a reader that reads both: reader: "
            f"{' | '.join(PAIR_READERS)}; got reader {reader!r}",
        )
    _keys(files, f"{where}.files", ROLES)
    return {r: validate_file(files[r], f"{where}.files.{r}", local=local) for r in ROLES}


def validate_entry(
    name: str,
    raw,
    *,
    check_registry: bool = True,
    allow_sources: tuple[str, ...] = SOURCE_KINDS,
    pinned_revision: bool = True,
) -> ModelEntry:
    """Check one manifest entry and build its :class:`ModelEntry`; raise ``ManifestError`` on the first problem."""
    where = f'manifest entry "{name}"'
    if not isinstance(name, str) or not _NAME.match(name):
        _fail(where, "model names are lowercase letters, digits, '.', '_' and '-' (like grid25-wgangp)")
    raw = _mapping(raw, where)
    _keys(raw, where, _ENTRY_REQUIRED, _ENTRY_OPTIONAL)
    source = validate_source(
        raw["source"], f"{where}.source", allow_sources=allow_sources, pinned_revision=pinned_revision
    )
    reader = raw.get("reader", "state_dict")
    if reader not in READERS:
        _fail(f"{where}.reader", f"expected one of {', '.join(READERS)}; got {reader!r}")
    files = validate_files(raw["files"], reader, where, local=source["kind"] == "local")
    arch = _mapping(raw["arch"], f"{where}.arch")
    _keys(arch, f"{where}.arch", ROLES)
    arch = {r: validate_arch(arch[r], f"{where}.arch.{r}", check_registry) for r in ROLES}
    latent = _mapping(raw["latent"], f"{where}.latent")
    _keys(latent, f"{where}.latent", ("dim",), ("prior",))
    latent = {"dim": _int(latent["dim"], f"{where}.latent.dim"), "prior": latent.get("prior", "normal")}
    if latent["prior"] not in PRIORS:
        _fail(f"{where}.latent.prior", f"expected one of {', '.join(PRIORS)}; got {latent['prior']!r}")
    output = validate_output(raw["output"], f"{where}.output")
    if raw["d_output"] not in D_OUTPUTS:
        _fail(f"{where}.d_output", f"expected one of {', '.join(D_OUTPUTS)}; got {raw['d_output']!r}")
    unhashed = list(dict.fromkeys("GD" if reader in PAIR_READERS else r for r in ROLES if files[r].sha256 is None))
    verified = raw.get("verified", not unhashed)
    if not isinstance(verified, bool):
        _fail(f"{where}.verified", f"expected true or false; got {verified!r}")
    if verified and unhashed:
        _fail(
            f"{where}.verified",
            f"is true but files {', '.join(unhashed)} have sha256: null; "
            "set verified: false (the hash is then pinned on first download)",
        )
    if source["kind"] == "bundled" and unhashed:
        _fail(f"{where}.files", f"bundled files need their sha256; {', '.join(unhashed)} have null")
    sampling = validate_sampling(raw.get("sampling"), f"{where}.sampling", check_registry)
    return ModelEntry(
        name=name,
        source=source,
        files=files,
        arch=arch,
        latent=latent,
        output=output,
        d_output=raw["d_output"],
        license=_opt_str(raw.get("license"), f"{where}.license"),
        citation=_opt_str(raw.get("citation"), f"{where}.citation"),
        recipe=_opt_str(raw.get("recipe"), f"{where}.recipe"),
        verified=verified,
        sampling=sampling,
        dataset=_opt_str(raw.get("dataset"), f"{where}.dataset"),
        reader=reader,
    )
