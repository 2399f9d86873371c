"""Pretrained G/D pairs: spec records (``spec``, ``manifest``, ``trained``), where files come from
(``sources``), hash checks and pins (``pins``), checkpoint readers (``checkpoints``), the load pipeline
(``resolve``, ``loading``), writing (``export``) and the ``latentflow models`` rows (``table``). The
architectures are in :mod:`latentflow.nets`.

``load(ref)`` takes a manifest name (``list_models()``), ``hf:owner/repo[@revision]``, a local folder written
by ``export`` or a ``(G_path, D_path)`` pair of ``.safetensors`` files, and returns ``ModelPair(G, D, meta)``.
A folder ``latentflow train`` wrote for a model that is not a G/D pair (``trained``) loads into the same
type, with ``G`` or ``D`` set to ``None`` and further networks in ``pair.extra``.
"""

from __future__ import annotations

from .._io import cache_dir
from .export import PairInfo, convert, export, make_pair
from .loading import load
from .manifest import get_entry, list_models
from .pair import ModelPair, Start
from .pins import verify
from .resolve import resolve
from .sampling import meta_get, sampling_options, split_calibration
from .sources import fetch
from .spec import ArchSpec, FileRef, ModelEntry
from .table import model_rows, models_table

__all__ = [
    "load",
    "ModelPair",
    "list_models",
    "get_entry",
    "convert",
    "export",
    "make_pair",
    "PairInfo",
    "models_table",
    "model_rows",
    "resolve",
    "fetch",
    "verify",
    "cache_dir",
    "ArchSpec",
    "FileRef",
    "ModelEntry",
    "sampling_options",
    "split_calibration",
    "meta_get",
    "Start",
]
