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
    A method that samples a score model takes it as the option ``score=S`` with ``G=None`` (``"dg_score"``:
    ``S(x, σ) -> [B, *X]``, ``z`` the starting noise; ``methods()[method].needs`` says what each method needs).

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
        options["generator"] = torch.Generator("cpu").manual_seed(seed)
    return fn(G, D, z, **options)
