"""A model's recommended sampling settings merged with a caller's options: the one rule that ``latentflow
sample`` (``app.fit.method_options``) and :meth:`ModelPair.refine <latentflow.models.ModelPair.refine>` share.

Layers, later ones on top: the model's ``sampling:`` block for the method (manifest entry or the folder's
``latentflow.json``), the model's ``d_output`` and ``prior`` where the method takes them, the caller's options.
Models sit beside the samplers, not above them, so this module takes the method's option names as an
argument, and :meth:`ModelPair.refine` reaches ``latentflow.refine`` through :func:`set_sampler`, which the
facade (``latentflow/__init__.py``) installs; nothing here imports the samplers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import OptionError

__all__ = ["sampling_options", "set_sampler", "sampler"]

_sampler: Callable | None = None


def _get(meta: Any, key: str, default=None):
    if isinstance(meta, Mapping):
        return meta.get(key, default)
    return getattr(meta, key, default)


def sampling_options(
    method: str, meta: Any, user: Mapping[str, Any], valid: Iterable[str], *, none_is_unset: bool = True
) -> dict:
    """The options a run of ``method`` on the model ``meta`` uses: ``meta["sampling"][method]``, then
    ``d_output`` and ``prior`` of ``meta`` where ``method`` takes them (``valid``: its option names), then
    ``user``. ``none_is_unset``: a ``None`` in ``user`` means "not given" (the CLI's flags) and keeps the
    layer below; ``False``: it is a value (``noise_scale=None`` asks for ``sqrt(step_size)``)."""
    valid = set(valid)
    rec = (_get(meta, "sampling") or {}).get(method) or {}
    opts: dict = dict(rec)
    for key in ("d_output", "prior"):
        if key in valid and _get(meta, key):
            opts[key] = _get(meta, key)
    opts.update({k: v for k, v in user.items() if v is not None or not none_is_unset})
    return opts


def set_sampler(fn: Callable | None) -> None:
    """Install ``latentflow.refine`` (the facade does) for :meth:`ModelPair.refine`; ``None`` removes it."""
    global _sampler
    _sampler = fn


def sampler() -> Callable:
    if _sampler is None:
        raise OptionError("no sampler is installed; import latentflow (its facade connects latentflow.refine)")
    return _sampler
