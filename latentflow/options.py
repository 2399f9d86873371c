"""Typed, frozen option records, validated in one place, and their CLI parser.

Every sampler declares its options once, as a frozen dataclass whose fields carry a default, one
line of help and an optional range (``field(0.01, "step size ε", gt=0)``). Building the record checks
each value against its annotation:

* ``bool`` fields take ``True``/``False`` only (``"False"``, ``0``, ``0.5`` are errors);
* ``int`` fields take ints (not bools, not strings); ``float`` fields take ints or floats;
* ``Literal[...]`` fields take one of their choices; ``X | None`` also takes ``None``;
* then the ranges (``gt``, ``ge``, ``lt``, ``le``) and the record's own ``check()`` (cross-field rules).

A wrong value is an ``OptionError`` naming the option, the expected type and the value that came.
:class:`EngineOptions` holds the options every sampler shares (chunking, speed, randomness,
callbacks, divergence policy); they are documented once, here.

:func:`parse_pairs` is the one ``KEY=VALUE`` parser (``--opt``, ``--set``, ``--metric``, a benchmark row's
``ddls:steps=20``): it reads each value by its declared type where one is given (the command line is the
only place where ``"true"``/``"no"``/``"1"`` mean a bool), else as JSON where it parses, else as the text.
The samplers' registry (:func:`latentflow.samplers.parse_cli_options`) and the trainers' configs
(:mod:`latentflow.train.config`) both parse and check through here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

import torch

from .errors import OptionError, suggest

__all__ = [
    "field",
    "Options",
    "EngineOptions",
    "parse_pairs",
    "parse_value",
    "field_types",
    "suggest",
    "type_name",
    "check_value",
    "ENGINE_FIELDS",
    "SPEED_FIELDS",
]

_NONE = type(None)
_RANGES = {
    "gt": (">", lambda v, b: v > b),
    "ge": (">=", lambda v, b: v >= b),
    "lt": ("<", lambda v, b: v < b),
    "le": ("<=", lambda v, b: v <= b),
}


def field(default: Any, help: str, **ranges) -> Any:
    """A record field: its default, one line of help, and optional bounds ``gt/ge/lt/le``."""
    bad = set(ranges) - set(_RANGES)
    if bad:
        raise TypeError(f"unknown range keys {sorted(bad)}")
    return dataclasses.field(default=default, metadata={"help": help, **ranges})


def _args(tp) -> tuple:
    return typing.get_args(tp)


def _is_union(tp) -> bool:
    origin = typing.get_origin(tp)
    return origin is Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType")


def type_name(tp) -> str:
    """A readable name of an annotation: ``int``, ``float or None``, ``"euler" or "heun"``."""
    if tp is _NONE:
        return "None"
    if typing.get_origin(tp) is Literal:
        ch = _args(tp)
        return " or ".join(f'"{c}"' for c in ch) if len(ch) <= 2 else "one of " + ", ".join(map(str, ch))
    if _is_union(tp):
        return " or ".join(type_name(a) for a in _args(tp))
    if tp is Any:
        return "any value"
    if typing.get_origin(tp) is not None:
        return getattr(typing.get_origin(tp), "__name__", str(tp))
    return getattr(tp, "__name__", str(tp))


def _matches(v, tp) -> bool:
    if tp is Any:
        return True
    if tp is _NONE:
        return v is None
    if _is_union(tp):
        return any(_matches(v, a) for a in _args(tp))
    if typing.get_origin(tp) is Literal:
        return any(type(v) is type(c) and v == c for c in _args(tp))
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    if tp in (tuple, list):  # a bare tuple or list: any sequence (a JSON list on the command line)
        return isinstance(v, (list, tuple))
    origin = typing.get_origin(tp)
    if origin is not None and getattr(origin, "__name__", "") == "Callable" or tp is Callable:
        return callable(v)
    if origin is dict or tp is dict:
        return isinstance(v, dict)
    if origin is not None:  # Sequence[float] and friends: a non-string sequence of numbers
        return isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    return isinstance(v, tp)


def _literal_message(name: str, tp, v) -> str | None:
    alts = _args(tp) if _is_union(tp) else (tp,)
    lit = [a for a in alts if typing.get_origin(a) is Literal]
    if len(lit) == 1 and all(a is _NONE or a is lit[0] for a in alts) and (not _is_union(tp) or isinstance(v, str)):
        ch = _args(lit[0])
        want = " or ".join(f'"{c}"' for c in ch) if len(ch) == 2 else "one of " + ", ".join(map(str, ch))
        return f"{name} must be {want}{' or None' if _NONE in alts else ''}; got {v!r}"
    return None


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_value(name: str, v, tp, meta=None) -> None:
    """Raise ``OptionError`` unless ``v`` fits the annotation ``tp`` and the bounds in ``meta``."""
    if not _matches(v, tp):
        msg = _literal_message(name, tp, v)
        if msg is None:
            hint = " (numbers are not given as strings in Python)" if isinstance(v, str) and _numeric(v) else ""
            msg = f"{name} must be {type_name(tp)}; got {v!r} ({type(v).__name__}){hint}"
        raise OptionError(msg)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if isinstance(v, float) and math.isnan(v):
            raise OptionError(f"{name} must be a number; got nan")
        for key, (sym, ok) in _RANGES.items():
            if meta and key in meta and not ok(v, meta[key]):
                raise OptionError(f"{name} must be {sym} {meta[key]}; got {v!r}")


class Options:
    """Base of the frozen option records: ``__post_init__`` validates every field, then ``check()``."""

    if typing.TYPE_CHECKING:  # every record is a dataclass (the subclasses are decorated)
        __dataclass_fields__: typing.ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name), hints[f.name], f.metadata)
        self.check()

    def check(self) -> None:
        """Cross-field rules of the record (override)."""

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The record as a plain dict (tensors and callables as they are)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def fields_info(cls) -> list[dict]:
        """``[{name, type, default, help}]`` per field, JSON-able (a default that is not becomes repr)."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            d = f.default
            if not isinstance(d, (int, float, str, bool, _NONE)):
                d = repr(d)
            out.append(dict(name=f.name, type=type_name(hints[f.name]), default=d, help=f.metadata.get("help", "")))
        return out


@dataclasses.dataclass(frozen=True)
class EngineOptions(Options):
    """Options every sampler shares; the driver owns them (documented once, here)."""

    batch_size: int | Literal["auto"] | None = field(
        None,
        'evaluate G and D in chunks of this many chains; "auto": the largest chunk that fits in free '
        "memory (from a probe on a few rows); None: one chunk up to 16384 chains, more chunked as by "
        '"auto"; results agree up to round-off (per-chain random streams)',
        ge=1,
    )
    compile: bool = field(
        False, "evaluate the energy through torch.compile (its backward too); falls back to eager with a logged warning"
    )
    cuda_graph: bool = field(
        False, "capture each chunk's energy-and-gradient step as a CUDA graph and replay it (CUDA tensors only)"
    )
    autocast: Literal["bf16", "fp16"] | None = field(
        None,
        "evaluate G and D under torch.autocast; the chain state, energies and accept tests stay in "
        "z's dtype (fp16 has no gradient scaling: prefer bf16)",
    )
    generator: torch.Generator | int | None = field(
        None,
        "torch.Generator or int seed, the only source of randomness: it gives the key of the per-chain random streams",
    )
    callback: Callable | None = field(None, "called with Step(i, state, energy, accepted) after every step")
    progress: bool = field(True, "show a tqdm bar on stderr")
    chain_offset: int = field(
        0,
        "global index of row 0: rows [a, b) of a bigger run with chain_offset=a "
        "draw exactly the numbers that run gives them",
        ge=0,
    )
    y: torch.Tensor | int | None = field(
        None,
        "class labels of a class-conditional model, one per chain ([B] integers, or one int for all): G is "
        "called as G(z, y) and D as D(x, ..., y); chains keep their label, DRS/MH proposals for chain c use "
        "y[c]. None: uniform labels drawn per chain from its random stream when the model is conditional",
    )
    num_classes: int | None = field(
        None,
        "classes of a conditional model; None: G's (else D's) num_classes attribute, 0 (unconditional) "
        "when neither has one. With num_classes > 0, labels are checked to lie in [0, num_classes)",
        ge=0,
    )
    on_divergence: Literal["raise", "warn", "keep"] = field(
        "raise",
        '"raise": DivergenceError when more than max_diverged_fraction of the chains diverge (or '
        'G/D is non-finite on an initial state), else a warning; "warn": always only warn; '
        '"keep": say nothing (the mask is in info["diverged"])',
    )
    max_diverged_fraction: float = field(
        0.5, 'with on_divergence="raise": the fraction of diverged chains above which the run raises', ge=0, le=1
    )


ENGINE_FIELDS = tuple(f.name for f in dataclasses.fields(EngineOptions))
#: engine options that only gradient samplers take
SPEED_FIELDS = ("compile", "cuda_graph", "autocast")


def field_types(record: type) -> dict:
    """``{field name: annotation}`` of a dataclass (annotations resolved, also those written as strings)."""
    return typing.get_type_hints(record)


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_value(name: str, text: str, tp=None, *, what: str = "option"):
    """One ``KEY=VALUE`` value by its annotation ``tp``: bools take ``true/false/1/0/yes/no/on/off``, optional
    fields ``none``/``null``, Literal fields one of their choices, number sequences ``2,1,0.5``; a type this
    parser does not read (``dict``, ``tuple``, a class) or no ``tp``: JSON where it parses, else the text."""
    if tp is None or tp is Any:
        return _json_or_text(text)
    alts = list(_args(tp)) if _is_union(tp) else [tp]
    low = text.strip().lower()
    if _NONE in alts and low in ("none", "null"):
        return None
    known = False
    for a in alts:
        if typing.get_origin(a) is Literal:
            known = True
            for c in _args(a):
                if str(c) == text.strip():
                    return c
        elif a is bool:
            known = True
            if low in _TRUE + _FALSE:
                return low in _TRUE
        elif a in (int, float):
            known = True
            try:
                return a(text)
            except ValueError:
                pass
        elif a is str:
            return text
        elif typing.get_origin(a) is not None and getattr(typing.get_origin(a), "__name__", "") == "Sequence":
            known = True
            try:  # a comma-separated list of numbers: sigmas=2,1,0.5
                return [float(t) for t in text.split(",")]
            except ValueError:
                pass
    if not known:
        return _json_or_text(text)
    raise OptionError(f"{what} {name} must be {type_name(tp)}; got {text!r}")


def parse_pairs(pairs, types=None, *, name: str = "option") -> dict:
    """The one ``KEY=VALUE`` parser: ``["key=value", ...]`` -> ``{key: value}`` (``-`` in keys read as ``_``; a
    key given twice keeps its last value). ``types``: ``{key: annotation}``, or one annotation for every key
    (a key it does not list, or ``types=None``: JSON where it parses, else the text; see :func:`parse_value`).
    Names and values are not checked here: the record or config they go to checks them (:func:`check_value`).
    ``name`` (``"option"``, ``"--set"``, ``"--metric"``) names the pairs in messages."""
    if types is not None and not isinstance(types, dict):
        one = types
        types = {}
    else:
        one = None
    out = {}
    for pair in pairs:
        if not isinstance(pair, str) or "=" not in pair:
            raise OptionError(f"{name} expects KEY=VALUE; got {pair!r}")
        key, _, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        out[key] = parse_value(key, text.strip(), (types or {}).get(key, one), what=name)
    return out
