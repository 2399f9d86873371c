"""Pretrained G/D pairs: the manifest (``manifest``), the loading pipeline (``hub``) and the architectures (``zoo``).

``load(ref)`` takes a manifest name (``list_models()``), ``hf:owner/repo[@revision]``, a local folder written
by ``export`` or a ``(G_path, D_path)`` pair of ``.safetensors`` files, and returns ``ModelPair(G, D, meta)``.
"""
from __future__ import annotations

from .hub import (ModelPair, cache_dir, convert, export, fetch, load, make_pair, models_table, resolve,
                  verify)
from .manifest import ArchSpec, FileRef, ModelEntry, get_entry, list_models

__all__ = ["load", "ModelPair", "list_models", "get_entry", "convert", "export", "make_pair", "models_table",
           "resolve", "fetch", "verify", "cache_dir", "ArchSpec", "FileRef", "ModelEntry"]
