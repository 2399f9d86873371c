"""The sampler registry: ``register(name, Kernel)`` builds the public function of a kernel from its
options record and files both under ``name``.

The function's signature (``G, D, z, *, <method options>, <engine options>``) and its docstring
(one ``Args`` line per field, from the record's help) are generated, so every option is declared
once, in its record. ``methods()`` reads the records: fields, types, defaults, help, and what the
method needs from the model.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import options as _options
from ..errors import OptionError
from ..options import EngineOptions, suggest
from ..result import Result
from ._driver import run, split_options

METHODS: dict[str, Callable] = {}
KERNELS: dict[str, type] = {}

#: positional parameters every sampler takes (the callables and the initial state), not options.
POSITIONAL = ("G", "D", "z")


def _fields(kernel_cls) -> list:
    eng = [f for f in dataclasses.fields(EngineOptions) if f.name in kernel_cls.engine_fields]
    return list(dataclasses.fields(kernel_cls.Options)) + eng


def _doc(kernel_cls, name: str) -> str:
    doc = inspect.getdoc(kernel_cls) or name
    hints = typing.get_type_hints(kernel_cls.Options)
    lines = [
        doc,
        "",
        "Args:",
        "    G, D, z: the generator, the discriminator and the initial state, one chain per row.",
    ]
    for f in dataclasses.fields(kernel_cls.Options):
        lines.append(
            f"    {f.name} ({_options.type_name(hints[f.name])}, default {f.default!r}): {f.metadata.get('help', '')}"
        )
    eng = ", ".join(f.name for f in dataclasses.fields(EngineOptions) if f.name in kernel_cls.engine_fields)
    lines.append(f"    {eng}: the engine options, see ``latentflow.options.EngineOptions``.")
    return "\n".join(lines)


def register(name: str, kernel_cls: type) -> Callable:
    """File ``kernel_cls`` under ``name`` and return its public sampler function; a duplicate raises."""
    if name in METHODS:
        raise OptionError(f'method "{name}" is already registered (by {KERNELS[name].__module__})')
    kernel_cls.name = name

    def sampler(G, D, z, **options) -> Result:
        return run(kernel_cls, G, D, z, options)

    hints = {**typing.get_type_hints(EngineOptions), **typing.get_type_hints(kernel_cls.Options)}
    params = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in POSITIONAL]
    params += [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in _fields(kernel_cls)
    ]
    sampler.__signature__ = inspect.Signature(params, return_annotation=Result)
    sampler.__name__ = sampler.__qualname__ = name
    sampler.__module__ = kernel_cls.__module__
    sampler.__doc__ = _doc(kernel_cls, name)
    sampler.method_name = name
    sampler.kernel = kernel_cls
    METHODS[name] = sampler
    KERNELS[name] = kernel_cls
    _options.declare(name, kernel_cls.Options, kernel_cls.engine_fields)
    return sampler


@dataclass(frozen=True)
class MethodInfo:
    name: str
    fn: Callable
    options: dict[str, Any]  # option name -> default
    summary: str  # first line of the docstring
    fields: tuple = ()  # ({name, type, default, help}, ...) from the options record
    needs: dict = dataclasses.field(default_factory=dict)  # what the method needs from the model

    def to_dict(self) -> dict:
        def enc(v):
            return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)

        return {
            "name": self.name,
            "summary": self.summary,
            "options": {k: enc(v) for k, v in self.options.items()},
            "fields": [dict(f) for f in self.fields],
            "needs": dict(self.needs),
        }


def methods() -> dict[str, MethodInfo]:
    """Every registered method, sorted by name: ``name -> MethodInfo(fn, options, summary, fields, needs)``."""
    out = {}
    for name in sorted(METHODS):
        k = KERNELS[name]
        fields = tuple(_options.describe(name))
        doc = (inspect.getdoc(k) or "").strip().splitlines()
        out[name] = MethodInfo(
            name, METHODS[name], {f.name: f.default for f in _fields(k)}, doc[0] if doc else "", fields, dict(k.needs)
        )
    return out


def get(name: str) -> Callable:
    if not isinstance(name, str) or name not in METHODS:
        raise OptionError(
            f'Unknown method "{name}". Available: {", ".join(sorted(METHODS))}.'
            + (suggest(name, METHODS) if isinstance(name, str) else "")
        )
    return METHODS[name]


def check_options(name: str, options: dict) -> None:
    """Raise ``OptionError`` for unknown option names of ``name`` (values are checked by the records)."""
    k = KERNELS[get(name).method_name]
    valid = {f.name for f in _fields(k)}
    unknown = sorted(set(options) - valid)
    if unknown:
        hint = suggest(unknown[0], valid) if len(unknown) == 1 else ""
        raise OptionError(
            f'method "{name}" got unknown option(s) {", ".join(unknown)}. '
            f"Valid options: {', '.join(sorted(valid))}.{hint}"
        )


__all__ = [
    "METHODS",
    "KERNELS",
    "POSITIONAL",
    "register",
    "MethodInfo",
    "methods",
    "get",
    "check_options",
    "split_options",
]
