"""Trainers, by kind. Each kind is a config dataclass plus ``train(cfg, out, *, progress, resume)``.

``make_config(Config, overrides)`` checks ``--set`` values (names and types) before building a config; a
run whose loss or weights become non-finite stops with :class:`TrainingDiverged` (a ``LatentflowError``),
keeping its last finite checkpoint.

``TRAINERS`` maps a kind to ``(module, config class name, train function name)``; modules are imported
only when a kind is used, so ``import latentflow`` stays light.
"""

from __future__ import annotations

import importlib

from ..errors import OptionError, suggest
from ..options import parse_pairs
from ._loop import TrainingDiverged
from .config import check_config, make_config

__all__ = [
    "TRAINERS",
    "PARALLEL_TRAINERS",
    "check_parallel",
    "get_trainer",
    "parse_overrides",
    "make_config",
    "check_config",
    "TrainingDiverged",
]

TRAINERS: dict[str, tuple[str, str, str]] = {
    "gan": ("latentflow.train.gan", "GANConfig", "train_gan"),
    "dflow": ("latentflow.train.dflow", "DFlowConfig", "train_dflow"),
    "scoregan": ("latentflow.train.score_gan", "ScoreGANConfig", "train_score_gan"),
    "flowgan": ("latentflow.train.flowgan", "FloWGANConfig", "train_flowgan"),
    "dgd": ("latentflow.train.flowgan", "NoiseDConfig", "train_noise_d"),
    "denoiser": ("latentflow.train.denoiser", "DenoiserConfig", "train_denoiser"),
    "dgdisc": ("latentflow.train.dg_disc", "DGDiscConfig", "train_dg_disc"),
    "corrector": ("latentflow.train.corrector", "CorrectorConfig", "train_corrector"),
}

#: the trainers that run data-parallel under torchrun (``latentflow.train.parallel``)
PARALLEL_TRAINERS = ("gan", "scoregan")


def check_parallel(kind: str) -> None:
    """Refuse, under a process group of more than one rank, a trainer that does not run data-parallel
    (it would train the same model once per rank, every rank writing the same files)."""
    from ..dist import world

    w = world()
    if w.distributed and kind not in PARALLEL_TRAINERS:
        raise OptionError(
            f'trainer "{kind}" does not run data-parallel (torchrun with {w.size} processes); '
            f"run it in one process, or use one of {', '.join(PARALLEL_TRAINERS)}"
        )


def get_trainer(kind: str):
    """``(ConfigClass, train_fn)`` for ``kind``."""
    if kind not in TRAINERS:
        raise OptionError(
            f'Unknown trainer "{kind}". Available: {", ".join(sorted(TRAINERS))}.' + suggest(kind, TRAINERS)
        )
    mod, cfg, fn = TRAINERS[kind]
    try:
        m = importlib.import_module(mod)
        return getattr(m, cfg), getattr(m, fn)
    except (ImportError, AttributeError) as e:
        raise OptionError(f'trainer "{kind}" is not available in this version: {e}') from e


def trainer_presets(kind: str) -> dict[str, dict]:
    """The named recipes of trainer ``kind`` (its module's ``PRESETS``; ``{}`` when it has none)."""
    get_trainer(kind)
    m = importlib.import_module(TRAINERS[kind][0])
    return dict(getattr(m, "PRESETS", {}) or {})


def parse_overrides(items) -> dict[str, dict]:
    """``["dflow.lr=1e-3", 'dflow.arch_kwargs={"width": 64}']`` -> ``{"dflow": {"lr": 0.001, ...}}``: the
    benchmarks' ``--set TRAINER.KEY=VALUE`` (a value is JSON where it parses, else the plain string)."""
    out: dict[str, dict] = {}
    for key, v in parse_pairs(items, name="--set").items():
        kind, _, name = key.partition(".")
        out.setdefault(kind, {})[name] = v
    return out
