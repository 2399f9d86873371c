"""Data parallelism through ``torch.distributed``: which chains this process takes, and the few
collectives the app layer needs (barrier, summing counters, broadcasting a decision).

latentflow does not launch processes: run it under ``torchrun`` (or initialise a process group
yourself). ``init_from_env()`` joins the group torchrun describes in the environment (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) with NCCL when CUDA is available and gloo
otherwise. Without a group every function here acts as a world of one.

Chains are split into contiguous, balanced slices (:func:`shard`), and each rank samples its slice with
``chain_offset=slice.start``: the per-chain random streams make the rows a rank produces equal to the
same rows of a single-process run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from .errors import OptionError

log = logging.getLogger("latentflow")

__all__ = [
    "World",
    "world",
    "init_from_env",
    "shard",
    "barrier",
    "sum_ints",
    "broadcast_object",
    "gather_objects",
    "agree",
    "is_main",
]


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world() -> World:
    """This process's rank and the world size (a world of one without a process group)."""
    if not _initialized():
        return World()
    d = torch.distributed
    return World(d.get_rank(), d.get_world_size(), int(os.environ.get("LOCAL_RANK", d.get_rank())))


def is_main() -> bool:
    return world().main


def init_from_env(backend: str | None = None) -> World:
    """Join the process group that ``torchrun`` describes in the environment, once.

    Does nothing (a world of one) when ``WORLD_SIZE`` is unset or 1, or when a group already exists.
    ``backend``: ``"nccl"`` or ``"gloo"``; default NCCL when CUDA is available, else gloo. With NCCL the
    process binds to the CUDA device ``LOCAL_RANK``."""
    if _initialized():
        return world()
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    if not torch.distributed.is_available():
        raise OptionError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise OptionError(f'backend must be "nccl" or "gloo"; got {backend!r}')
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local)
    torch.distributed.init_process_group(backend=backend)
    import atexit

    atexit.register(_leave)
    w = world()
    log.info("torch.distributed: rank %d of %d (%s)", w.rank, w.size, backend)
    return w


def _leave() -> None:
    """At exit of a process that joined a group here: free what still holds the group (a
    ``DistributedDataParallel`` wrapper kept alive by a reference cycle), wait for the peers, leave.
    Destroying the group while such an object lives aborts the process in gloo's destructor."""
    import gc

    if not _initialized():
        return
    gc.collect()
    try:
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def shard(n: int, rank: int | None = None, size: int | None = None) -> slice:
    """Rows ``[start, stop)`` of ``n`` chains for ``rank`` of ``size``: contiguous, sizes differ by at
    most one, earlier ranks take the extra rows."""
    w = world()
    rank = w.rank if rank is None else rank
    size = w.size if size is None else size
    if not (isinstance(n, int) and n >= 0):
        raise OptionError(f"n must be an int >= 0; got {n!r}")
    if not (0 <= rank < size):
        raise OptionError(f"rank must lie in [0, {size}); got {rank}")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def barrier() -> None:
    if _initialized():
        torch.distributed.barrier()


def sum_ints(values: dict[str, int]) -> dict[str, int]:
    """Sum integer counters over all ranks (every rank gets the totals); keys must match across ranks."""
    if not _initialized() or not values:
        return dict(values)
    keys = sorted(values)
    dev = (
        torch.device("cuda", torch.cuda.current_device())
        if torch.distributed.get_backend() == "nccl"
        else torch.device("cpu")
    )
    t = torch.tensor([int(values[k]) for k in keys], dtype=torch.int64, device=dev)
    torch.distributed.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def broadcast_object(obj, src: int = 0):
    """``obj`` from rank ``src`` on every rank (a world of one returns it unchanged)."""
    if not _initialized():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in a world of one)."""
    if not _initialized():
        return [obj]
    box = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(box, obj)
    return box


def agree(fn, everyone: bool = False):
    """Run ``fn`` on rank 0 (``everyone=True``: on every rank) and share the outcome: rank 0's return
    value on every rank, or the first failure raised on every rank as an ``OptionError`` (a peer's
    failure named by its rank), so that no rank waits forever in a collective for a peer that failed.
    A world of one just runs ``fn`` (its exceptions unchanged)."""
    w = world()
    if not w.distributed:
        return fn()
    value, err = None, None
    if everyone or w.main:
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001  (shared, then raised on every rank)
            err = str(e) if isinstance(e, OptionError) else f"rank {w.rank}: {type(e).__name__}: {e}"
            if not isinstance(e, OptionError):
                log.exception("rank %d failed", w.rank)
    errs = gather_objects(err) if everyone else [broadcast_object(err)]
    first = next((e for e in errs if e is not None), None)
    if first is not None:
        raise OptionError(first)
    return broadcast_object(value)
