"""Data-parallel training over ``torch.distributed`` (``torchrun ... -m latentflow train KIND ...``).

Under a process group of ``P`` ranks a trainer's ``batch_size`` is per process: the global batch is
``P · batch_size``. Every random draw (data batch, latents, noise levels, noise) is made at the global
batch size from the trainer's one generator (the same seed, so the same numbers, on every rank) and
each rank keeps its contiguous slice (``latentflow.dist.shard``). The trained nets are wrapped in
``DistributedDataParallel``, which averages the gradients over the ranks: with equal slices the mean
of the per-rank mean losses is the mean over the global batch, so ``P`` processes take the steps one
process takes with ``batch_size · P``, up to the round-off of summing in another order. The logged
losses are averaged over the ranks (the global batch's), and so is the finiteness check: every rank
stops together. Rank 0 alone writes checkpoints, metrics and the final weights; every rank reads the
checkpoint back on resume (a folder all ranks see), so a resume restores the same state as a
single-process resume (weights, optimizer states, generator and global RNG states, step).

Without a process group (a world of one) everything here is the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import dist

__all__ = ["Parallel"]


class Parallel:
    """What a trainer needs to run data-parallel: the world, ``wrap`` for nets, ``batch`` for the global
    batch size, ``mine`` for this rank's rows of a draw made at the global size, ``mean`` for metrics."""

    def __init__(self, device: torch.device | str):
        self.world = dist.world()
        self.device = torch.device(device)

    @property
    def distributed(self) -> bool:
        return self.world.distributed

    @property
    def main(self) -> bool:
        return self.world.main

    def batch(self, per_rank: int) -> int:
        """The global batch: ``per_rank · world size``."""
        return per_rank * self.world.size

    def mine(self, t: Tensor) -> Tensor:
        """This rank's rows of ``t`` (drawn at the global batch size)."""
        if not self.distributed:
            return t
        return t[dist.shard(t.shape[0])]

    def wrap(self, m: nn.Module) -> nn.Module:
        """``DistributedDataParallel(m)`` under a process group (its gradients averaged over the ranks),
        else ``m``. Keep the unwrapped module for checkpoints, gradient-free forwards and EMA."""
        if not self.distributed:
            return m
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = (
            [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            if self.device.type == "cuda"
            else None
        )
        return DDP(m, device_ids=ids)

    def mean(self, metrics: dict) -> dict:
        """Tensor metrics averaged over the ranks (one all-reduce); the others as they are."""
        if not self.distributed:
            return metrics
        keys = [k for k, v in metrics.items() if isinstance(v, Tensor)]
        if not keys:
            return metrics
        dev = self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
        t = torch.stack([metrics[k].detach().float().reshape(()).to(dev) for k in keys])
        torch.distributed.all_reduce(t)
        t = t / self.world.size
        return {**metrics, **{k: t[i] for i, k in enumerate(keys)}}
