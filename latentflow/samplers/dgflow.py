"""DGflow: Discriminator Gradient flow in latent space (Ansari, Ang & Soh, ICLR 2021, Algorithm 1).

The gradient flow of the entropy-regularised f-divergence ``F(ρ) = ∫ f(ρ/μ) dμ + γ ∫ ρ log ρ`` between
the generated law ``ρ`` and the data law ``μ`` is simulated by Euler–Maruyama in the latent space:

``z <- z - η ∇_z f'(r(z)) + sqrt(2 η γ) ξ``,  ``ξ ~ N(0, I)``,  ``r(z) = ρ/μ (G(z)) = exp(-d(G(z)))``,

with the density ratio ``r`` read off the discriminator's logit ``d`` (at the optimum of the logistic
loss ``d = log μ/ρ``), and the ratio of the flow's current law frozen at that of the generator (the
paper's approximation: the discriminator was trained against ``G``'s own samples). In latent space the
prior enters only through this ratio (``p_Z / p̂_Z = r ∘ G`` for the refined latent law
``p̂_Z ∝ p_Z e^d``): there is no separate ``-∇ log p_Z`` drift. Per divergence, with ``σ`` the
logistic sigmoid, the velocity ``-∇ f'(r)`` is

* ``"KL"``:   ``f(r) = r log r``,                     ``f'(r) = log r + 1``       -> ``∇d``;
* ``"JS"``:   ``f(r) = r log r - (1 + r) log((1 + r)/2)``, ``f'(r) = log(2r/(1 + r))`` -> ``σ(d) ∇d``;
* ``"logD"``: ``f'(r) = log(1 + r) = -log D``                                      -> ``σ(-d) ∇d``.

Defaults are the paper's CIFAR-10 settings (η = 0.1, γ = 0.01, 25 steps, KL). The noise ``ξ`` of step i
is slot 0 of the chain's stream; ``prior="uniform"`` clips ``z`` to [-1, 1] after each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..energy import to_logit
from ..errors import OptionError
from ..options import Options, field
from ..result import Evals
from ._checks import probe
from ._declare import Candidate, Needs, with_published
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register

DIVERGENCES = ("KL", "JS", "logD")


def f_prime_of_ratio(d: Tensor, divergence: str) -> Tensor:
    """``f'(r)`` at ``r = exp(-d)`` for the f-divergence ``divergence``, computed stably from the logit ``d``."""
    if divergence == "KL":
        return 1.0 - d
    if divergence == "JS":
        return math.log(2.0) - F.softplus(d)
    return F.softplus(-d)


@dataclass(frozen=True)
class DGflowOptions(Options):
    steps: int = field(25, "n, Euler–Maruyama steps of the flow", ge=0)
    step_size: float = field(0.1, "η, the step size of the discretised SDE", gt=0)
    gamma: float = field(
        0.01, "γ, the entropy regulariser: the noise per step is sqrt(2 η γ) ξ (0: a deterministic flow)", ge=0
    )
    divergence: Literal["KL", "JS", "logD"] = field("KL", "the f-divergence whose flow is simulated")
    d_output: Literal["logit", "prob", "critic"] = field(
        "logit",
        'what D returns: "logit" (log of the density ratio), "prob" (converted back stably) or "critic" '
        "(used as the logit)",
    )
    prior: Literal["normal", "uniform"] = field("normal", 'latent prior; "uniform" clips z to [-1, 1] after each step')


class DGflow(Kernel):
    """DGflow: the latent gradient flow of an entropy-regularised f-divergence, z <- z - η ∇f'(e^-d) + sqrt(2ηγ) ξ."""

    Options = DGflowOptions
    needs = Needs(note="D(x) a logit estimating log p_data/p_G")
    hint = "reduce step_size"
    about = (
        "DGflow: the latent gradient flow of an entropy-regularised f-divergence, `z <- z - η ∇z f'(e^-d(G(z))) "
        "+ sqrt(2ηγ) ξ`, for `divergence` = `KL` (velocity `∇d`), `JS` (`σ(d) ∇d`) or `logD` (`σ(-d) ∇d`); the "
        "paper's η = 0.1, γ = 0.01, 25 steps; the flow's ratio is frozen at G's (no separate prior drift), as in "
        "the paper"
    )
    paper = "Ansari et al. 2021, Alg. 1"
    budget_option = "steps"

    @classmethod
    def search_space(cls, ctx):
        """η × divergence (KL, logD) at the two largest step counts; Ansari et al. 2021's CIFAR-10 setting
        (η = 0.1, γ = 0.01, 25 steps, KL) among them."""
        out = [
            Candidate(cls.name, dict(steps=s, step_size=ctx.step(eta), divergence=div))
            for eta in (0.01, 0.03, 0.1)
            for div in ("KL", "logD")
            for s in ctx.steps[-2:]
        ]
        paper = dict(steps=25, step_size=ctx.step(0.1), divergence="KL")
        return with_published(out, [Candidate(cls.name, paper, name="Ansari et al. 2021")] if 27 <= ctx.budget else [])

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """A value-and-gradient of G and D per step, G once more at the end."""
        steps = cls.options_of(options)["steps"]
        return Evals(steps + 1 + probe_cost(n), steps, steps + probe_cost(n), steps)

    def validate(self, z):
        super().validate(z)
        if self.o.prior == "uniform" and bool((z.abs() > 1).any()):
            raise OptionError("prior='uniform' needs z in [-1, 1]; some entries of z lie outside")

    def draws(self):
        return self.o.gamma > 0

    def init(self, e, z):
        o = self.o
        probe(e, self.G, self.D, z, ys=e.ys)
        self.noise = math.sqrt(2.0 * o.step_size * o.gamma)

        def f_prime(zz, *ys):  # ys: the chains' labels of a conditional model, chunked with zz
            d = to_logit(e.D(self.D, e.G(self.G, zz, *ys), *ys), o.d_output)
            return f_prime_of_ratio(d, o.divergence), None

        self.f_prime = f_prime
        self.last = None
        return z.detach().clone()

    def step(self, e, i, z):
        o = self.o
        fp, g, _ = e.value_and_grad(self.f_prime, z, *e.ys)
        if i == 0:  # f' at the initial state: a non-finite value there is the model's
            e.check_finite(0, fp)
        z_new = z - o.step_size * g
        if self.noise > 0:
            z_new = z_new + self.noise * e.rng.normal(i, 0, z.shape[1:], z.dtype)
        if o.prior == "uniform":
            z_new = z_new.clamp(-1, 1)
        self.last = fp
        z = e.advance(i + 1, z_new, z, fp, g)
        return z, loop_step(i, z, fp, None, z)

    def finish(self, e, z):
        x = e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *e.ys)
        fp = self.last if self.last is not None else torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
        return x, z, dict(f_prime=fp, noise_std=self.noise)


dgflow = register("dgflow", DGflow)
