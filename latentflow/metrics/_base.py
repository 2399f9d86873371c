"""What the image metrics share: torch-fidelity's result keys, the names of the feature extractors, the
registry that says how to configure each one, and the cache folder.

A feature-extractor module registers ``resolve(offline, need_logits) -> (torch-fidelity kwargs, weights
tag)`` under its name with :func:`register_extractor`; :mod:`latentflow.metrics.fidelity` looks it up, so
the metric code does not import the extractors and the extractors may call the metric code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import _io
from ..errors import OptionError

KEY_IS_MEAN = "inception_score_mean"
KEY_IS_STD = "inception_score_std"
KEY_FID = "frechet_inception_distance"
KEY_KID_MEAN = "kernel_inception_distance_mean"
KEY_KID_STD = "kernel_inception_distance_std"
KEY_PRECISION = "precision"
KEY_RECALL = "recall"
KEY_F_SCORE = "f_score"

INCEPTION = "inception-v3-compat"
FMNIST = "fmnist-classifier"
FEATURE_EXTRACTORS = (INCEPTION, FMNIST)

Resolver = Callable[[bool | None, bool], tuple[dict, str]]
_EXTRACTORS: dict[str, Resolver] = {}


def register_extractor(name: str):
    """Decorator: ``fn(offline, need_logits) -> (kwargs for torch-fidelity, tag for cache keys)``."""

    def deco(fn: Resolver) -> Resolver:
        _EXTRACTORS[name] = fn
        return fn

    return deco


def resolve_extractor(name: str, offline: bool | None, need_logits: bool) -> tuple[dict, str]:
    """``({"feature_extractor": name, **kwargs}, tag)`` from the resolver registered for ``name``."""
    if name not in _EXTRACTORS:
        raise OptionError(f"feature_extractor: expected one of {', '.join(FEATURE_EXTRACTORS)}; got {name!r}")
    kw, tag = _EXTRACTORS[name](offline, need_logits)
    return {"feature_extractor": name, **kw}, tag


def cache_dir() -> Path:
    """latentflow's cache (:func:`latentflow._io.cache_dir`): ``$LATENTFLOW_CACHE``, else
    ``$XDG_CACHE_HOME/latentflow``, else ``~/.cache/latentflow``."""
    return _io.cache_dir()
