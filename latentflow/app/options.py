"""``KEY=VALUE`` pairs of the command line -> typed values, through the one parser
(:func:`latentflow.options.parse_pairs`).

``parse_method_options("ddls", ["mala=false", "steps=20"])`` gives ``{"mala": False, "steps": 20}``, typed by
the method's options record (:func:`latentflow.samplers.parse_cli_options`): a value that does not fit raises
``OptionError`` naming the option, the type expected and the text given; unknown names get a close-match
suggestion. ``parse_config_options(Config, ["lr_g=1e-3"])`` types ``latentflow train --set`` values by the
trainer config's annotations (the config checks them).
"""

from __future__ import annotations

from ..options import field_types, parse_pairs
from ..samplers import parse_cli_options

__all__ = ["parse_method_options", "parse_config_options", "parse_pairs"]


def parse_method_options(method: str, pairs) -> dict:
    """The options ``--opt`` pairs give ``method``; ``OptionError`` on an unknown method or option, or a value
    of the wrong type."""
    pairs = list(pairs)
    return parse_cli_options(method, pairs) if pairs else {}


def parse_config_options(config: type, pairs, name: str = "--set") -> dict:
    """``--set KEY=VALUE`` pairs for the dataclass ``config``, each value read by its field's annotation
    (names and values are checked when the config is built)."""
    return parse_pairs(pairs, field_types(config), name=name)
