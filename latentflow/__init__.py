"""latentflow: better samples from pretrained GANs and particle models, using their discriminator.

``refine(G, D, z, method=...)`` runs one of the samplers listed by ``methods()``; ``load(name)`` gives
a ``ModelPair`` from the manifest, the Hugging Face Hub or a local folder. Heavy optional packages
(torch-fidelity, torchvision, matplotlib) are imported only by the functions that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import refine
from .calibration import calibrate
from .errors import (
    DivergenceError,
    DivergenceWarning,
    IntegrityError,
    LatentflowError,
    ManifestError,
    OptionError,
    ShapeError,
)
from .result import Result, Step
from .rng import sample_latents
from .samplers import methods


def __getattr__(name: str):
    """The subpackages not imported by ``import latentflow`` (``latentflow.models``, ``latentflow.app``, ...),
    imported on first access."""
    import importlib

    if name in ("models", "app", "stream", "metrics", "train", "nets", "data", "dist", "cli"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'latentflow' has no attribute {name!r}")


def load(ref, **kwargs):
    """Load a G/D pair by manifest name, ``hf:owner/repo[@revision]`` or local folder (see ``models``); a
    ``latentflow train`` folder loads too, with ``G=None`` (dflow, dgd) or ``D=None`` (scoregan, flowgan)."""
    from .models import load as _load

    return _load(ref, **kwargs)


def refine_to_disk(*args, **kwargs):
    """Refine many samples block by block, streaming shards to disk (see ``latentflow.stream``)."""
    from .stream import refine_to_disk as _r

    return _r(*args, **kwargs)


def load_shards(*args, **kwargs):
    """Read the shards written by ``refine_to_disk`` back into memory."""
    from .stream import load_shards as _l

    return _l(*args, **kwargs)


def tune(*args, **kwargs):
    """Pick the method and settings that improve a GAN on held-out real samples (see ``latentflow.app.tune.tune``)."""
    from .app.tune.tune import tune as _tune

    return _tune(*args, **kwargs)


def list_models():
    """Names of the models in the manifest, sorted."""
    from .models import list_models as _list

    return _list()


__all__ = [
    "refine",
    "methods",
    "load",
    "list_models",
    "refine_to_disk",
    "load_shards",
    "tune",
    "calibrate",
    "sample_latents",
    "Result",
    "Step",
    "LatentflowError",
    "ShapeError",
    "OptionError",
    "ManifestError",
    "IntegrityError",
    "DivergenceError",
    "DivergenceWarning",
    "__version__",
]
