"""The samplers: each method module holds one kernel (its maths and its declarations), ``_driver`` the one
loop, ``_engine`` the evaluation, ``_registry`` the registry; importing this package registers them all,
in the order below (the README's method table follows it). Third-party samplers register from the entry
point group ``latentflow.samplers`` on the first use of the registry (:func:`methods`, :func:`get`)."""

from __future__ import annotations

# isort: off
from . import ddls, dot, rejection, dg_langevin, dflow, dgflow, ex2mcmc, dg_score  # noqa: F401  (registers)
from . import none, truncation  # noqa: F401  (registers)

# isort: on
from ._declare import Candidate, Needs, SearchContext
from ._driver import Kernel
from ._registry import (
    ENTRY_POINT_GROUP,
    KERNELS,
    METHODS,
    POSITIONAL,
    MethodInfo,
    check_options,
    describe,
    get,
    kernel,
    kernels,
    load_plugins,
    methods,
    parse_cli_options,
    register,
    unregister,
)
from .none import Generator, generate

#: the method ``refine``, ``ModelPair.refine`` and ``latentflow sample`` use when none is named
DEFAULT_METHOD = "ddls"
#: the generator alone (no refinement): the baseline ``tune`` and the benchmarks compare with
NO_REFINEMENT = Generator.name

__all__ = [
    "KERNELS",
    "METHODS",
    "POSITIONAL",
    "ENTRY_POINT_GROUP",
    "DEFAULT_METHOD",
    "NO_REFINEMENT",
    "Kernel",
    "Needs",
    "SearchContext",
    "Candidate",
    "MethodInfo",
    "check_options",
    "describe",
    "get",
    "kernel",
    "kernels",
    "load_plugins",
    "methods",
    "methods_table",
    "parse_cli_options",
    "register",
    "unregister",
    "generate",
]


def methods_table() -> str:
    """The README's method table (markdown), from the kernels' declarations (``about``, ``paper``): one row
    per method latentflow ships that refines, in registration order."""
    rows = ["| method | what it does | paper |", "|---|---|---|"]
    for name, k in KERNELS.items():
        if k.refines and k.__module__.startswith(__name__ + "."):
            rows.append(f"| `{name}` | {k.about} | {k.paper} |")
    return "\n".join(rows)
