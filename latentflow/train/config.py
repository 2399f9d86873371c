"""Type checks of trainer configs, so that a wrong ``--set`` value fails at once with a one-line
``OptionError`` naming the field and the expected type (e.g. ``betas=[0.5]``: "betas must be 2 numbers").

A field's type is its annotation, checked by the samplers' option checker (:func:`latentflow.options.check_value`:
one validator for every typed record); a tuple or list field with a non-empty default must keep the
default's length and element kinds.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import OptionError
from ..options import check_value, field_types

__all__ = ["check_config", "make_config"]


@functools.cache
def _hints(cls: type) -> dict:
    return field_types(cls)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _alts(tp) -> tuple:
    return typing.get_args(tp) if type(tp).__name__ in ("UnionType", "_UnionGenericAlias") else (tp,)


def _check_field(cls_name: str, f: dataclasses.Field, value, tp) -> Any:
    where = f"{f.name} ({cls_name})"
    default = _default(f)
    if isinstance(value, (tuple, list)) and isinstance(default, (tuple, list)) and default:
        numeric = all(_number(d) for d in default)
        if len(value) != len(default) or (numeric and not all(_number(v) for v in value)):
            what = f"{len(default)} numbers" if numeric else f"{len(default)} items"
            raise OptionError(f"{where} must be {what} like {list(default)}; got {list(value)!r}")
        value = tuple(value) if isinstance(default, tuple) else list(value)
    check_value(where, value, tp)
    alts = _alts(tp)
    if float in alts and int not in alts and _number(value) and isinstance(value, int):
        return float(value)
    return value


def check_config(cfg):
    """Check (and normalise: ints to floats, lists to tuples where the field says so) every field of the
    dataclass ``cfg`` against its annotation; returns ``cfg``. Raises ``OptionError`` on the first bad field."""
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        fixed = _check_field(type(cfg).__name__, f, value, hints[f.name])
        if fixed is not value:
            setattr(cfg, f.name, fixed)
    return cfg


def make_config(cls, overrides: Mapping[str, Any] | None = None):
    """``cls(**overrides)`` after checking the names and types of ``overrides`` (the ``--set`` values),
    then ``validate()``. Unknown names and wrong types raise ``OptionError`` naming the field."""
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    bad = sorted(set(overrides) - set(fields))
    if bad:
        raise OptionError(
            f"unknown config field(s) {', '.join(bad)} for {cls.__name__}; valid: {', '.join(sorted(fields))}"
        )
    hints = _hints(cls)
    checked = {k: _check_field(cls.__name__, fields[k], v, hints[k]) for k, v in overrides.items()}
    cfg = cls(**checked)
    return cfg.validate() if hasattr(cfg, "validate") else cfg
