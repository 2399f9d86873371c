"""The sampler registry: a plain dict filled by ``@register(name)``.

``methods()`` reads each function's signature, so what it lists (options and defaults) is what the
function takes.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import OptionError

METHODS: dict[str, Callable] = {}

#: positional parameters every sampler takes (the callables and the initial state), not options.
POSITIONAL = ("G", "D", "z")


def register(name: str):
    """Decorator that adds a sampler function under ``name``; a duplicate name raises."""
    def deco(fn):
        if name in METHODS:
            raise OptionError(f'method "{name}" is already registered (by {METHODS[name].__module__})')
        METHODS[name] = fn
        fn.method_name = name
        return fn
    return deco


@dataclass(frozen=True)
class MethodInfo:
    name: str
    fn: Callable
    options: dict[str, Any]       # option name -> default
    summary: str                  # first line of the docstring

    def to_dict(self) -> dict:
        def enc(v):
            return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
        return {"name": self.name, "summary": self.summary,
                "options": {k: enc(v) for k, v in self.options.items()}}


def _options(fn) -> dict[str, Any]:
    sig = inspect.signature(fn)
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def methods() -> dict[str, MethodInfo]:
    """Every registered method, sorted by name: ``name -> MethodInfo(fn, options, summary)``."""
    _load_all()
    out = {}
    for name in sorted(METHODS):
        fn = METHODS[name]
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        out[name] = MethodInfo(name, fn, _options(fn), doc[0] if doc else "")
    return out


def get(name: str) -> Callable:
    _load_all()
    if not isinstance(name, str) or name not in METHODS:
        raise OptionError(f'Unknown method "{name}". Available: {", ".join(sorted(METHODS))}.')
    return METHODS[name]


def check_options(name: str, options: dict) -> None:
    fn = get(name)
    valid = _options(fn)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise OptionError(f'method "{name}" got unknown option(s) {", ".join(unknown)}. '
                          f'Valid options: {", ".join(sorted(valid))}.')


def _load_all():
    # importing the modules registers their samplers
    from . import ddls, dot, rejection, dg_langevin, dflow  # noqa: F401
