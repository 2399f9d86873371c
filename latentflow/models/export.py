"""Making, writing and converting G/D pairs.

:func:`make_pair` wraps modules built from :mod:`latentflow.nets` with the spec that rebuilds them;
:func:`export` writes ``G.safetensors``, ``D.safetensors`` and ``latentflow.json`` (atomically, with the
umask's file mode; with ``card=True`` also the model card ``README.md``, :mod:`latentflow.models.card`);
:func:`convert` turns a pickled checkpoint (read with ``weights_only=True``) into that
layout.

The output folder is checked before anything is read or built (a file, a read-only file system or a
folder without write permission is one ``OptionError``); the files are written into a staging folder beside
it and moved in together when all are complete (``latentflow.json`` last), so a full disk leaves the folder
as it was (one ``OutputError``), never a lone ``G.safetensors``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from .._io import atomic_save_safetensors, atomic_write_json, check_writable, sha256_file, staged_folder
from ..errors import ManifestError, OptionError, ShapeError
from .checkpoints import extract_state_dict, read_pickle_weights_only, split_pair
from .loading import build, load, load_state, pair_meta
from .pair import ModelPair
from .resolve import SPEC_FILE
from .spec import ROLES, ArchSpec
from .validate import ALL_SOURCE_KINDS, validate_entry

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("latentflow")

__all__ = ["PairInfo", "make_pair", "export", "convert"]


def _kwargs(kwargs, role: str) -> dict:
    """Architecture kwargs from a mapping or a JSON object string (as the CLI's ``--kwargs-g`` passes them)."""
    if kwargs is None:
        return {}
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except ValueError as e:
            raise OptionError(
                f"kwargs_{role.lower()} must be a JSON object such as '{{\"latent_dim\": 100}}'; got {kwargs!r} ({e})"
            ) from e
    if not isinstance(kwargs, Mapping):
        raise OptionError(
            f"kwargs_{role.lower()} must be a mapping (or a JSON object); got {type(kwargs).__name__} {kwargs!r}"
        )
    return dict(kwargs)


def _arch_spec(a, kwargs=None, role: str = "G") -> ArchSpec:
    kwargs = _kwargs(kwargs, role)
    if isinstance(a, ArchSpec):
        return a if not kwargs else ArchSpec(a.name, {**a.kwargs, **kwargs})
    if isinstance(a, Mapping):
        return ArchSpec(str(a["name"]), {**dict(a.get("kwargs") or {}), **kwargs})
    if isinstance(a, str):
        return ArchSpec(a, kwargs)
    raise ManifestError(
        f"arch_{role.lower()} must be an architecture name, an ArchSpec or {{name, kwargs}}; got {type(a).__name__}"
    )


def _output_shape(G, latent_dim: int, arch: ArchSpec) -> list[int]:
    """The shape of one sample, from one forward pass of G; a latent size G cannot take is a ``ShapeError``."""
    import torch

    own = getattr(G, "latent_dim", None)
    if own is not None and int(own) != int(latent_dim):
        raise ShapeError(f"latent_dim={latent_dim} does not fit G ({arch.name}), which takes latents of size {own}")
    was = G.training
    G.eval()
    p = next(iter(G.parameters()), None)
    try:
        with torch.no_grad():
            dev = p.device if p is not None else "cpu"
            k = getattr(G, "num_classes", 0)
            y = (torch.zeros(1, dtype=torch.long, device=dev),) if isinstance(k, int) and k > 0 else ()  # G(z, y)
            x = G(torch.zeros(1, int(latent_dim), device=dev, dtype=p.dtype if p is not None else torch.float32), *y)
    except (RuntimeError, ValueError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ShapeError(
            f"latent_dim={latent_dim} does not fit G ({arch.name}): G(z [1, {latent_dim}]) failed: {first}"
        ) from e
    finally:
        G.train(was)
    return list(x.shape[1:])


class PairInfo(TypedDict, total=False):
    """What :func:`make_pair` and :func:`convert` record about a pair besides its weights (all optional):
    ``latent_dim`` (default ``G.latent_dim``), ``prior`` (``"normal"``), ``d_output`` (``"logit"``),
    ``output_range`` (``(-1.0, 1.0)``), ``license``, ``citation``, ``recipe``, ``sampling`` (recommended
    sampler options) and ``dataset`` (None)."""

    latent_dim: int | None
    prior: str
    d_output: str
    output_range: tuple[float, float] | list[float] | None
    license: str | None
    citation: str | None
    recipe: str | None
    sampling: Mapping | None
    dataset: str | None


def _check_info(fn: str, info: Mapping) -> None:
    for k in info:
        if k not in PairInfo.__annotations__:
            raise TypeError(f"{fn}() got an unexpected keyword argument {k!r}")


def make_pair(
    G,
    D,
    *,
    arch_g,
    arch_d,
    kwargs_g=None,
    kwargs_d=None,
    name: str = "custom",
    output_shape=None,
    **info: Unpack[PairInfo],
) -> ModelPair:
    """Wrap modules built from the zoo into a :class:`ModelPair` whose ``meta['spec']`` :func:`export` can write.
    ``info``: :class:`PairInfo`; ``output_shape`` is found by one forward pass of G when not given."""
    _check_info("make_pair", info)
    ag, ad = _arch_spec(arch_g, kwargs_g, "G"), _arch_spec(arch_d, kwargs_d, "D")
    latent_dim, output_range = info.get("latent_dim"), info.get("output_range", (-1.0, 1.0))
    if latent_dim is None:
        latent_dim = getattr(G, "latent_dim", None)
        if latent_dim is None:
            raise ManifestError("latent_dim is needed: G has no latent_dim attribute")
    if output_shape is None:
        output_shape = _output_shape(G, int(latent_dim), ag)
    raw = {
        "source": {"kind": "local", "root": ""},
        "files": {r: {"path": f"{r}.safetensors"} for r in ROLES},
        "arch": {"G": ag.to_dict(), "D": ad.to_dict()},
        "latent": {"dim": int(latent_dim), "prior": info.get("prior", "normal")},
        "output": {"shape": list(output_shape), "range": list(output_range) if output_range is not None else None},
        "d_output": info.get("d_output", "logit"),
        **{k: info.get(k) for k in ("license", "citation", "recipe")},
        "sampling": dict(info.get("sampling") or {}),
        "dataset": info.get("dataset"),
    }
    entry = validate_entry(name, raw, allow_sources=ALL_SOURCE_KINDS)
    for role, m, a in (("G", G, ag), ("D", D, ad)):  # the spec must rebuild exactly these modules
        ref = build(a)
        load_state(ref, m.state_dict(), what=f"{role} rebuilt from {a.name}{dict(a.kwargs)}")
    return ModelPair(G, D, pair_meta(entry, {r: None for r in ROLES}, G))


def _check_out_dir(out_dir: str | Path, name: str = "out_dir") -> Path:
    """``out_dir`` as a Path, refused (``OptionError``) when it, or the nearest existing folder above it, is
    a file, or when it cannot be written (read-only file system, no permission); checked before anything is
    read or built."""
    if not isinstance(out_dir, (str, Path)) or not str(out_dir):
        raise OptionError(f"{name} must be a folder path; got {out_dir!r}")
    out = Path(out_dir).expanduser()
    p = out
    while not p.exists() and p != p.parent:
        p = p.parent
    if p.exists() and not p.is_dir():
        raise OptionError(
            f"{name} must be a folder; {str(p)!r} is a file"
            + ("" if p == out else f" (so {str(out)!r} cannot be created)")
        )
    check_writable(out, name=name)
    return out


def _as_path(value, name: str) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise OptionError(f"{name} must be a file path; got {value!r}")
    return Path(value).expanduser()


def _check_card_args(card, metrics, tags, repo_id) -> None:
    """The model card's arguments, checked before anything is loaded (``OptionError`` naming each)."""
    import math
    import re
    from numbers import Real

    if not isinstance(card, bool):
        raise OptionError(f"card must be True or False; got {card!r}")
    if metrics is not None:
        if not isinstance(metrics, Mapping):
            raise OptionError(f"metrics must be a mapping of names to numbers (e.g. {{'fid': 12.3}}); got {metrics!r}")
        for k, v in metrics.items():
            if (
                not isinstance(k, str)
                or not k
                or isinstance(v, bool)
                or not isinstance(v, Real)
                or not math.isfinite(v)
            ):
                raise OptionError(f"metrics: expected finite numbers by name (e.g. {{'fid': 12.3}}); got {k}={v!r}")
    if tags is not None and (
        isinstance(tags, str) or not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and t for t in tags)
    ):
        raise OptionError(f"tags must be a list of non-empty strings; got {tags!r}")
    if repo_id is not None and (not isinstance(repo_id, str) or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id)):
        raise OptionError(f"repo_id must look like OWNER/REPO (a Hugging Face Hub repo); got {repo_id!r}")


def export(
    pair_or_ref,
    out_dir: str | Path,
    *,
    card: bool = False,
    metrics: Mapping | None = None,
    tags=None,
    repo_id: str | None = None,
) -> Path:
    """Write ``G.safetensors``, ``D.safetensors`` (each with ``metadata={"latentflow": json.dumps(spec)}``) and
    ``latentflow.json`` (the spec plus file hashes) into ``out_dir``: the layout ``load(folder)`` and
    ``load("hf:user/repo")`` read. ``pair_or_ref`` is a :class:`ModelPair` (from ``load`` or ``make_pair``)
    or anything ``load`` accepts. ``card=True`` also writes ``README.md`` with Hugging Face Hub front matter
    (library_name, tags, license, the ``sampling:`` block, and ``metrics`` such as ``{"fid": 12.3}`` when given)."""
    _check_out_dir(out_dir)
    _check_card_args(card, metrics, tags, repo_id)
    pair = pair_or_ref if isinstance(pair_or_ref, ModelPair) else load(pair_or_ref)
    if pair.G is None or pair.D is None or pair.extra:
        raise ManifestError(
            f'export writes G/D pairs; "{pair.meta.get("name")}" has roles '
            f"{', '.join(pair.meta.get('roles') or [])}. Its training folder already is a layout "
            f"load() reads: copy {SPEC_FILE} and its .safetensors files (or upload them to the Hub)"
        )
    spec = pair.meta.get("spec")
    if not spec:
        raise ManifestError("this ModelPair carries no spec; build it with latentflow.models.make_pair(...)")
    out = Path(out_dir).expanduser()
    files = {}
    with staged_folder(out, last=(SPEC_FILE,)) as stage:  # all files complete before any is moved in
        for role, model in (("G", pair.G), ("D", pair.D)):
            sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
            target = stage / f"{role}.safetensors"
            atomic_save_safetensors(sd, target, metadata={"latentflow": json.dumps(spec), "latentflow_role": role})
            files[role] = {"path": target.name, "sha256": sha256_file(target), "bytes": target.stat().st_size}
        atomic_write_json(stage / SPEC_FILE, {**spec, "files": files})
        if card:
            from .card import write_card

            write_card(stage, spec, metrics=metrics, tags=tags, repo_id=repo_id)
    log.info("exported %s to %s", spec.get("name"), out)
    return out


def convert(
    in_path: str | Path,
    out_dir: str | Path,
    *,
    arch_g,
    arch_d,
    d_path: str | Path | None = None,
    kwargs_g: Mapping | None = None,
    kwargs_d: Mapping | None = None,
    use_ema: bool = False,
    name: str = "converted",
    **info: Unpack[PairInfo],
) -> Path:
    """Turn a pickled ``.pt/.pth/.ckpt`` G/D checkpoint into the :func:`export` layout.

    ``in_path`` holds both models (under ``G``/``D``, ``netG``/``netD``, ``generator``/``discriminator``, ...,
    possibly nested under ``state_dict`` and with ``module.`` prefixes), or only G when ``d_path`` gives D's file
    (StudioGAN's ``model=G-...pth`` / ``model=D-...pth``). Files are read with ``torch.load(weights_only=True)``
    only: a pickle that would run code is refused. The state dicts must fit ``arch_g``/``arch_d`` exactly.
    ``info``: :class:`PairInfo` (``recipe`` defaults to the checkpoint files' names and sha256 digests)."""
    _check_info("convert", info)
    _check_out_dir(out_dir)
    ag, ad = _arch_spec(arch_g, kwargs_g, "G"), _arch_spec(arch_d, kwargs_d, "D")
    in_path = _as_path(in_path, "in_path")
    sources = [in_path] + ([_as_path(d_path, "d_path")] if d_path is not None else [])
    if not isinstance(use_ema, bool):
        raise OptionError(f"use_ema must be True or False; got {use_ema!r}")
    for p in sources:
        if not p.is_file():
            raise ManifestError(f"checkpoint {p} does not exist")
    hashes = [sha256_file(p) for p in sources]
    obj = read_pickle_weights_only(in_path)
    if d_path is None:
        sds = split_pair(obj, str(in_path), use_ema=use_ema)
    else:
        sds = {
            "G": extract_state_dict(obj, str(in_path)),
            "D": extract_state_dict(read_pickle_weights_only(sources[1]), str(sources[1])),
        }
    G, D = build(ag), build(ad)
    load_state(G, sds["G"], what=f"G ({ag.name})")
    load_state(D, sds["D"], what=f"D ({ad.name})")
    G.eval()
    D.eval()
    if info.get("recipe") is None:
        info["recipe"] = "converted from " + ", ".join(f"{p.name} (sha256 {h})" for p, h in zip(sources, hashes))
    return export(make_pair(G, D, arch_g=ag, arch_d=ad, name=name, **info), out_dir)
