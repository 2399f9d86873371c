"""Pretrained G/D pairs: the manifest (``manifest``), the loading pipeline (``hub``) and the architectures (``zoo``).

``load(ref)`` takes a manifest name (``list_models()``), ``hf:owner/repo[@revision]``, a local folder written
by ``export`` or a ``(G_path, D_path)`` pair of ``.safetensors`` files, and returns ``ModelPair(G, D, meta)``.
A folder ``latentflow train`` wrote for a model that is not a G/D pair (``trained``) loads into the same
type, with ``G`` or ``D`` set to ``None`` and further networks in ``pair.extra``.
"""
from __future__ import annotations

from .hub import (ModelPair, cache_dir, convert, export, fetch, load, make_pair, models_table, resolve,
                  verify)
from .manifest import ArchSpec, FileRef, ModelEntry, get_entry, list_models
from .trained import TrainedEntry

__all__ = ["load", "ModelPair", "list_models", "get_entry", "convert", "export", "make_pair", "models_table",
           "resolve", "fetch", "verify", "cache_dir", "ArchSpec", "FileRef", "ModelEntry", "TrainedEntry"]
