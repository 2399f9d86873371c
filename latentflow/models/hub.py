"""Loading a G/D pair: resolve -> fetch -> verify -> read -> build -> load -> finish, one function each.

* **resolve** a ref into a :class:`ModelEntry`: a manifest name, ``hf:owner/repo[@revision]``, a local folder
  (``latentflow.json`` + ``G.safetensors`` + ``D.safetensors``, the layout :func:`export` writes), or a
  ``(G_path, D_path)`` pair of ``.safetensors`` files carrying their spec in the metadata. A folder (or Hub
  repo) written by ``latentflow train dflow|scoregan|flowgan|dgd`` holds other roles (D alone, G alone, G + S);
  it resolves to a :class:`~latentflow.models.trained.TrainedEntry` and loads through the same steps.
* **fetch** a file: bundled files through ``importlib.resources``; Hub files through
  ``huggingface_hub.hf_hub_download`` (its cache, ``HF_HUB_OFFLINE``); URLs streamed to a temporary file and
  moved into the cache with ``os.replace`` so that a partial download never looks complete.
* **verify** a streaming SHA-256 *before* anything is deserialised. A file without a known hash is pinned on
  first download into ``pins.json`` in the cache (``$LATENTFLOW_CACHE``, else ``$XDG_CACHE_HOME/latentflow``,
  else ``~/.cache/latentflow``) and checked against the pin afterwards.
* **read** with ``safetensors`` only; pickled ``.pt/.pth/.ckpt`` files only through
  ``torch.load(weights_only=True)`` in the conversion path (:func:`convert`, and manifest entries that name
  ``.pth`` files, which go through the same code).
* **build** with ``zoo.build``; **load** with ``strict=True`` and an error that lists missing, unexpected and
  mis-shaped keys; **finish** with ``eval().requires_grad_(False)`` on the requested device and dtype.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..errors import IntegrityError, LatentflowError, ManifestError, OptionError
from .manifest import (ALL_SOURCE_KINDS, ROLES, SCHEMA, ArchSpec, ModelEntry, get_entry, list_models,
                       validate_entry, _packaged)
from .trained import TrainedEntry, is_pair_spec, validate_trained

log = logging.getLogger("latentflow")

SPEC_FILE = "latentflow.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")
_CHUNK = 1 << 20


# -------------------------------------------------------------------------------------------------
# the result
# -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ModelPair:
    """A loaded generator and discriminator (eval mode, no gradients) and what is known about them.

    ``meta`` holds ``name``, ``latent_dim``, ``prior``, ``d_output``, ``output_shape``, ``output_range``,
    ``sampling`` (recommended per-method options), ``verified``, ``source``, ``files`` (with the SHA-256
    actually read) and ``spec`` (what :func:`export` writes), and for every model ``roles`` (the networks
    loaded, e.g. ``["G", "D"]``), ``trainer`` (the ``latentflow train`` kind that wrote it, if known),
    ``d_conditioning`` (``"time"`` for ``D(x, t)``, ``"sigma"`` for ``D(x, σ)``, ``None`` for ``D(x)``) and
    ``x0`` (``{prior, std, shape}``: where a generator-free model's particles start; ``None`` with a generator).
    ``G, D, meta = pair`` unpacks it.

    Models from ``latentflow train`` that are not G/D pairs load into the same type: ``G`` is ``None`` for
    the generator-free Discriminator Flow (``dflow``) and noise-conditioned D (``dgd``), ``D`` is ``None``
    for Score GAN and FloWGAN. ``extra`` holds any further networks by role: Score GAN's ``"S"``, the
    denoiser ``S(x̃, σ)`` of the *generated* distribution (its score is ``(S(x̃, σ) - x̃)/σ²``).
    :meth:`initial_state` draws what ``refine(pair.G, pair.D, ·)`` starts from.
    """
    G: Any
    D: Any
    meta: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        return iter((self.G, self.D, self.meta))

    @property
    def latent_dim(self) -> int:
        dim = self.meta.get("latent_dim")
        if dim is None:
            raise ManifestError(f'model "{self.meta.get("name")}" has no generator, so no latent; its samplers '
                                f'start from x0 = {self.meta.get("x0")} (draw it with pair.initial_state(n))')
        return int(dim)

    def initial_state(self, n: int, generator=None, device=None, dtype=None):
        """``n`` starting points for ``refine(pair.G, pair.D, ·)``: latents ``[n, latent_dim]`` from the prior
        when there is a generator, else particles ``x0 [n, *shape]`` (``std · N(0, I)``, ``meta["x0"]``).
        ``device`` and ``dtype`` default to the models'; ``generator`` is a ``torch.Generator`` or an int seed."""
        import torch

        from .. import rng
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise OptionError(f"n must be an int >= 1; got {n!r}")
        p = next((q for m in (self.G, self.D, *self.extra.values()) if isinstance(m, torch.nn.Module)
                  for q in m.parameters()), None)
        device = device if device is not None else (p.device if p is not None else "cpu")
        dtype = dtype if dtype is not None else (p.dtype if p is not None else torch.float32)
        if self.G is not None:
            return rng.sample_latents(n, self.latent_dim, self.meta.get("prior") or "normal", generator=generator,
                                      device=device, dtype=dtype)
        x0 = self.meta.get("x0") or {}
        if not x0.get("shape"):
            raise ManifestError(f'model "{self.meta.get("name")}" has neither a generator nor an x0 shape')
        gen = rng.resolve(generator, device)
        return float(x0.get("std", 1.0)) * rng.randn((n, *x0["shape"]), gen, device, dtype)

    def set_class(self, label) -> "ModelPair":
        """Choose the class of a class-conditional pair (an int, or a ``[B]`` tensor of labels) for G and D."""
        n = self.meta.get("num_classes") or 0
        if n <= 0:
            raise ManifestError(f'model "{self.meta.get("name")}" is not class-conditional; set_class does not apply')
        for m in (self.G, self.D):
            if getattr(m, "num_classes", 0):
                m.class_label = label
        return self


# -------------------------------------------------------------------------------------------------
# cache and pins
# -------------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """latentflow's own cache (pins, URL downloads, conversions): ``$LATENTFLOW_CACHE`` or the XDG default."""
    env = os.environ.get("LATENTFLOW_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "latentflow"


def pins_path() -> Path:
    return cache_dir() / "pins.json"


def read_pins() -> dict[str, str]:
    p = pins_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IntegrityError(f"the pin file {p} cannot be read ({e}); fix or delete it", path=str(p)) from e
    if not isinstance(data, dict):
        raise IntegrityError(f"the pin file {p} must hold a JSON object; delete it to start again", path=str(p))
    return {str(k): str(v) for k, v in data.items()}


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pin(key: str, sha256: str) -> None:
    """Record ``sha256`` for ``key`` (an ``hf:repo@rev/file`` or URL) in the pin file."""
    pins = read_pins()
    pins[key] = sha256
    _atomic_write(pins_path(), json.dumps(pins, indent=1, sort_keys=True) + "\n")


def sha256_file(path: str | Path) -> str:
    """Full SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def pin_key(entry: ModelEntry | TrainedEntry, role: str) -> str | None:
    src, path = entry.source, entry.files[role].path
    if src["kind"] == "hub":
        return f"hf:{src['repo_id']}@{src['revision']}/{path}"
    if src["kind"] == "url":
        return f"{src['base_url'].rstrip('/')}/{path}"
    return None


# -------------------------------------------------------------------------------------------------
# 1 resolve
# -------------------------------------------------------------------------------------------------

def parse_hf_ref(ref: str) -> tuple[str, str | None]:
    """``"hf:owner/repo@rev"`` -> ``("owner/repo", "rev")``; the revision is optional."""
    body = ref[3:]
    repo, _, rev = body.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ManifestError(f'a Hub ref must look like hf:owner/repo[@revision]; got "{ref}"')
    return repo, (rev or None)


def _entry_from_spec(spec: Mapping, source: dict, files: Mapping | None, where: str) -> ModelEntry | TrainedEntry:
    """A G/D pair's spec -> :class:`ModelEntry` (strict, as the manifest); any other set of roles (a
    ``latentflow train`` folder) -> :class:`TrainedEntry`. ``files`` None: ``<ROLE>.safetensors`` per role."""
    if not isinstance(spec, Mapping):
        raise ManifestError(f"{where}: expected a JSON object; got {type(spec).__name__}")
    if not is_pair_spec(spec):
        return validate_trained(spec, f"{where}: {SPEC_FILE}", source=source, files=files)
    if files is None:
        files = {r: {"path": f"{r}.safetensors"} for r in ROLES}
    if spec.get("schema", SCHEMA) != SCHEMA:
        raise ManifestError(f"{where}: schema {spec.get('schema')!r} is not supported (expected {SCHEMA})")
    raw = {k: v for k, v in spec.items() if k not in ("schema", "name", "files", "format", "source", "verified")}
    raw["source"] = source
    raw["files"] = files
    name = spec.get("name") or "unnamed"
    try:
        return validate_entry(str(name), raw, allow_sources=ALL_SOURCE_KINDS, pinned_revision=False)
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from e


def _read_spec_json(path: Path, where: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ManifestError(f"{where}: cannot read {SPEC_FILE}: {e}") from e


def _spec_from_safetensors(path: Path) -> dict:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types
        raise IntegrityError(f"{path} is not a readable safetensors file: {e}", path=str(path)) from e
    if "latentflow" not in meta:
        raise ManifestError(f'{path} carries no "latentflow" metadata; load a folder with {SPEC_FILE} '
                            "or use convert(...) to make one")
    try:
        return json.loads(meta["latentflow"])
    except ValueError as e:
        raise ManifestError(f'{path}: the "latentflow" metadata is not JSON: {e}') from e


def resolve(ref) -> ModelEntry | TrainedEntry:
    """Turn ``ref`` into a :class:`ModelEntry`, or a :class:`TrainedEntry` for a ``latentflow train`` folder
    that is not a G/D pair (see the module docstring for the accepted forms)."""
    if isinstance(ref, (ModelEntry, TrainedEntry)):
        return ref
    if isinstance(ref, (tuple, list)):
        if len(ref) != 2:
            raise ManifestError(f"a local file pair must be (G_path, D_path); got {len(ref)} items")
        paths = [Path(p).expanduser().resolve() for p in ref]
        for role, p in zip(ROLES, paths):
            if not p.is_file():
                raise ManifestError(f"{role} file {p} does not exist")
            if p.suffix in PICKLE_SUFFIXES:
                raise ManifestError(f"{p} is a pickled checkpoint; turn it into safetensors first with "
                                    f"latentflow.models.convert(...) (or `latentflow convert`)")
        spec = _spec_from_safetensors(paths[0])
        if not is_pair_spec(spec):
            raise ManifestError(f"{paths[0]} belongs to a model with roles {', '.join(map(str, spec['arch']))}, "
                                f"not a G/D pair; load its folder (with {SPEC_FILE}) instead")
        files = {r: {"path": str(p), "sha256": None} for r, p in zip(ROLES, paths)}
        return _entry_from_spec(spec, {"kind": "local", "root": ""}, files, f"file pair {paths[0].name}, {paths[1].name}")
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if not isinstance(ref, str):
        raise ManifestError(f"model ref must be a manifest name, hf:owner/repo[@rev], a folder or a (G, D) "
                            f"pair of paths; got {type(ref).__name__}")
    if ref.startswith("hf:"):
        repo, rev = parse_hf_ref(ref)
        spec_path = _hf_download(repo, SPEC_FILE, rev)
        spec = _read_spec_json(spec_path, ref)
        if rev is None:
            # pin what "main" meant now: the snapshot folder is named by the commit
            rev = spec_path.parent.name if len(spec_path.parent.name) == 40 else None
        return _entry_from_spec(spec, {"kind": "hub", "repo_id": repo, "revision": rev or "main"},
                                (spec.get("files") or None) if isinstance(spec, Mapping) else None, ref)
    p = Path(ref).expanduser()
    if p.is_dir():
        sp = p / SPEC_FILE
        if not sp.is_file():
            if (p / "checkpoint.json").is_file():
                raise ManifestError(f"folder {p} has no {SPEC_FILE}: it holds a training checkpoint only, so its "
                                    "training has not finished (run the same `latentflow train` command again "
                                    "to resume it)")
            raise ManifestError(f"folder {p} has no {SPEC_FILE}; expected the layout export() writes "
                                f"({SPEC_FILE}, G.safetensors, D.safetensors) or one `latentflow train` writes")
        spec = _read_spec_json(sp, str(p))
        return _entry_from_spec(spec, {"kind": "local", "root": str(p.resolve())},
                                (spec.get("files") or None) if isinstance(spec, Mapping) else None, str(p))
    if p.is_file():
        raise ManifestError(f'"{ref}" is a single file; pass a folder, or a (G_path, D_path) pair')
    return get_entry(ref)


# -------------------------------------------------------------------------------------------------
# 2 fetch
# -------------------------------------------------------------------------------------------------

def _fetch_command(repo: str, filename: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return f'hf download {repo} "{filename}"{rev}   (older huggingface_hub: huggingface-cli download ...)'


def _hf_download(repo: str, filename: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import hf_hub_download
        try:
            from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                                RevisionNotFoundError)
        except ImportError:  # huggingface_hub < 0.23
            from huggingface_hub.utils import (EntryNotFoundError, LocalEntryNotFoundError,  # type: ignore
                                               RepositoryNotFoundError, RevisionNotFoundError)
    except ImportError as e:
        raise LatentflowError("loading from the Hugging Face Hub needs huggingface_hub (pip install huggingface-hub)") from e
    where = f'file "{filename}" of Hugging Face repo "{repo}" at revision "{revision or "main"}"'
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision))
    except LocalEntryNotFoundError as e:
        raise LatentflowError(
            f"{where} is not in the local Hugging Face cache and cannot be downloaded now (offline: "
            f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}, or no network). Fetch it once with:\n"
            f"  {_fetch_command(repo, filename, revision)}\nthen load again.") from e
    except RevisionNotFoundError as e:
        raise ManifestError(f'{where}: revision "{revision}" does not exist in the repo') from e
    except EntryNotFoundError as e:
        raise ManifestError(f"{where}: the repo has no such file at that revision") from e
    except RepositoryNotFoundError as e:
        raise ManifestError(f'{where}: repo "{repo}" does not exist or is private (log in with `hf auth login`)') from e
    except OSError as e:   # network failures (requests/httpx errors subclass OSError or are wrapped in it)
        raise LatentflowError(f"{where} could not be downloaded ({e}). Fetch it with:\n"
                              f"  {_fetch_command(repo, filename, revision)}") from e


def _download_url(url: str, dest: Path) -> Path:
    """Stream ``url`` into a temporary file beside ``dest`` and ``os.replace`` it there when complete."""
    import urllib.request
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 (https only)
            for chunk in iter(lambda: r.read(_CHUNK), b""):
                f.write(chunk)
        os.replace(tmp, dest)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise LatentflowError(f"downloading {url} failed: {e}") from e
        raise
    return dest


def _bundled_path(path: str) -> Path:
    p = Path(str(resources.files("latentflow").joinpath("checkpoints", *path.split("/"))))
    if not p.is_file():
        raise ManifestError(f"bundled checkpoint {path} is missing from the installed package ({p})")
    return p


def _url_cache_path(url: str) -> Path:
    return cache_dir() / "url" / hashlib.sha256(url.encode()).hexdigest()[:16] / url.rsplit("/", 1)[-1]


def fetch(entry: ModelEntry | TrainedEntry, role: str) -> Path:
    """A local path to ``entry``'s ``role`` file ("G", "D", or a trained model's "S"), downloading it if needed."""
    src, f = entry.source, entry.files[role]
    kind = src["kind"]
    if kind == "bundled":
        return _bundled_path(f.path)
    if kind == "hub":
        return _hf_download(src["repo_id"], f.path, src["revision"])
    if kind == "url":
        url = f"{src['base_url'].rstrip('/')}/{f.path}"
        dest = _url_cache_path(url)
        if dest.is_file():
            return dest
        if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("LATENTFLOW_OFFLINE"):
            raise LatentflowError(f"{url} is not cached at {dest} and offline mode is on; download it there "
                                  f"(e.g. curl -L -o '{dest}' '{url}') or unset the offline variable")
        log.info("downloading %s", url)
        return _download_url(url, dest)
    if kind == "local":
        p = Path(src.get("root") or "") / f.path
        if not p.is_file():
            raise ManifestError(f"{role} file {p} of model \"{entry.name}\" does not exist")
        return p
    raise ManifestError(f'unknown source kind "{kind}" for model "{entry.name}"')


def is_available_offline(entry: ModelEntry) -> bool:
    """True when both files are on disk already (bundled, in the Hub cache, or downloaded from a URL)."""
    kind = entry.source["kind"]
    for role in ROLES:
        path = entry.files[role].path
        if kind == "bundled":
            ok = Path(str(resources.files("latentflow").joinpath("checkpoints", *path.split("/")))).is_file()
        elif kind == "hub":
            try:
                from huggingface_hub import try_to_load_from_cache
            except ImportError:
                return False
            hit = try_to_load_from_cache(entry.source["repo_id"], path, revision=entry.source["revision"])
            ok = isinstance(hit, str)
        elif kind == "url":
            ok = _url_cache_path(f"{entry.source['base_url'].rstrip('/')}/{path}").is_file()
        else:
            ok = (Path(entry.source.get("root") or "") / path).is_file()
        if not ok:
            return False
    return True


# -------------------------------------------------------------------------------------------------
# 3 verify
# -------------------------------------------------------------------------------------------------

def verify(path: str | Path, expected: str | None, *, key: str | None = None) -> str:
    """Check the SHA-256 of ``path`` against ``expected`` (or the pin for ``key``; pin it if there is none).

    Runs before the file is deserialised. Returns the hash; raises ``IntegrityError(expected, got, path)``."""
    got = sha256_file(path)
    if expected is not None:
        if got != expected:
            raise IntegrityError(f"SHA-256 mismatch for {path}: expected {expected}, got {got}. The file is corrupt "
                                 "or was replaced; delete it from the cache and fetch it again.",
                                 expected=expected, got=got, path=str(path))
        return got
    if key is None:
        log.info("%s has no recorded SHA-256 (a local file); its sha256 is %s", path, got)
        return got
    pinned = read_pins().get(key)
    if pinned is None:
        pin(key, got)
        log.warning("pinned SHA-256 %s for %s on first download (the manifest has no hash for it yet)", got, key)
    elif pinned != got:
        raise IntegrityError(f"SHA-256 mismatch for {path}: the hash pinned on first download ({pins_path()}) is "
                             f"{pinned}, the file now has {got}. Delete the file (or the pin) only if you trust "
                             "the new content.", expected=pinned, got=got, path=str(path))
    return got


# -------------------------------------------------------------------------------------------------
# 4 read
# -------------------------------------------------------------------------------------------------

def read_safetensors(path: str | Path) -> dict:
    """A state dict from a ``.safetensors`` file, on the CPU (no pickle involved)."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise ManifestError(f"{path} is a pickled checkpoint; only latentflow.models.convert reads those "
                            "(through torch.load(weights_only=True))")
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises SafetensorError, OSError, ...
        raise IntegrityError(f"{path} is not a valid safetensors file: {e}", path=str(path)) from e


def read_pickle_weights_only(path: str | Path):
    """Unpickle ``path`` with ``torch.load(weights_only=True)``: tensors, containers and plain scalars only,
    never code. NumPy scalars (some training scripts store a best FID that way) are allowed explicitly."""
    import pickle

    import torch
    path = Path(path)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise IntegrityError(f"{path} is not a readable PyTorch checkpoint: {e}", path=str(path)) from e
    try:
        import numpy as np
        allowed = [np.dtype, type(np.dtype("float64")), type(np.dtype("float32")), type(np.dtype("int64"))]
        try:
            from numpy.core.multiarray import scalar as np_scalar
        except ImportError:  # numpy >= 2 keeps it in numpy._core
            from numpy._core.multiarray import scalar as np_scalar  # type: ignore
        allowed.append(np_scalar)
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        pass
    raise IntegrityError(f"refused to unpickle {path}: it needs more than tensors and plain containers "
                         f"(torch.load(weights_only=True) said: {first}). latentflow never runs code from a "
                         "checkpoint; re-save it as a plain state dict, or as safetensors.", path=str(path)) from first


# -- key-layout adapters -----------------------------------------------------------------------------

_PAIR_KEYS = (("G", "D"), ("netG", "netD"), ("generator", "discriminator"), ("gen", "dis"), ("Gen", "Dis"),
              ("G_state_dict", "D_state_dict"), ("generator_state_dict", "discriminator_state_dict"),
              ("state_dict_G", "state_dict_D"), ("model_G", "model_D"))
_EMA_KEYS = ("G_ema", "netG_ema", "generator_ema", "ema_G", "Gen_ema", "g_ema")
_NEST_KEYS = ("state_dict", "model", "model_state_dict", "params", "module")
_PREFIXES = ("module.", "_orig_mod.")


def _is_tensor_dict(d) -> bool:
    import torch
    return isinstance(d, Mapping) and len(d) > 0 and all(isinstance(v, torch.Tensor) for v in d.values())


def _unnest(obj, where: str):
    """Descend through ``{"state_dict": ...}``-style wrappers (StudioGAN stores ``state_dict`` + optimizer + misc)."""
    for _ in range(4):
        if _is_tensor_dict(obj):
            return obj
        if isinstance(obj, Mapping):
            for k in _NEST_KEYS:
                if k in obj and isinstance(obj[k], Mapping):
                    obj = obj[k]
                    break
            else:
                break
        else:
            break
    if not _is_tensor_dict(obj):
        keys = list(obj)[:12] if isinstance(obj, Mapping) else type(obj).__name__
        raise ManifestError(f"{where}: no state dict found (expected a mapping of tensors, or one under "
                            f"{', '.join(_NEST_KEYS)}); got keys {keys}")
    return obj


def strip_prefixes(sd: Mapping) -> dict:
    """Remove ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes shared by every key."""
    sd = dict(sd)
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if sd and all(k.startswith(p) for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items()}
                changed = True
    return sd


def extract_state_dict(obj, where: str = "checkpoint") -> dict:
    """One model's state dict from a loaded checkpoint object (nesting and prefixes undone)."""
    return strip_prefixes(_unnest(obj, where))


def split_pair(obj, where: str = "checkpoint", *, use_ema: bool = False) -> dict[str, dict]:
    """``{"G": sd, "D": sd}`` from a checkpoint holding both models under ``G``/``D``, ``netG``/``netD``,
    ``generator``/``discriminator`` (and similar) keys, possibly nested under ``state_dict``."""
    cur = obj
    for _ in range(3):
        if not isinstance(cur, Mapping):
            break
        for g, d in _PAIR_KEYS:
            if g in cur and d in cur:
                gsrc = cur[g]
                if use_ema:
                    ema = next((cur[k] for k in _EMA_KEYS if k in cur), None)
                    if ema is None:
                        raise ManifestError(f"{where}: use_ema=True but no EMA generator ({', '.join(_EMA_KEYS)}) found")
                    gsrc = ema
                return {"G": extract_state_dict(gsrc, f"{where}[{g}]"), "D": extract_state_dict(cur[d], f"{where}[{d}]")}
        nxt = next((cur[k] for k in _NEST_KEYS if k in cur and isinstance(cur[k], Mapping)), None)
        if nxt is None:
            break
        cur = nxt
    keys = list(obj)[:12] if isinstance(obj, Mapping) else type(obj).__name__
    raise ManifestError(f"{where}: cannot find a G/D pair; expected keys like "
                        f"{', '.join('/'.join(p) for p in _PAIR_KEYS[:3])} (or pass d_path= for StudioGAN-style "
                        f"separate G and D files); got keys {keys}")


# -------------------------------------------------------------------------------------------------
# 5 build, 6 load, 7 finish
# -------------------------------------------------------------------------------------------------

def build(arch: ArchSpec):
    import torch

    from .zoo import build as _build
    # the random initial weights are overwritten by the checkpoint: don't let them consume the
    # caller's global RNG (loading a model must not change what torch.randn gives next)
    with torch.random.fork_rng(devices=[]):
        return _build(arch.name, **dict(arch.kwargs))


def _fmt_keys(keys: Sequence[str], limit: int = 12) -> str:
    keys = list(keys)
    s = ", ".join(keys[:limit])
    return s + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state(model, state_dict: Mapping, *, what: str = "model", settle_iterations: int = 20) -> None:
    """``model.load_state_dict(state_dict, strict=True)``, with an error listing missing, unexpected and
    mis-shaped keys. Spectral-norm power-iteration vectors (``*_u``/``*_v``) and BatchNorm's
    ``num_batches_tracked`` may be absent; the former are then settled by power iteration."""
    from .zoo import settle_spectral_norm, spectral_norm_buffer_keys
    own = model.state_dict()
    sd = dict(state_dict)
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    misshaped = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in own
                 if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    sn_keys = spectral_norm_buffer_keys(model)
    tolerated = [k for k in missing if k in sn_keys or k.endswith("num_batches_tracked")]
    missing = [k for k in missing if k not in tolerated]
    if missing or unexpected or misshaped:
        parts = [f"the state dict does not fit {what} ({type(model).__name__}):"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt_keys(unexpected)}")
        if misshaped:
            parts.append(f"mis-shaped keys ({len(misshaped)}): " + _fmt_keys(
                [f"{k} (checkpoint {a}, model {b})" for k, a, b in misshaped]))
        parts.append("check the architecture name and kwargs in the manifest / latentflow.json")
        raise IntegrityError("\n  ".join(parts))
    for k in tolerated:
        sd[k] = own[k]
    model.load_state_dict(sd, strict=True)
    if any(k in sn_keys for k in tolerated):
        n = settle_spectral_norm(model, settle_iterations)
        log.info("%s: the checkpoint had no spectral-norm vectors; settled %d weights with %d power iterations",
                 what, n, settle_iterations)


def finish(model, device="cpu", dtype=None):
    """Inference state: ``eval()``, no parameter gradients, on ``device`` (and ``dtype`` if given)."""
    model = model.to(device=device) if dtype is None else model.to(device=device, dtype=dtype)
    return model.eval().requires_grad_(False)


# -------------------------------------------------------------------------------------------------
# the whole pipeline
# -------------------------------------------------------------------------------------------------

def _trainer_of(recipe: str | None) -> str | None:
    """The ``trainer`` of a recipe written as JSON (as ``latentflow train gan`` does), else None."""
    try:
        r = json.loads(recipe) if recipe else None
    except ValueError:
        return None
    t = r.get("trainer") if isinstance(r, dict) else None
    return t if isinstance(t, str) else None


def _meta(entry: ModelEntry | TrainedEntry, hashes: Mapping[str, str], G) -> dict:
    roles = entry.roles if isinstance(entry, TrainedEntry) else ROLES
    trained = isinstance(entry, TrainedEntry)
    return {"name": entry.name, "latent_dim": entry.latent_dim, "prior": entry.prior, "d_output": entry.d_output,
            "output_shape": entry.output["shape"], "output_range": entry.output["range"],
            "sampling": {k: dict(v) for k, v in entry.sampling.items()}, "verified": entry.verified,
            "num_classes": int(getattr(G, "num_classes", 0) or 0),
            "license": entry.license, "citation": entry.citation, "recipe": entry.recipe, "dataset": entry.dataset,
            "roles": list(roles), "trainer": entry.trainer if trained else _trainer_of(entry.recipe),
            "d_conditioning": entry.d_conditioning if trained else None,
            "x0": dict(entry.x0) if trained and entry.x0 is not None else None,
            "source": dict(entry.source),
            "files": {r: {"path": entry.files[r].path, "sha256": hashes[r]} for r in roles},
            "spec": entry.spec()}


def _load_trained(entry: TrainedEntry, device, dtype) -> ModelPair:
    """A ``latentflow train`` model that is not a G/D pair: every role's file through the same
    fetch -> verify -> read (safetensors only) -> build -> load (strict) -> finish steps."""
    models, hashes = {}, {}
    for role in entry.roles:
        path = fetch(entry, role)
        hashes[role] = verify(path, entry.files[role].sha256, key=pin_key(entry, role))
        sd = read_safetensors(path)
        m = build(entry.arch[role])
        load_state(m, sd, what=f'{role} of "{entry.name}" ({path})')
        models[role] = finish(m, device, dtype)
    log.info('loaded "%s" (%s; roles %s)', entry.name, entry.source["kind"], ", ".join(entry.roles))
    G, D = models.pop("G", None), models.pop("D", None)
    return ModelPair(G, D, _meta(entry, hashes, G), extra=models)


def load(ref, device="cpu", dtype=None) -> ModelPair:
    """Load a model by manifest name, ``hf:owner/repo[@revision]``, local folder or ``(G, D)`` file pair.

    Every file is hash-checked before it is read; the networks come back in eval mode without gradients.
    A G/D pair fills ``G`` and ``D``; a ``latentflow train`` folder of another kind fills the roles it has
    (``G=None`` for ``dflow`` and ``dgd``, ``D=None`` for ``scoregan`` and ``flowgan``, Score GAN's score
    net in ``pair.extra["S"]``; see :class:`ModelPair`)."""
    entry = resolve(ref)
    if isinstance(entry, TrainedEntry):
        return _load_trained(entry, device, dtype)
    paths, hashes = {}, {}
    for role in ROLES:
        paths[role] = fetch(entry, role)
        hashes[role] = verify(paths[role], entry.files[role].sha256, key=pin_key(entry, role))
    if any(paths[r].suffix in PICKLE_SUFFIXES for r in ROLES):
        # StudioGAN-style .pth files named by the manifest: the conversion path, weights_only=True
        sds = {r: extract_state_dict(read_pickle_weights_only(paths[r]), str(paths[r])) for r in ROLES}
    else:
        sds = {r: read_safetensors(paths[r]) for r in ROLES}
    models = {}
    for role in ROLES:
        m = build(entry.arch[role])
        load_state(m, sds[role], what=f'{role} of "{entry.name}"')
        models[role] = finish(m, device, dtype)
    log.info('loaded "%s" (%s)', entry.name, entry.source["kind"])
    return ModelPair(models["G"], models["D"], _meta(entry, hashes, models["G"]))


# -------------------------------------------------------------------------------------------------
# export and convert
# -------------------------------------------------------------------------------------------------

def _arch_spec(a, kwargs=None, role: str = "G") -> ArchSpec:
    if isinstance(a, ArchSpec):
        return a if not kwargs else ArchSpec(a.name, {**a.kwargs, **kwargs})
    if isinstance(a, Mapping):
        return ArchSpec(str(a["name"]), {**dict(a.get("kwargs") or {}), **(kwargs or {})})
    if isinstance(a, str):
        return ArchSpec(a, dict(kwargs or {}))
    raise ManifestError(f"arch_{role.lower()} must be an architecture name, an ArchSpec or "
                        f"{{name, kwargs}}; got {type(a).__name__}")


def make_pair(G, D, *, arch_g, arch_d, kwargs_g=None, kwargs_d=None, name: str = "custom",
              latent_dim: int | None = None, prior: str = "normal", d_output: str = "logit",
              output_range=(-1.0, 1.0), output_shape=None, license: str | None = None, citation: str | None = None,
              recipe: str | None = None, sampling: Mapping | None = None, dataset: str | None = None) -> ModelPair:
    """Wrap modules built from the zoo into a :class:`ModelPair` whose ``meta['spec']`` :func:`export` can write.
    ``latent_dim`` defaults to ``G.latent_dim``; ``output_shape`` is found by one forward pass of G."""
    import torch
    ag, ad = _arch_spec(arch_g, kwargs_g, "G"), _arch_spec(arch_d, kwargs_d, "D")
    if latent_dim is None:
        latent_dim = getattr(G, "latent_dim", None)
        if latent_dim is None:
            raise ManifestError("latent_dim is needed: G has no latent_dim attribute")
    if output_shape is None:
        was = G.training
        G.eval()
        p = next(iter(G.parameters()), None)
        with torch.no_grad():
            x = G(torch.zeros(1, int(latent_dim), device=p.device if p is not None else "cpu",
                              dtype=p.dtype if p is not None else torch.float32))
        G.train(was)
        output_shape = list(x.shape[1:])
    raw = {"source": {"kind": "local", "root": ""},
           "files": {r: {"path": f"{r}.safetensors"} for r in ROLES},
           "arch": {"G": ag.to_dict(), "D": ad.to_dict()}, "latent": {"dim": int(latent_dim), "prior": prior},
           "output": {"shape": list(output_shape), "range": list(output_range) if output_range is not None else None},
           "d_output": d_output, "license": license, "citation": citation, "recipe": recipe,
           "sampling": dict(sampling or {}), "dataset": dataset}
    entry = validate_entry(name, raw, allow_sources=ALL_SOURCE_KINDS)
    for role, m, a in (("G", G, ag), ("D", D, ad)):   # the spec must rebuild exactly these modules
        ref = build(a)
        load_state(ref, m.state_dict(), what=f"{role} rebuilt from {a.name}{dict(a.kwargs)}")
    return ModelPair(G, D, _meta(entry, {r: None for r in ROLES}, G))


def export(pair_or_ref, out_dir: str | Path) -> Path:
    """Write ``G.safetensors``, ``D.safetensors`` (each with ``metadata={"latentflow": json.dumps(spec)}``) and
    ``latentflow.json`` (the spec plus file hashes) into ``out_dir``: the layout ``load(folder)`` and
    ``load("hf:user/repo")`` read. ``pair_or_ref`` is a :class:`ModelPair` (from ``load`` or ``make_pair``)
    or anything ``load`` accepts."""
    from safetensors.torch import save_file
    pair = pair_or_ref if isinstance(pair_or_ref, ModelPair) else load(pair_or_ref)
    if pair.G is None or pair.D is None or pair.extra:
        raise ManifestError(f'export writes G/D pairs; "{pair.meta.get("name")}" has roles '
                            f'{", ".join(pair.meta.get("roles") or [])}. Its training folder already is a layout '
                            f"load() reads: copy {SPEC_FILE} and its .safetensors files (or upload them to the Hub)")
    spec = pair.meta.get("spec")
    if not spec:
        raise ManifestError("this ModelPair carries no spec; build it with latentflow.models.make_pair(...)")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for role, model in (("G", pair.G), ("D", pair.D)):
        sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
        target = out / f"{role}.safetensors"
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{role}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(sd, tmp, metadata={"latentflow": json.dumps(spec), "latentflow_role": role})
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        files[role] = {"path": target.name, "sha256": sha256_file(target), "bytes": target.stat().st_size}
    doc = {**spec, "files": files}
    _atomic_write(out / SPEC_FILE, json.dumps(doc, indent=2) + "\n")
    log.info("exported %s to %s", spec.get("name"), out)
    return out


def convert(in_path: str | Path, out_dir: str | Path, *, arch_g, arch_d, d_path: str | Path | None = None,
            kwargs_g: Mapping | None = None, kwargs_d: Mapping | None = None, use_ema: bool = False,
            name: str = "converted", latent_dim: int | None = None, prior: str = "normal", d_output: str = "logit",
            output_range=(-1.0, 1.0), license: str | None = None, citation: str | None = None,
            recipe: str | None = None, sampling: Mapping | None = None, dataset: str | None = None) -> Path:
    """Turn a pickled ``.pt/.pth/.ckpt`` G/D checkpoint into the :func:`export` layout.

    ``in_path`` holds both models (under ``G``/``D``, ``netG``/``netD``, ``generator``/``discriminator``, ...,
    possibly nested under ``state_dict`` and with ``module.`` prefixes), or only G when ``d_path`` gives D's file
    (StudioGAN's ``model=G-...pth`` / ``model=D-...pth``). Files are read with ``torch.load(weights_only=True)``
    only: a pickle that would run code is refused. The state dicts must fit ``arch_g``/``arch_d`` exactly."""
    in_path = Path(in_path).expanduser()
    sources = [in_path] + ([Path(d_path).expanduser()] if d_path is not None else [])
    for p in sources:
        if not p.is_file():
            raise ManifestError(f"checkpoint {p} does not exist")
    hashes = [sha256_file(p) for p in sources]
    obj = read_pickle_weights_only(in_path)
    if d_path is None:
        sds = split_pair(obj, str(in_path), use_ema=use_ema)
    else:
        sds = {"G": extract_state_dict(obj, str(in_path)),
               "D": extract_state_dict(read_pickle_weights_only(sources[1]), str(sources[1]))}
    ag, ad = _arch_spec(arch_g, kwargs_g, "G"), _arch_spec(arch_d, kwargs_d, "D")
    G, D = build(ag), build(ad)
    load_state(G, sds["G"], what=f"G ({ag.name})")
    load_state(D, sds["D"], what=f"D ({ad.name})")
    G.eval()
    D.eval()
    if recipe is None:
        recipe = "converted from " + ", ".join(f"{p.name} (sha256 {h})" for p, h in zip(sources, hashes))
    pair = make_pair(G, D, arch_g=ag, arch_d=ad, name=name, latent_dim=latent_dim, prior=prior, d_output=d_output,
                     output_range=output_range, license=license, citation=citation, recipe=recipe, sampling=sampling,
                     dataset=dataset)
    return export(pair, out_dir)


# -------------------------------------------------------------------------------------------------
# for the CLI
# -------------------------------------------------------------------------------------------------

def models_table() -> list[dict]:
    """One row per manifest model: ``name``, ``source``, ``offline`` (files already on disk), ``bytes`` (total
    size, None while unknown), ``verified`` (hashes in the manifest) and ``pinned`` (hashes pinned locally)."""
    pins = None
    rows = []
    for name in list_models():
        e = _packaged()[name]
        src = e.source
        if src["kind"] == "hub":
            where = f"hf:{src['repo_id']}@{src['revision'][:10]}"
        elif src["kind"] == "url":
            where = src["base_url"]
        else:
            where = src["kind"]
        sizes = [e.files[r].bytes for r in ROLES]
        try:
            offline = is_available_offline(e)
        except Exception as exc:  # a broken cache must not break the listing
            log.warning("cannot check the cache for %s: %s", name, exc)
            offline = False
        if None in sizes and offline:
            try:
                sizes = [fetch(e, r).stat().st_size for r in ROLES]
            except LatentflowError:
                pass
        if pins is None:
            try:
                pins = read_pins()
            except LatentflowError:
                pins = {}
        keys = [pin_key(e, r) for r in ROLES]
        rows.append({"name": name, "source": where, "offline": bool(offline),
                     "bytes": None if None in sizes else int(sum(sizes)), "verified": bool(e.verified),
                     "pinned": all(k is not None and k in pins for k in keys)})
    return rows
