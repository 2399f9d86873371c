"""The start of a trainer: :func:`start` (the config checked, the device, the seed of the initial weights)
and, for a trainer that trains one network, :func:`one_net_run` (its step generator, Adam optimiser, EMA copy
and :class:`~latentflow.train._loop.Run`, built in the same order by every such trainer)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ._loop import LoopOptions, Run, make_ema
from .config import train_device

__all__ = ["OneNet", "one_net_run", "start"]


def start(cfg, out) -> torch.device:
    """Validate ``cfg``, check its device and the folder ``out`` (:func:`~latentflow.train.config.train_device`),
    seed torch's global generator with ``cfg.seed`` (the initial weights); returns the device."""
    cfg.validate()
    device = train_device(cfg, out)
    torch.manual_seed(cfg.seed)
    return device


class OneNet(NamedTuple):
    run: Run
    opt: torch.optim.Optimizer
    gen: torch.Generator
    ema: nn.Module | None  # the EMA copy (saved as ``<name>_ema``) when ``cfg.ema > 0``, else None


def one_net_run(out, cfg, name: str, net: nn.Module, loop: LoopOptions) -> OneNet:
    """Adam on ``net`` (``cfg.lr``, ``cfg.betas``), the step generator seeded ``cfg.seed + 1``, an EMA copy of
    ``net`` when ``cfg`` has ``ema > 0``, and the :class:`Run` that checkpoints them in ``out``."""
    gen = torch.Generator("cpu").manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    checkpointed = {name: net}
    ema = None
    if getattr(cfg, "ema", 0) > 0:
        checkpointed[f"{name}_ema"] = ema = make_ema(net)
    return OneNet(Run(out, cfg, checkpointed, {name: opt}, gen, **loop), opt, gen, ema)
