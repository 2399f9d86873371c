"""Refine many samples in blocks and stream them to disk, so that N samples never sit in memory at once.

``refine_to_disk(G, D, 50_000, "ddls", "out/ddls", chunk=4096, seed=0, steps=1000)`` runs the sampler on
consecutive blocks of chains and writes one safetensors shard per block (``x``, ``z`` and the per-chain
diagnostics), each written to a temporary file and moved into place with ``os.replace``, then an
``index.json`` the same way (through ``latentflow._io``: the umask's mode). A shard that is already
there with the same run key is kept (resume).

The run key: :func:`model_identity` of G and D (a SHA-256 of an ``nn.Module``'s state dict: names, dtypes,
shapes and values; for a plain function its module and qualified name, so a closure whose captured
values change is not told apart), the method, seed, N, chunk, the latents and every option except
those that do not change the samples (``progress``, ``batch_size``, ``callback``). A folder holding a
run with another key is refused (use a new folder, or ``overwrite=True`` to replace it), and a rerun
removes ``index.json`` before its first shard, so a killed rerun never leaves a stale index behind.

Determinism (chunk-independent): chain ``c`` (its global row index) is the same whatever block, batch
or process computes it. Every block runs ``refine(..., seed=seed, chain_offset=block_start)``, so the
sampler's per-chain streams are keyed by ``(seed, c)`` (``latentflow.rng``); the initial latents, when
a count is given, are per-chain too: :func:`chain_latents` draws row ``c`` from its own stream under a
key derived from the seed (:func:`latent_key`), so a block draws only its own rows. One block therefore
equals ``refine(G, D, chain_latents(seed, 0, n, d), seed=seed)``, and ``chunk=8`` and ``chunk=24`` give
the same samples up to the round-off of evaluating G and D on other batch shapes (MALA: the same
accept decisions, except where round-off moves a log-ratio across its uniform). ``chunk`` still enters
the run key: it sets which rows each shard file holds.

Processes: under ``torch.distributed`` (``torchrun``, or a process group set up by the caller) every
rank calls ``refine_to_disk`` with the same arguments; the blocks (numbered globally, as in a single
process) are split into contiguous balanced runs (``latentflow.dist.shard``), each rank writes its own
shards into ``out_path`` (a folder every rank can see), and rank 0 writes ``index.json`` once all are
there. Every rank returns the index. Resume works the same: a rerun after a killed rank keeps every
finished shard of the same key, whatever the number of processes.

A lock file in the folder (``.lock``, taken by rank 0 for the whole run) refuses a second concurrent run
into the same ``out_path``; a lock left by a killed run is taken over. A write the file system refuses
(full, read-only) ends the run with one ``OutputError``: the shards already written stay, nothing half
written is left, and a rerun resumes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from .. import dist
from .._io import FolderLock
from ..errors import OptionError
from ..rng import stream_key
from ..samplers import DEFAULT_METHOD
from .chains import NOT_IN_KEY, block_seed, chain_latents, latent_key, model_identity, run_key
from .shards import COUNTERS, INDEX, LOCK, clear, keys_in, load_result, load_shards, write_blocks, write_index

log = logging.getLogger("latentflow")

__all__ = [
    "refine_to_disk",
    "load_shards",
    "load_result",
    "chain_latents",
    "latent_key",
    "block_seed",
    "model_identity",
    "INDEX",
    "LOCK",
    "COUNTERS",
    "NOT_IN_KEY",
]


def refine_to_disk(
    G: Callable | None,
    D: Callable,
    z_or_n: Tensor | int,
    method: str = DEFAULT_METHOD,
    out_path: str | os.PathLike = "refined",
    *,
    chunk: int = 4096,
    seed: int | torch.Generator = 0,
    latent_dim: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    resume: bool = True,
    overwrite: bool = False,
    **options,
) -> dict:
    """Run ``refine(G, D, z[lo:hi], method, seed=seed, chain_offset=lo, **options)`` over blocks of
    ``chunk`` chains and write each block's result as a safetensors shard under ``out_path``.

    Args:
        z_or_n: initial latents ``[N, d]`` (kept on their device; every process passes all of them and
            takes its blocks' rows), or a count N: the latents are then drawn per chain,
            ``chain_latents(seed, lo, hi, latent_dim, prior)`` per block (``options["prior"]``, default
            normal), which needs ``latent_dim`` (or a ``G.latent_dim`` attribute).
        method: a registered method name (``latentflow.methods()``).
        out_path: a directory; it receives ``shard-BBBBB-of-NNNNN.safetensors`` and ``index.json``.
        chunk: chains per block (which rows each shard holds; the samples do not depend on it). Within a
            block the sampler's own ``batch_size`` option (an int or ``"auto"``) chunks the G/D calls.
        seed: the run's seed (the key of the per-chain streams; see the module docstring), or a
            ``torch.Generator``: every block then samples with a copy of its present state (as one
            ``refine(..., generator=g)`` call would; ``g`` itself is not advanced), the run key holds a
            hash of that state, and latents drawn from a count use ``stream_key(copy)`` as their seed.
        device, dtype: where and in what dtype latents drawn from a count live.
        resume: keep shards already written by a run with the same key (G, D, method, seed, N, chunk,
            options, latents; see the module docstring), so an interrupted run continues where it
            stopped; ``resume=False`` rewrites them.
        overwrite: replace a run with another key in ``out_path`` (otherwise refused).
        options: the method's options (``generator`` and ``chain_offset`` are not allowed: the run
            sets both from ``seed`` and the block). ``y`` (class labels of a conditional model, ``[N]`` or
            one int) is cut into blocks with the latents; without it, each chain draws a uniform label from
            its own stream (so the labels, too, do not depend on ``chunk``). Each shard holds its block's
            labels as ``y``.

    Under ``torch.distributed`` every rank calls this with the same arguments and writes its own blocks
    (module docstring). Returns the index (also written to ``out_path/index.json``): shard files, N, and
    the counters summed over all shards."""
    from ..samplers import check_options

    check_options(method, options)
    for bad, why in (("generator", "seed="), ("chain_offset", "the block's start")):
        if bad in options:
            raise OptionError(f"refine_to_disk takes seed=, not {bad}= (every block uses {why})")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise OptionError(f"chunk must be a positive int; got {chunk!r}")
    if isinstance(seed, torch.Generator):
        state = seed.get_state()
        gen_device = seed.device

        def make_gen():
            g = torch.Generator(gen_device)
            g.set_state(state)
            return g

        seed_id: int | str = "generator:" + hashlib.sha256(state.numpy().tobytes()).hexdigest()[:16]
        latent_seed = stream_key(make_gen())
    elif isinstance(seed, int) and not isinstance(seed, bool):

        def make_gen():
            return torch.Generator("cpu").manual_seed(seed)

        seed_id = latent_seed = int(seed)
    else:
        raise OptionError(f"seed must be an int or a torch.Generator; got {seed!r}")
    prior = options.get("prior", "normal")
    if isinstance(z_or_n, Tensor):
        z_all = z_or_n
        n = z_all.shape[0]
        z_hash = hashlib.sha256(z_all.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]

        def rows(lo, hi):
            return z_all[lo:hi]
    elif isinstance(z_or_n, int) and not isinstance(z_or_n, bool) and z_or_n >= 1:
        n = z_or_n
        dim = latent_dim if latent_dim is not None else getattr(G, "latent_dim", None)
        if not isinstance(dim, int) or dim < 1:
            raise OptionError("refine_to_disk with a count needs latent_dim= (G has no int latent_dim attribute)")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        z_hash = f"chain-latents:{dim}:{prior}:{dtype}"

        def rows(lo, hi):
            return chain_latents(latent_seed, lo, hi, dim, prior, device=dev, dtype=dtype)
    else:
        raise OptionError(f"z_or_n must be a latent tensor [N, d] or a positive int count; got {z_or_n!r}")

    options = dict(options)
    y_all = options.pop("y", None)
    if isinstance(y_all, Tensor):
        if tuple(y_all.shape) != (n,):
            raise OptionError(f"y must hold one label per sample, shape ({n},); got shape {tuple(y_all.shape)}")
        y_key = hashlib.sha256(y_all.detach().to("cpu", torch.long).contiguous().numpy().tobytes()).hexdigest()[:16]
    else:
        y_key = repr(y_all)

    out = Path(out_path)
    n_blocks = -(-n // chunk)
    key = run_key(
        method,
        seed_id,
        n,
        chunk,
        {**options, "y": y_key} if y_all is not None else options,
        z_hash,
        {"G": model_identity(G), "D": model_identity(D)},
    )
    lock = FolderLock(out / LOCK, out, "refine_to_disk")  # taken by rank 0 only
    try:
        dist.agree(lambda: _prepare(out, key, overwrite, lock))  # rank 0 locks, checks, clears; all learn it
        return _run_blocks(
            G, D, rows, method, out, key, make_gen, seed_id, n, chunk, n_blocks, resume, options, y_all, y_key
        )
    finally:
        lock.release()


def _run_blocks(G, D, rows, method, out, key, make_gen, seed_id, n, chunk, n_blocks, resume, options, y_all, y_key):
    dist.barrier()  # nobody writes before the old index is gone
    mine = dist.shard(n_blocks)
    dist.agree(
        lambda: write_blocks(
            G,
            D,
            rows,
            method,
            out,
            key,
            make_gen,
            seed_id,
            n,
            chunk,
            range(mine.start, mine.stop),
            resume,
            options,
            y_all,
        ),
        everyone=True,
    )
    index = dist.agree(
        lambda: write_index(
            out,
            key,
            method,
            seed_id,
            n,
            chunk,
            options,
            None if y_all is None else (y_key if isinstance(y_all, Tensor) else y_all),
        )
    )
    return index


def _prepare(out: Path, key: str, overwrite: bool, lock: FolderLock | None = None) -> None:
    if out.exists() and not out.is_dir():
        raise OptionError(f"out_path must be a folder; {str(out)!r} is a file")
    if lock is not None:
        lock.acquire()
    if out.is_dir():
        other = keys_in(out) - {key}
        if other and not overwrite:
            raise OptionError(
                f"out_path {str(out)!r} holds a refine_to_disk run with other settings (G, D, "
                f"method, seed, N, chunk, latents or options differ); use a new folder, or "
                f"overwrite=True to replace it"
            )
        if other:
            log.info("refine_to_disk: overwrite=True, removing the other run in %s", out)
            clear(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)  # a killed rerun must not leave the old index behind
    for stale in [*out.glob(".shard-*.tmp"), *out.glob(f".{INDEX}.*.tmp")]:  # half-written by a killed run
        stale.unlink(missing_ok=True)
