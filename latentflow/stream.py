"""Refine many samples in blocks and stream them to disk, so that N samples never sit in memory at once.

``refine_to_disk(G, D, 50_000, "ddls", "out/ddls", chunk=4096, seed=0, steps=1000)`` runs the sampler on
consecutive blocks of chains and writes one safetensors shard per block (``x``, ``z``, the class labels
``y`` of a conditional model and the per-chain diagnostics), each written to a temporary file and moved into place with ``os.replace``, then an
``index.json`` the same way (through ``latentflow._io``: the umask's mode). A shard that is already
there with the same run key is kept (resume).

The run key: :func:`model_identity` of G and D (a SHA-256 of an ``nn.Module``'s state dict: names, dtypes,
shapes and values; for a plain function its module and qualified name, so a closure whose captured
values change is not told apart), the method, seed, N, chunk, the latents and every option except
those that do not change the samples (``progress``, ``batch_size``, ``callback``). A folder holding a
run with another key is refused (use a new folder, or ``overwrite=True`` to replace it), and a rerun
removes ``index.json`` before its first shard, so a killed rerun never leaves a stale index behind.

Determinism: the initial latents (when a count is given) come from one draw of
``sample_latents(n, dim, prior, generator=latent_generator(seed))``; block ``b`` runs with
``block_generator(seed, b)``. Block 0 uses ``seed`` itself, so one block equals
``refine(..., seed=seed)``; later blocks use seeds derived by hashing ``(seed, b)``. The samples depend
on the seed and the block layout (``chunk``), not on ``batch_size``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ._io import atomic_save_safetensors, atomic_write_json
from .errors import OptionError
from .rng import sample_latents

log = logging.getLogger("latentflow")

__all__ = ["refine_to_disk", "load_shards", "block_generator", "latent_generator", "block_seed", "model_identity"]

INDEX = "index.json"


def block_seed(seed: int, block: int, purpose: str = "block") -> int:
    """A 63-bit seed derived from ``(seed, block, purpose)``; block 0 of purpose "block" is ``seed``."""
    if purpose == "block" and block == 0:
        return int(seed)
    h = hashlib.sha256(f"latentflow/stream/{purpose}/{int(seed)}/{int(block)}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def block_generator(seed: int, block: int) -> torch.Generator:
    """The CPU generator block ``block`` of a streamed run with ``seed`` samples with."""
    return torch.Generator("cpu").manual_seed(block_seed(seed, block))


def latent_generator(seed: int) -> torch.Generator:
    """The CPU generator the initial latents of a streamed run (given a count) are drawn from."""
    return torch.Generator("cpu").manual_seed(block_seed(seed, 0, "latents"))


#: options that do not change the samples, left out of the run key
NOT_IN_KEY = ("progress", "batch_size", "callback")


def model_identity(f: Callable | None) -> str:
    """What the run key knows of a G or D: ``"module:<sha256>"`` of an ``nn.Module``'s state dict (every
    entry's name, dtype, shape and bytes, in order), ``"callable:<module>.<qualname>"`` for anything else
    (a function is known by its name, not by what it computes), ``"none"`` for None."""
    if f is None:
        return "none"
    if isinstance(f, nn.Module):
        h = hashlib.sha256()
        for name, t in f.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return "module:" + h.hexdigest()
    fn = getattr(f, "__func__", f)
    name = getattr(fn, "__qualname__", None) or type(f).__qualname__
    return f"callable:{getattr(fn, '__module__', None) or type(f).__module__}.{name}"


def _run_key(method: str, seed: int, n: int, chunk: int, options: dict, z_hash: str, models: dict) -> str:
    enc = json.dumps({"method": method, "seed": int(seed), "n": n, "chunk": chunk, "z": z_hash, "models": models,
                      "options": {k: repr(v) for k, v in sorted(options.items()) if k not in NOT_IN_KEY}},
                     sort_keys=True)
    return hashlib.sha256(enc.encode()).hexdigest()[:32]


def _keys_in(out: Path) -> set[str]:
    """The run keys of what ``out`` already holds (its index and shards)."""
    from safetensors import safe_open
    keys = set()
    idx = out / INDEX
    if idx.exists():
        try:
            keys.add(str(json.loads(idx.read_text()).get("run_key")))
        except (OSError, ValueError, AttributeError):
            keys.add("unreadable index.json")
    for p in sorted(out.glob("shard-*-of-*.safetensors")):
        try:
            with safe_open(str(p), "pt") as fh:
                keys.add(str((fh.metadata() or {}).get("run_key")))
        except Exception:  # noqa: BLE001  (unreadable: rewritten when its block comes)
            pass
    return keys


def _clear(out: Path) -> None:
    (out / INDEX).unlink(missing_ok=True)
    for p in out.glob("shard-*-of-*.safetensors"):
        p.unlink()


def _shard_name(b: int, n_blocks: int) -> str:
    return f"shard-{b:05d}-of-{n_blocks:05d}.safetensors"


def refine_to_disk(G: Callable | None, D: Callable, z_or_n: Tensor | int, method: str = "ddls",
                   out_path: str | os.PathLike = "refined", *, chunk: int = 4096, seed: int = 0,
                   latent_dim: int | None = None, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32, resume: bool = True, overwrite: bool = False,
                   **options) -> dict:
    """Run ``refine(G, D, z_block, method, generator=block_generator(seed, b), **options)`` over blocks
    of ``chunk`` chains and write each block's result as a safetensors shard under ``out_path``.

    Args:
        z_or_n: initial latents ``[N, d]`` (kept on their device), or a count N: the latents are then
            drawn from the prior (``options["prior"]``, default normal) with ``latent_generator(seed)``
            and need ``latent_dim`` (or a ``G.latent_dim`` attribute).
        method: a registered method name (``latentflow.methods()``).
        out_path: a directory; it receives ``shard-BBBBB-of-NNNNN.safetensors`` and ``index.json``.
        chunk: chains per block (the layout the samples depend on). Within a block the sampler's own
            ``batch_size`` option (an int or ``"auto"``) still chunks the G/D evaluations.
        seed: the run's seed (see the module docstring for how blocks derive theirs).
        device, dtype: where and in what dtype latents drawn from a count live.
        resume: keep shards already written by a run with the same key (G, D, method, seed, N, chunk,
            options, latents; see the module docstring), so an interrupted run continues where it
            stopped; ``resume=False`` rewrites them.
        overwrite: replace a run with another key in ``out_path`` (otherwise refused).
        options: the method's options (``generator`` is not allowed: use ``seed``). ``y`` (class labels of a
            conditional model, ``[N]`` or one int) is cut into blocks with the latents; without it, each block
            draws uniform labels per chain. Each shard holds its block's labels as ``y``.

    Returns the index (also written to ``out_path/index.json``): shard files, N, and summed counters.
    """
    from .api import refine
    from .samplers import check_options

    check_options(method, options)
    if "generator" in options:
        raise OptionError("refine_to_disk takes seed=, not generator= (each block derives its own generator)")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise OptionError(f"chunk must be a positive int; got {chunk!r}")
    if isinstance(z_or_n, Tensor):
        z_all = z_or_n
        n = z_all.shape[0]
        z_hash = hashlib.sha256(z_all.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    elif isinstance(z_or_n, int) and not isinstance(z_or_n, bool) and z_or_n >= 1:
        n = z_or_n
        dim = latent_dim if latent_dim is not None else getattr(G, "latent_dim", None)
        if not isinstance(dim, int) or dim < 1:
            raise OptionError("refine_to_disk with a count needs latent_dim= (G has no int latent_dim attribute)")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        z_all = sample_latents(n, dim, options.get("prior", "normal"), generator=latent_generator(seed),
                               device=dev, dtype=dtype)
        z_hash = f"drawn:{dim}:{options.get('prior', 'normal')}:{dtype}"
    else:
        raise OptionError(f"z_or_n must be a latent tensor [N, d] or a positive int count; got {z_or_n!r}")

    y_all = options.pop("y", None)
    if isinstance(y_all, Tensor):
        if tuple(y_all.shape) != (n,):
            raise OptionError(f"y must hold one label per sample, shape ({n},); got shape {tuple(y_all.shape)}")
        y_key = hashlib.sha256(y_all.detach().to("cpu", torch.long).contiguous().numpy().tobytes()).hexdigest()[:16]
    else:
        y_key = repr(y_all)

    out = Path(out_path)
    if out.exists() and not out.is_dir():
        raise OptionError(f"out_path must be a folder; {str(out)!r} is a file")
    n_blocks = -(-n // chunk)
    key = _run_key(method, seed, n, chunk, {**options, "y": y_key} if y_all is not None else options, z_hash,
                   {"G": model_identity(G), "D": model_identity(D)})
    if out.is_dir():
        other = _keys_in(out) - {key}
        if other and not overwrite:
            raise OptionError(f"out_path {str(out)!r} holds a refine_to_disk run with other settings (G, D, "
                              f"method, seed, N, chunk, latents or options differ); use a new folder, or "
                              f"overwrite=True to replace it")
        if other:
            log.info("refine_to_disk: overwrite=True, removing the other run in %s", out)
            _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)   # a killed rerun must not leave the old index behind
    totals: dict[str, float] = {}
    shards = []
    for b in range(n_blocks):
        lo, hi = b * chunk, min((b + 1) * chunk, n)
        path = out / _shard_name(b, n_blocks)
        meta = {"run_key": key, "block": str(b), "start": str(lo), "stop": str(hi), "method": method,
                "seed": str(seed)}
        if resume and path.exists():
            try:
                from safetensors import safe_open
                with safe_open(str(path), "pt") as fh:
                    old = fh.metadata() or {}
                if old.get("run_key") == key:
                    log.info("refine_to_disk: keeping %s (same run)", path.name)
                    shards.append({"file": path.name, "start": lo, "stop": hi,
                                   "counters": json.loads(old.get("counters", "{}"))})
                    for k, v in shards[-1]["counters"].items():
                        totals[k] = totals.get(k, 0) + v
                    continue
            except Exception:  # unreadable or foreign: rewrite it
                pass
        y_b = y_all[lo:hi] if isinstance(y_all, Tensor) else y_all
        res = refine(G, D, z_all[lo:hi], method=method, generator=block_generator(seed, b), y=y_b, **options)
        tensors = {"x": res.x}
        if res.z is not None:
            tensors["z"] = res.z
        if res.y is not None:
            tensors["y"] = res.y
        for k, v in res.info.items():
            if isinstance(v, Tensor) and v.dim() >= 1 and v.shape[0] == hi - lo:
                tensors["info." + k] = v
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        counters = {k: res.info[k] for k in ("n_G_forward", "n_G_backward", "n_D_forward", "n_D_backward",
                                             "wall_s") if k in res.info}
        meta["counters"] = json.dumps(counters)
        meta["options"] = json.dumps(res.info.get("options", {}), default=repr)
        atomic_save_safetensors(tensors, path, metadata=meta)
        del res, tensors
        for k, v in counters.items():
            totals[k] = totals.get(k, 0) + v
        shards.append({"file": path.name, "start": lo, "stop": hi, "counters": counters})
        log.info("refine_to_disk: wrote %s (%d/%d)", path.name, b + 1, n_blocks)
    index = {"schema": 1, "method": method, "seed": int(seed), "n": n, "chunk": chunk, "run_key": key,
             "shards": shards, "totals": totals,
             "options": json.loads(json.dumps(options, default=repr))}
    if y_all is not None:
        index["y"] = y_key if isinstance(y_all, Tensor) else y_all
    atomic_write_json(out / INDEX, index, indent=1)
    return index


def load_shards(out_path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> dict[str, Tensor]:
    """Concatenate the shards of a ``refine_to_disk`` run (all tensors, or only ``keys``), in order.

    Loads everything into memory: for 50k images read the shards one by one instead."""
    from safetensors.torch import load_file
    out = Path(out_path)
    idx_path = out / INDEX
    if not idx_path.exists():
        raise OptionError(f"{out} has no {INDEX}: not a finished refine_to_disk output")
    index = json.loads(idx_path.read_text())
    parts: dict[str, list[Tensor]] = {}
    for sh in index["shards"]:
        for k, v in load_file(str(out / sh["file"])).items():
            if keys is None or k in keys:
                parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}
