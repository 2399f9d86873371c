"""``--opt KEY=VALUE`` pairs -> a method's options, typed by what the method declares.

``parse_method_options("ddls", ["mala=false", "steps=20"])`` gives ``{"mala": False, "steps": 20}``
through :func:`latentflow.options.parse_cli_options` (one parser, typed by each method's option
record): a value that does not fit raises ``OptionError`` naming the option, the type expected and the
text given; unknown names get a close-match suggestion.
"""

from __future__ import annotations

import json

from ..errors import OptionError
from ..options import parse_cli_options
from ..samplers import methods

__all__ = ["parse_method_options", "split_pairs"]


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


def parse_method_options(method: str, pairs) -> dict:
    """The options ``--opt`` pairs give ``method``; ``OptionError`` on a value of the wrong type.
    ``method="none"`` takes no options: its pairs are read as JSON and refused later."""
    pairs = list(pairs)
    if not pairs:
        return {}
    if method not in methods():
        return {k: _json_or_text(v) for k, v in split_pairs(pairs)}
    return parse_cli_options(method, [f"{k}={v}" for k, v in split_pairs(pairs)])
