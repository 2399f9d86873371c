"""Trainers, by kind. Each kind is a config dataclass plus ``train(cfg, out, *, progress, resume)``.

``TRAINERS`` maps a kind to ``(module, config class name, train function name)``; modules are imported
only when a kind is used, so ``import latentflow`` stays light.
"""
from __future__ import annotations

import importlib

from ..errors import OptionError

TRAINERS: dict[str, tuple[str, str, str]] = {
    "gan": ("latentflow.train.gan", "GANConfig", "train_gan"),
    "dflow": ("latentflow.train.dflow", "DFlowConfig", "train_dflow"),
    "scoregan": ("latentflow.train.score_gan", "ScoreGANConfig", "train_score_gan"),
    "flowgan": ("latentflow.train.flowgan", "FloWGANConfig", "train_flowgan"),
    "dgd": ("latentflow.train.flowgan", "NoiseDConfig", "train_noise_d"),
}


def get_trainer(kind: str):
    """``(ConfigClass, train_fn)`` for ``kind``."""
    if kind not in TRAINERS:
        raise OptionError(f'Unknown trainer "{kind}". Available: {", ".join(sorted(TRAINERS))}.')
    mod, cfg, fn = TRAINERS[kind]
    try:
        m = importlib.import_module(mod)
        return getattr(m, cfg), getattr(m, fn)
    except (ImportError, AttributeError) as e:
        raise OptionError(f'trainer "{kind}" is not available in this version: {e}') from e
