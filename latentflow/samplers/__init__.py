"""The samplers: each method module holds one kernel (its maths), ``_driver`` the one loop,
``_engine`` the evaluation, ``_registry`` the registry; importing this package registers them all."""

from __future__ import annotations

from . import ddls, dflow, dg_langevin, dg_score, dgflow, dot, ex2mcmc, rejection, truncation  # noqa: F401,E402  (registers the methods)
from ._registry import KERNELS, METHODS, POSITIONAL, MethodInfo, check_options, get, methods, register

__all__ = ["KERNELS", "METHODS", "POSITIONAL", "MethodInfo", "check_options", "get", "methods", "register"]
