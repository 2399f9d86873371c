"""Discriminator-guided (annealed) Langevin in data space (arXiv 2306.01654).

For noise levels ``σ_1 > ... > σ_L`` and ``steps`` iterations per level, with ``α_i = ε σ_i² / σ_L²``:
``x <- x + (α_i / 2) · s · ∇_x d(x, σ_i) + sqrt(α_i) ξ``.
The discriminator's logit gradient stands in for the score of a score network. If the discriminator
tracks the current particles (a score *difference*), turn the noise off (``noise=False``): the noisy
update would then double-count diffusion. The noise ``ξ`` of global step ``it`` is slot 0 of the
chain's stream. Class labels ``y`` (a conditional model) go last: ``G(z, y)``, ``D(x, y)`` or ``D(x, σ, y)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..energy import to_logit
from ..errors import OptionError
from ..options import Options, field
from ..result import Evals
from ._checks import check_state, probe
from ._declare import Candidate, Needs
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register


@dataclass(frozen=True)
class DGLangevinOptions(Options):
    steps: int = field(100, "T, Langevin iterations per noise level", ge=0)
    step_size: float = field(1e-3, "ε; the step at level i is α_i = ε σ_i² / σ_L² (ε itself without sigmas)", gt=0)
    sigmas: Sequence[float] | Tensor | None = field(
        None, "decreasing noise levels σ_1 > ... > σ_L (D then takes D(x, σ [B])), or None for one level"
    )
    d_output: Literal["logit", "prob", "critic"] = field("logit", "what D returns")
    guidance: float = field(1.0, "s, multiplier of the discriminator gradient")
    noise: bool = field(True, "add the sqrt(α_i) ξ term (turn off for a deterministic discriminator flow)")
    clip: float | None = field(None, "clip particles to [-clip, clip] after each step", gt=0)

    def check(self):
        if self.sigmas is not None:
            sig = torch.as_tensor(self.sigmas, dtype=torch.float64).flatten()
            if sig.numel() < 1 or not bool((sig > 0).all()):
                raise OptionError("sigmas must be a non-empty sequence of positive noise levels")
            if sig.numel() > 1 and not bool((sig[1:] <= sig[:-1]).all()):
                raise OptionError("sigmas must be non-increasing (σ_1 > ... > σ_L)")


class DGLangevin(Kernel):
    """Langevin in data space driven by the discriminator's gradient, optionally annealed over σ."""

    Options = DGLangevinOptions
    needs = Needs(generator="optional", discriminator=("D(x)", "D(x, sigma)"), note="D(x, σ) with sigmas")
    hint = "reduce step_size"
    about = "(annealed) Langevin in data space driven by `∇x D(x)` or a noise-conditioned `D(x, σ)`"
    paper = "seed 002"
    budget_option = "steps"

    @classmethod
    def _levels(cls, o) -> int:
        return 1 if o["sigmas"] is None else int(torch.as_tensor(o["sigmas"]).numel())

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """A value-and-gradient of D per step and noise level; G once at the start (when given)."""
        o = cls.options_of(options)
        d = o["steps"] * cls._levels(o)
        return Evals((1 + probe_cost(n)) * generator, 0, d + probe_cost(n), d)

    @classmethod
    def search_space(cls, ctx):
        """ε at the two largest step counts (one noise level)."""
        return [
            Candidate(cls.name, dict(steps=s, step_size=ctx.step(eps)))
            for eps in (0.001, 0.003, 0.01)
            for s in ctx.steps[-2:]
        ]

    @classmethod
    def d_call(cls, options=None):
        return "D(x)" if cls.options_of(options)["sigmas"] is None else "D(x, sigma)"

    @classmethod
    def misfit_options(cls, model_call, options):
        if model_call == "D(x, sigma)" and options.get("sigmas") is None:
            return "needs sigmas (the noise levels) for a noise-conditioned D(x, sigma); pass --opt sigmas=[...]"
        if model_call == "D(x)" and options.get("sigmas") is not None:
            return "with sigmas calls D(x, sigma), and the model's D is an unconditioned D(x); drop sigmas"
        return None

    def validate(self, z):
        check_state(z, ndim=2 if self.G is not None else None)

    def draws(self):
        return self.o.noise

    def n_steps(self):
        return self.o.steps * len(self.levels)

    def __init__(self, *a):
        super().__init__(*a)
        o = self.o
        if o.sigmas is None:
            self.levels, self.alphas = [None], [float(o.step_size)]
        else:
            sig = torch.as_tensor(o.sigmas, dtype=torch.float64).flatten()
            self.levels = sig.tolist()
            self.alphas = (o.step_size * sig.pow(2) / sig[-1].pow(2)).tolist()

    def init(self, e, z):
        B, dev, dt = z.shape[0], z.device, z.dtype
        self.sig_rows = [None if lv is None else torch.full((B,), lv, device=dev, dtype=dt) for lv in self.levels]
        cond = () if self.levels[0] is None else (self.sig_rows[0],)
        probe(e, self.G, self.D, z, cond=cond, ys=e.ys, cond_name="sigma")
        self.d_val = None

        def logit(xx, *rows):  # rows: (σ,) with sigmas, then (y,) for a class-conditional D
            return to_logit(e.D(self.D, xx, *rows), self.o.d_output), None

        self.logit = logit
        return (e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *e.ys) if self.G is not None else z).detach()

    def step(self, e, it, x):
        o = self.o
        level = it // o.steps
        alpha, sig = self.alphas[level], self.sig_rows[level]
        d_val, g, _ = e.value_and_grad(self.logit, x, *(() if sig is None else (sig,)), *e.ys, uses_G=False)
        if it == 0:  # D at the initial state: a non-finite value there is the model's
            e.check_finite(0, d_val)
        x_new = x + (0.5 * alpha * o.guidance) * g
        if o.noise:
            x_new = x_new + alpha**0.5 * e.rng.normal(it, 0, x.shape[1:], x.dtype)
        if o.clip is not None:
            x_new = x_new.clamp(-o.clip, o.clip)
        self.d_val = d_val
        x = e.advance(it + 1, x_new, x, d_val)
        return x, loop_step(it, x, d_val, None)

    def finish(self, e, x):
        d = self.d_val if self.d_val is not None else torch.zeros(x.shape[0], device=x.device)
        return x, None, dict(d=d)


dg_langevin = register("dg_langevin", DGLangevin)
