"""``--opt KEY=VALUE`` pairs -> a method's options, typed by what the method declares.

``parse_method_options("ddls", ["mala=false", "steps=20"])`` gives ``{"mala": False, "steps": 20}``: a
value is read as the type of the option's default (a bool from ``true``/``false``, ``1``/``0``,
``yes``/``no``, case-insensitive; an int; a float), and a value that does not fit raises ``OptionError``
naming the option, the type expected and the text given. Options without a typed default (``None``)
take JSON (``[1, 2]``, ``null``, numbers) or else the text itself. Unknown names are passed on, so that
the sampler's own check refuses them with the list of valid options.
"""
from __future__ import annotations

import json

from ..errors import OptionError
from ..samplers import methods

try:  # the library's own parser, typed by each method's declared options
    from ..options import parse_cli_options
except ImportError:  # pragma: no cover - until latentflow.options lands; the integrator removes this
    parse_cli_options = None

__all__ = ["parse_method_options", "split_pairs"]

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def split_pairs(pairs, name: str = "--opt") -> list[tuple[str, str]]:
    """``["k=v", ...]`` -> ``[(k, v), ...]`` (``-`` in keys read as ``_``); ``OptionError`` without ``=``."""
    out = []
    for p in pairs:
        if "=" not in p:
            raise OptionError(f"{name} expects KEY=VALUE; got {p!r}")
        k, v = p.split("=", 1)
        out.append((k.strip().replace("-", "_"), v.strip()))
    return out


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _typed(method: str, key: str, text: str, default):
    what = f'option {key} of method "{method}"'
    if isinstance(default, bool):
        low = text.lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise OptionError(f"{what} expects a bool (true or false); got {text!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise OptionError(f"{what} expects an int; got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise OptionError(f"{what} expects a number; got {text!r}") from None
    if isinstance(default, str):
        return text
    return _json_or_text(text)


def _fallback(method: str, pairs) -> dict:
    declared = methods()[method].options if method in methods() else {}
    out = {}
    for k, v in split_pairs(pairs):
        out[k] = _typed(method, k, v, declared[k]) if k in declared else _json_or_text(v)
    return out


def parse_method_options(method: str, pairs) -> dict:
    """The options ``--opt`` pairs give ``method`` (see the module docstring); ``OptionError`` on a value
    of the wrong type. ``method="none"`` takes no options: its pairs are read as JSON and refused later."""
    pairs = list(pairs)
    if not pairs:
        return {}
    if method not in methods():
        return {k: _json_or_text(v) for k, v in split_pairs(pairs)}
    if parse_cli_options is not None:
        return parse_cli_options(method, pairs)
    return _fallback(method, pairs)
