"""The keys of a ``refine_to_disk`` run: each chain's initial latent from its own stream, seeds derived per
block, and the run key (what a model, a method and its options are known by)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import OptionError
from ..rng import ChainStream, stream_key


def block_seed(seed: int, block: int, purpose: str = "block") -> int:
    """A 63-bit seed derived from ``(seed, block, purpose)``; block 0 of purpose "block" is ``seed``."""
    if purpose == "block" and block == 0:
        return int(seed)
    h = hashlib.sha256(f"latentflow/stream/{purpose}/{int(seed)}/{int(block)}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def latent_key(seed: int) -> int:
    """The key of the per-chain streams the initial latents of a run with ``seed`` come from: the
    stream key (``latentflow.rng.stream_key``) of the seed derived by ``block_seed(seed, 0, "latents")``,
    so it differs from the key the sampler draws its noise with (``stream_key(seed)``)."""
    return stream_key(block_seed(seed, 0, "latents"))


def chain_latents(
    seed: int,
    start: int,
    stop: int,
    dim: int,
    prior: str = "normal",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Initial latents ``[stop - start, dim]`` of chains ``start .. stop - 1`` of a run with ``seed``: row
    ``c`` is ``ChainStream(latent_key(seed), c).latents(step 0, slot 0, dim, prior)`` (N(0, I) or
    U[-1, 1]^dim), the same whichever rows are drawn together."""
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop):
        raise OptionError(f"chain_latents needs ints 0 <= start < stop; got start={start!r}, stop={stop!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise OptionError(f"dim must be an int >= 1; got {dim!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    ids = torch.arange(start, stop, device=dev, dtype=torch.int64)
    return ChainStream(latent_key(seed), ids).latents(0, 0, dim, prior, dtype)


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


def run_key(method: str, seed: int | str, n: int, chunk: int, options: dict, z_hash: str, models: dict) -> str:
    enc = json.dumps(
        {
            "method": method,
            "seed": seed,
            "n": n,
            "chunk": chunk,
            "z": z_hash,
            "models": models,
            "options": {k: repr(v) for k, v in sorted(options.items()) if k not in NOT_IN_KEY},
        },
        sort_keys=True,
    )
    return hashlib.sha256(enc.encode()).hexdigest()[:32]
