"""A model's recommended sampling settings merged with a caller's options: the one rule that ``latentflow
sample`` and :meth:`ModelPair.refine <latentflow.models.ModelPair.refine>` share (``sample`` runs through
``ModelPair.refine`` itself).

Layers, later ones on top: the model's ``sampling:`` block for the method (manifest entry or the folder's
``latentflow.json``), the model's ``d_output`` and ``prior`` where the method takes them (its record says),
the caller's options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..samplers import kernel

__all__ = ["sampling_options", "meta_get"]


def meta_get(meta: Any, key: str, default=None):
    """``meta[key]`` of a model's metadata, a mapping (``pair.meta``) or a record (a manifest entry)."""
    if isinstance(meta, Mapping):
        return meta.get(key, default)
    return getattr(meta, key, default)


def sampling_options(method: str, meta: Any, user: Mapping[str, Any], *, none_is_unset: bool = True) -> dict:
    """The options a run of ``method`` on the model ``meta`` uses: ``meta["sampling"][method]``, then
    ``d_output`` and ``prior`` of ``meta`` where ``method`` takes them, then ``user``. ``none_is_unset``: a
    ``None`` in ``user`` means "not given" (the CLI's flags) and keeps the layer below; ``False``: it is a
    value (``noise_scale=None`` asks for ``sqrt(step_size)``)."""
    valid = kernel(method).defaults()
    rec = (meta_get(meta, "sampling") or {}).get(method) or {}
    opts: dict = dict(rec)
    for key in ("d_output", "prior"):
        if key in valid and meta_get(meta, key):
            opts[key] = meta_get(meta, key)
    opts.update({k: v for k, v in user.items() if v is not None or not none_is_unset})
    return opts
