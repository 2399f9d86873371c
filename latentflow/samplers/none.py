"""``none``: the generator alone, ``x = G(z)`` (``G(z, y)`` for a class-conditional model), no refinement.

A method like any other (``refine(G, D, z, method="none")``, ``latentflow sample --method none``): G runs in
chunks of ``batch_size`` through the engine (counted in ``n_G_forward``, under ``torch.no_grad`` with every
``nn.Module`` in eval mode), with the chains' labels. It is the baseline every refinement is compared with
(``refines = False``: ``tune``'s reference candidate, the benchmarks' generator row). :func:`generate` is the
one chunked generator call of latentflow (sample, tune, bench, calibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..options import ENGINE_FIELDS as ALL_ENGINE_FIELDS
from ..options import Options
from ..result import Evals
from ._declare import Needs
from ._driver import Kernel, run
from ._registry import register

#: the engine options that apply to G alone (no gradient steps to compile or capture)
ENGINE_FIELDS = tuple(f for f in ALL_ENGINE_FIELDS if f not in ("compile", "cuda_graph"))


@dataclass(frozen=True)
class GeneratorOptions(Options):
    """The generator alone takes no options of its own."""


class Generator(Kernel):
    """The generator alone: x = G(z), in chunks, no refinement."""

    Options = GeneratorOptions
    engine_fields = ENGINE_FIELDS
    needs = Needs(generator="required", discriminator=(), discriminator_optional=True)
    refines = False
    hint = "check G"
    about = "the generator alone, `x = G(z)` (`G(z, y)` with labels), in chunks: the baseline"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True) -> Evals:
        return Evals(n_G_forward=1)

    def models(self) -> tuple:
        return (self.G,)

    def draws(self) -> bool:
        return False

    def n_steps(self) -> int:
        return 0

    def init(self, e, z):
        return z

    def finish(self, e, z):
        return e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *e.ys), z, {}


none = register("none", Generator)


def generate(G, z: Tensor, batch_size: int = 1024, y: Tensor | None = None) -> Tensor:
    """``G(z)`` (``G(z, y)`` with labels ``y [B]``) in chunks of ``batch_size`` latents, without gradients and
    with every ``nn.Module`` in eval mode (restored afterwards): the ``none`` method. A class-conditional G
    given no labels gets uniform ones from the per-chain streams of seed 0 (a fixed draw)."""
    opts: dict[str, Any] = dict(batch_size=batch_size, generator=0, progress=False)
    if y is not None:
        opts["y"] = y
    with torch.no_grad():
        return run(Generator, G, None, z, opts).x
