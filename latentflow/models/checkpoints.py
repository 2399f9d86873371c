"""Reading checkpoint files into state dicts, and the key-layout adapters of pickled checkpoints.

* ``.safetensors`` through ``safetensors`` only (no pickle involved);
* pickled ``.pt/.pth/.ckpt`` files only through ``torch.load(weights_only=True)`` (tensors, containers and
  plain scalars, never code). :func:`read_state_dict` unpickles such a file ONCE: the state dict it holds is
  cached as ``<cache_dir>/converted/<sha256 of the pickle>.safetensors`` and read from there afterwards;
* checkpoints nest their state dicts (``{"state_dict": ...}``, StudioGAN's ``state_dict`` + optimizer) and
  prefix their keys (``module.`` from DataParallel, ``_orig_mod.`` from ``torch.compile``):
  :func:`extract_state_dict` and :func:`split_pair` undo that;
* a manifest entry's ``reader`` says how its files become state dicts (:func:`read_role_states`):
  ``state_dict`` (the above), ``studiogan`` (:func:`latentflow.nets.read_studiogan_checkpoint`, pre-2022
  layouts upgraded by :func:`latentflow.nets.studiogan_upgrade_state_dict`) or ``xyfjason`` (one file
  ``dict(G=..., D=...)`` read by :func:`latentflow.nets.read_xyfjason_checkpoint`). The converted copy of a
  pickle read by a named reader is cached as ``<sha256>.<reader>.safetensors`` (keys ``G/...``, ``D/...`` for
  a file holding both networks).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._io import atomic_save_safetensors, cache_dir
from ..errors import IntegrityError, ManifestError

log = logging.getLogger("latentflow")

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")

__all__ = [
    "PICKLE_SUFFIXES",
    "read_safetensors",
    "read_pickle_weights_only",
    "read_state_dict",
    "extract_state_dict",
    "split_pair",
    "strip_prefixes",
    "converted_path",
    "read_role_states",
]


def read_safetensors(path: str | Path) -> dict:
    """A state dict from a ``.safetensors`` file, on the CPU (no pickle involved)."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise ManifestError(
            f"{path} is a pickled checkpoint; only latentflow.models.convert reads those "
            "(through torch.load(weights_only=True))"
        )
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
        with warnings.catch_warnings():  # torch's note on the pickle protocol is no news to the user
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise IntegrityError(
            f"{path} is not a readable PyTorch checkpoint: {_unpickler_reason(e)}", path=str(path)
        ) from e
    try:
        import numpy as np

        allowed: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
            np.dtype,
            type(np.dtype("float64")),
            type(np.dtype("float32")),
            type(np.dtype("int64")),
        ]
        try:
            from numpy.core.multiarray import scalar as np_scalar
        except ImportError:  # numpy >= 2 keeps it in numpy._core
            from numpy._core.multiarray import scalar as np_scalar
        allowed.append(np_scalar)
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        pass
    raise IntegrityError(
        f"refused to unpickle {path}: it needs more than tensors and plain containers "
        f"({_unpickler_reason(first)}). latentflow never runs code from a pickle: re-save it as "
        "plain tensors (a state dict), or as safetensors.",
        path=str(path),
    ) from None


#: lines of torch's weights-only refusal that are advice, not the reason (one suggests weights_only=False,
#: which would run the file's code: never repeated here)
_BOILERPLATE = ("weights only load failed", "weights_only", "please file an issue", "check the documentation")


def _unpickler_reason(e: BaseException) -> str:
    """The line of torch's message that says what the file holds (e.g. "Trying to load unsupported GLOBAL
    posix.system ..."), without its advice."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    keep = [ln for ln in lines if not any(b in ln.lower() for b in _BOILERPLATE)]
    reason = (keep or [type(e).__name__])[0]
    return reason.removeprefix("WeightsUnpickler error:").strip() or type(e).__name__


# -- key-layout adapters -----------------------------------------------------------------------------

_PAIR_KEYS = (
    ("G", "D"),
    ("netG", "netD"),
    ("generator", "discriminator"),
    ("gen", "dis"),
    ("Gen", "Dis"),
    ("G_state_dict", "D_state_dict"),
    ("generator_state_dict", "discriminator_state_dict"),
    ("state_dict_G", "state_dict_D"),
    ("model_G", "model_D"),
)
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
        raise ManifestError(
            f"{where}: no state dict found (expected a mapping of tensors, or one under "
            f"{', '.join(_NEST_KEYS)}); got keys {keys}"
        )
    return obj


def strip_prefixes(sd: Mapping) -> dict:
    """Remove ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes shared by every key."""
    sd = dict(sd)
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if sd and all(k.startswith(p) for k in sd):
                sd = {k[len(p) :]: v for k, v in sd.items()}
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
                        raise ManifestError(
                            f"{where}: use_ema=True but no EMA generator ({', '.join(_EMA_KEYS)}) found"
                        )
                    gsrc = ema
                return {
                    "G": extract_state_dict(gsrc, f"{where}[{g}]"),
                    "D": extract_state_dict(cur[d], f"{where}[{d}]"),
                }
        nxt = next((cur[k] for k in _NEST_KEYS if k in cur and isinstance(cur[k], Mapping)), None)
        if nxt is None:
            break
        cur = nxt
    keys = list(obj)[:12] if isinstance(obj, Mapping) else type(obj).__name__
    raise ManifestError(
        f"{where}: cannot find a G/D pair; expected keys like "
        f"{', '.join('/'.join(p) for p in _PAIR_KEYS[:3])} (or pass d_path= for StudioGAN-style "
        f"separate G and D files); got keys {keys}"
    )


def converted_path(sha256: str, reader: str | None = None) -> Path:
    """Where the safetensors copy of the pickled checkpoint with this SHA-256 is cached (one file per reader:
    ``reader=None`` is the plain state-dict reading of :func:`read_state_dict`)."""
    return cache_dir() / "converted" / (f"{sha256}.safetensors" if reader is None else f"{sha256}.{reader}.safetensors")


def _cached_conversion(path: Path, sha256: str, reader: str, produce) -> dict[str, dict]:
    """``{part: state dict}`` of a pickled ``path``: ``produce(unpickled object)`` the first time (the result
    saved as safetensors, parts prefixed ``<part>/``), the cached copy afterwards."""
    cached = converted_path(sha256, reader)
    if cached.is_file():
        try:
            flat = read_safetensors(cached)
            parts: dict[str, dict] = {}
            for k, v in flat.items():
                part, _, key = k.partition("/")
                parts.setdefault(part, {})[key] = v
            return parts
        except IntegrityError as e:  # a damaged cache entry: convert again
            log.warning("rebuilding the converted copy of %s: %s", path, e)
    parts = produce(read_pickle_weights_only(path))
    try:
        flat = {f"{part}/{k}": v.clone() for part, sd in parts.items() for k, v in sd.items()}
        atomic_save_safetensors(
            flat, cached, metadata={"converted_from": path.name, "sha256": sha256, "reader": reader}
        )
        log.info("cached %s as safetensors at %s (reader %s)", path.name, cached, reader)
    except OSError as e:  # a read-only cache must not stop the load
        log.warning("cannot cache the converted copy of %s at %s: %s", path, cached, e)
    return parts


def _studiogan(obj) -> dict:
    from ..nets import read_studiogan_checkpoint, studiogan_upgrade_state_dict

    return studiogan_upgrade_state_dict(read_studiogan_checkpoint(obj))


def read_role_states(reader: str, files: Mapping[str, tuple], what: str = "model") -> dict[str, dict]:
    """``{role: state dict}`` from ``files`` (``{role: (path, sha256)}``, already hash-checked), read as
    ``reader`` says (see the module docstring). With ``xyfjason`` every role names the same file, which is
    unpickled once."""
    from ..nets import read_xyfjason_checkpoint

    if reader == "state_dict":
        return {r: read_state_dict(p, h, what=f"{r} of {what}") for r, (p, h) in files.items()}
    if reader == "studiogan":
        out = {}
        for r, (p, h) in files.items():
            p = Path(p)
            if p.suffix in PICKLE_SUFFIXES:
                out[r] = _cached_conversion(p, h, reader, lambda obj, r=r: {r: _studiogan(obj)})[r]
            else:
                out[r] = _studiogan(read_safetensors(p))
        return out
    if reader == "xyfjason":
        paths = {(str(p), h) for p, h in files.values()}
        if len(paths) != 1:
            raise ManifestError(f"{what}: reader xyfjason reads G and D from one file; got {len(paths)} files")
        ((p, h),) = paths
        p = Path(p)
        if p.suffix not in PICKLE_SUFFIXES:
            raise ManifestError(f"{what}: reader xyfjason reads a torch.save(dict(G=..., D=...)) pickle; got {p.name}")

        def produce(obj):
            g, d = read_xyfjason_checkpoint(obj)
            return {"G": strip_prefixes(g), "D": strip_prefixes(d)}

        parts = _cached_conversion(p, h, reader, produce)
        return {r: parts[r] for r in files}
    raise ManifestError(f'{what}: unknown reader "{reader}"')


def read_state_dict(path: str | Path, sha256: str, what: str = "checkpoint") -> dict:
    """One model's state dict from ``path`` (already hash-checked to ``sha256``): a safetensors file is read
    as it is; a pickled one is unpickled with ``weights_only=True`` the first time only, its state dict
    (nesting and prefixes undone) saved to :func:`converted_path` and read from there on every later load."""
    path = Path(path)
    if path.suffix not in PICKLE_SUFFIXES:
        return read_safetensors(path)
    cached = converted_path(sha256)
    if cached.is_file():
        try:
            return read_safetensors(cached)
        except IntegrityError as e:  # a damaged cache entry: convert again
            log.warning("rebuilding the converted copy of %s: %s", path, e)
    sd = extract_state_dict(read_pickle_weights_only(path), f"{what} ({path})")
    try:
        # clones: safetensors refuses tensors that share memory (tied weights, views of one storage)
        atomic_save_safetensors(
            {k: v.clone() for k, v in sd.items()}, cached, metadata={"converted_from": path.name, "sha256": sha256}
        )
        log.info("cached %s as safetensors at %s", path.name, cached)
    except OSError as e:  # a read-only cache must not stop the load
        log.warning("cannot cache the converted copy of %s at %s: %s", path, cached, e)
    return sd
