"""``refine``: one entry point over every registered sampler."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .errors import OptionError
from .result import Result
from .samplers import check_options, get, methods  # noqa: F401  (methods re-exported)


def refine(G: Callable | None, D: Callable, z: Tensor, method: str = "ddls", *,
           seed: int | None = None, **options) -> Result:
    """Refine samples of ``G`` with discriminator ``D`` using ``method``; returns a ``Result``.

    ``options`` are the method's keyword options (``latentflow.methods()[method].fields`` lists them
    with their types, defaults and help); an unknown option is an ``OptionError`` naming the valid
    ones. ``seed`` is a shortcut for ``generator=torch.Generator().manual_seed(seed)`` (the same key of
    the per-chain streams as ``generator=seed``). ``chain_offset=a`` gives rows [a, b) of a bigger run.

    Example::

        z = latentflow.sample_latents(1000, 2, generator=0)
        res = latentflow.refine(G, D, z, method="ddls", steps=100, step_size=0.01, d_output="critic")
        res.x, res.info["diverged"]
    """
    fn = get(method)
    check_options(method, options)
    if seed is not None:
        if "generator" in options and options["generator"] is not None:
            raise OptionError("pass either seed or generator, not both")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise OptionError(f"seed must be an int or None; got {seed!r}")
        if not -2**63 <= seed < 2**64:   # what torch.Generator.manual_seed takes
            raise OptionError(f"seed must be in -2**63..2**64-1; got {seed}")
        options["generator"] = torch.Generator("cpu").manual_seed(seed)
    return fn(G, D, z, **options)
