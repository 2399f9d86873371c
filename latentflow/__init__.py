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
from .models import set_method_table as _set_method_table
from .models import set_sampler as _set_sampler
from .result import Result, Step
from .rng import sample_latents
from .samplers import methods

# the manifest checks its per-method sampling defaults against the samplers' registry (models cannot import
# samplers: they sit on the same level), so the facade, above both, connects them
_set_method_table(lambda: {name: info.options for name, info in methods().items()})
_set_sampler(refine)  # ModelPair.refine runs latentflow.refine through this hook, for the same reason


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
    """Pick the method and settings that improve a GAN on held-out real samples (see ``latentflow.app.tune``)."""
    from .app.tune import tune as _tune

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
