"""The truncation trick (Brock et al. 2019, BigGAN §3.1): latent coordinates outside a threshold ψ are
redrawn until they fall inside it, then ``x = G(z)``. No discriminator; one G forward per sample.

* Normal prior: each coordinate with ``|z_i| > ψ`` is replaced by a draw from N(0, 1) truncated to
  [-ψ, ψ] — the law of "redraw from N(0, 1) until ``|z_i| ≤ ψ``" — drawn exactly by the inverse CDF from
  two uniforms of the chain's stream (step 0, slots 0 and 1): ``|z_i| = -Φ⁻¹(Φ(-ψ) + u (1/2 - Φ(-ψ)))``
  with a random sign (the lower half of the CDF, where float64 keeps its precision for any ψ).
* Uniform prior U[-1, 1]: ψ is the half-width of the box [-ψ, ψ] in the prior's own units (its support is
  [-1, 1]); each coordinate with ``|z_i| > min(ψ, 1)`` is replaced by a draw from U[-min(ψ, 1), min(ψ, 1)].
  ψ ≥ 1 changes nothing.

Coordinates already inside are kept, so for ``z`` drawn from the prior every coordinate of the result
follows the truncated law exactly, and the same ``z`` at a larger ψ changes fewer coordinates (ψ = ∞ is
the generator itself). Every chain draws its uniforms from its own counter-based stream: the samples do
not depend on ``batch_size`` or on how the rows are split. A class-conditional G gets each chain's label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..energy import Prior
from ..options import ENGINE_FIELDS, SPEED_FIELDS, Options, field
from ..result import Evals
from ._checks import probe
from ._declare import Candidate, Needs, SearchContext
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register

#: the thresholds ``tune`` tries (Brock et al. 2019 pick ψ per model along the fidelity/variety curve: no single
#: setting is the paper's, so none is a named candidate)
PSI_GRID = (0.5, 0.7, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class TruncationOptions(Options):
    psi: float = field(
        1.0,
        "ψ, the threshold: coordinates of z with |z_i| > ψ are redrawn until |z_i| ≤ ψ (normal prior: a "
        "truncated N(0, 1); uniform prior: U[-ψ, ψ], ψ in units of the support [-1, 1])",
        gt=0,
    )
    prior: Prior = field("normal", "latent prior of z (and of the redrawn coordinates)")


class State(NamedTuple):
    z: Tensor
    x: Tensor | None
    redrawn: Tensor | None


def truncate(z: Tensor, psi: float, prior: str, u_mag: Tensor, u_sign: Tensor) -> tuple[Tensor, Tensor]:
    """``(z with the coordinates outside ψ redrawn, mask of the redrawn ones)`` from uniforms ``u_mag``,
    ``u_sign`` in [0, 1) of ``z``'s shape (float64): the maths of the method, without randomness."""
    if prior == "uniform":
        b = min(float(psi), 1.0)
        out = z.abs() > b
        new = (2.0 * u_mag - 1.0) * b
    else:
        b = float(psi)
        out = z.abs() > b
        lo = torch.special.ndtr(torch.tensor(-b, dtype=torch.float64, device=z.device))
        mag = -torch.special.ndtri(lo + u_mag * (0.5 - lo))  # |z| in (0, ψ]
        new = torch.where(u_sign < 0.5, -mag, mag)
    new = new.to(z.dtype).clamp(-b, b)
    return torch.where(out, new, z), out


class Truncation(Kernel):
    """The truncation trick (BigGAN): redraw the latent coordinates outside ψ, then x = G(z)."""

    Options = TruncationOptions
    engine_fields = tuple(f for f in ENGINE_FIELDS if f not in SPEED_FIELDS)
    needs = Needs(generator="required", discriminator=(), discriminator_optional=True, note="a D given is ignored")
    hint = "check that G returns finite values on truncated latents"
    about = (
        "the truncation trick: latent coordinates outside ψ redrawn (normal or uniform prior), then `G(z)`; "
        "no D, one G forward per sample: the simplest fidelity-for-diversity trade, the baseline to beat"
    )
    paper = "Brock et al. 2019"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True) -> Evals:
        """One G forward per sample (and the two-row probe of G); no D."""
        return Evals(n_G_forward=1 + probe_cost(n))

    @classmethod
    def search_space(cls, ctx: SearchContext) -> list[Candidate]:
        """ψ in 0.5, 0.7, 1, 1.5, 2 with the model's prior (a uniform prior keeps ψ < 1, its support's
        half-width: ψ ≥ 1 is the generator itself, ``tune``'s reference); the same at any budget (no D
        evaluations)."""
        grid = PSI_GRID if ctx.prior != "uniform" else tuple(p for p in PSI_GRID if p < 1.0)
        return [Candidate(cls.name, dict(psi=p, prior=ctx.prior)) for p in grid]

    def models(self) -> tuple:
        return (self.G,)

    def n_steps(self) -> int:
        return 1

    def init(self, e, z):
        probe(e, self.G, None, z, ys=e.ys)
        return State(z, None, None)

    def step(self, e, i, s):
        o = self.o
        shape = (s.z.shape[1],)
        u_mag = e.rng.uniform(0, 0, shape, torch.float64)
        u_sign = e.rng.uniform(0, 1, shape, torch.float64) if o.prior == "normal" else u_mag
        z, out = truncate(s.z, o.psi, o.prior, u_mag, u_sign)
        x = e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *e.ys)
        e.check_finite(0, x)
        return State(z, x, out.sum(1)), loop_step(i, z)

    def finish(self, e, s):
        return s.x, s.z, dict(redrawn=s.redrawn, redrawn_fraction=float(s.redrawn.sum()) / s.z.numel())


truncation = register("truncation", Truncation)
