"""``refine``: one entry point over every registered sampler."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .errors import OptionError
from .result import Result
from .samplers import DEFAULT_METHOD, check_options, get, methods  # noqa: F401  (methods re-exported)


def refine(
    G: Callable | None,
    D: Callable,
    z: Tensor,
    method: str = DEFAULT_METHOD,
    *,
    y: Tensor | int | None = None,
    seed: int | None = None,
    **options,
) -> Result:
    """Refine samples of ``G`` with discriminator ``D`` using ``method``; returns a ``Result``.

    ``options`` are the method's keyword options (``latentflow.methods()[method].fields`` lists them
    with their types, defaults and help); an unknown option is an ``OptionError`` naming the valid
    ones. ``seed`` is a shortcut for ``generator=torch.Generator().manual_seed(seed)`` (the same key of
    the per-chain streams as ``generator=seed``). ``chain_offset=a`` gives rows [a, b) of a bigger run.
    A method that samples a score model takes it as the option ``score=S`` with ``G=None`` (``"dg_score"``:
    ``S(x, σ) -> [B, *X]``, ``z`` the starting noise; ``methods()[method].needs`` says what each method needs).
    ``method="none"`` is the generator alone, ``G(z)`` in chunks (the baseline of every comparison).

    ``y``: class labels of a class-conditional model, one per row of ``z`` (``[B]`` integers, or one int for
    every row). G is then called as ``G(z, y)`` and D as ``D(x, y)`` in every chunk; each chain keeps its label
    and DRS/MH proposals for chain c use ``y[c]``. With ``y=None`` a conditional model (G or D has a
    ``num_classes`` attribute > 0, or ``num_classes=`` is passed) gets uniform labels drawn per chain from its
    random stream, so chunking and ``chain_offset`` splits keep them. The labels come back as ``Result.y``.

    Example::

        z = latentflow.sample_latents(1000, 2, generator=0)
        res = latentflow.refine(G, D, z, method="ddls", steps=100, step_size=0.01, d_output="critic")
        res.x, res.info["diverged"]

        pair = latentflow.load("studiogan-sngan-cifar10")       # class-conditional: G(z, y), D(x, y)
        res = latentflow.refine(pair.G, pair.D, z, y=3)           # every chain of class 3 (res.y)
    """
    fn = get(method)
    if y is not None:
        options["y"] = y
    check_options(method, options)
    if seed is not None:
        if "generator" in options and options["generator"] is not None:
            raise OptionError("pass either seed or generator, not both")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise OptionError(f"seed must be an int or None; got {seed!r}")
        if not -(2**63) <= seed < 2**64:  # what torch.Generator.manual_seed takes
            raise OptionError(f"seed must be in -2**63..2**64-1; got {seed}")
        options["generator"] = torch.Generator("cpu").manual_seed(seed)
    return fn(G, D, z, **options)
