"""A model's recommended sampling settings merged with a caller's options: the one rule that ``latentflow
sample`` and :meth:`ModelPair.refine <latentflow.models.ModelPair.refine>` share (``sample`` runs through
``ModelPair.refine`` itself).

Layers, later ones on top: the model's ``sampling:`` block for the method (manifest entry or the folder's
``latentflow.json``), the model's ``d_output`` and ``prior`` where the method takes them (its record says),
the caller's options.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import OptionError
from ..samplers import kernel

__all__ = ["sampling_options", "meta_get", "split_calibration", "CALIBRATION_KEYS"]

CALIBRATION_KEYS = ("calibration_a", "calibration_b")


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


def split_calibration(opts: Mapping[str, Any], where: str = "options") -> tuple[dict, tuple[float, float] | None]:
    """``(opts without the calibration keys, (a, b))``, or ``(opts, None)`` when neither is given: the
    method then runs on the calibrated D ``a · logit D(x) + b``. Both or neither, finite numbers; else an
    ``OptionError`` naming ``where`` and the key."""
    rest = {k: v for k, v in opts.items() if k not in CALIBRATION_KEYS}
    given = [k for k in CALIBRATION_KEYS if opts.get(k) is not None]
    if not given:
        return rest, None
    if len(given) == 1:
        other = next(k for k in CALIBRATION_KEYS if k not in given)
        raise OptionError(f"{where}: {given[0]} needs {other} too (the calibrated D is a · logit D(x) + b)")
    vals = []
    for k in CALIBRATION_KEYS:
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise OptionError(f"{where}.{k} must be a finite number; got {v!r}")
        vals.append(float(v))
    return rest, (vals[0], vals[1])
