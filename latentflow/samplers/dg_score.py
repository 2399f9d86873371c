"""Discriminator guidance of a score model (Kim et al. 2023): the EDM Heun sampler (Karras et al. 2022,
Alg. 1, with the optional churn of Alg. 2) or annealed Langevin on the guided score
``s(x, σ) + w ∇x log(d/(1 - d))(x, σ)``.

The score model ``S(x [B, *X], σ [B])`` comes as the option ``score=`` and ``score_output`` says what it
predicts (``latentflow.scores.as_score``: the score, the denoised ``E[y | x]``, the noise ``ε`` or a raw
EDM network). ``d(x, σ)`` is a noise-conditioned discriminator of noised data against noised samples of
the score model; at its optimum ``d/(1 - d) = p_σ/q_σ``, so the guided score is the data's score
``∇ log p_σ`` (Kim et al. 2023, Eq. 7). The guidance applies on the noise levels ``guide_range``.
There is no generator: ``G`` is None, ``z ~ N(0, I)`` [B, *X] is the starting noise and ``x_T = σ_0 z``
(``σ_0 = sigma_max`` unless ``sigmas`` is given).

* ``solver="heun"``: the probability-flow ODE ``dx/dσ = -σ s̃(x, σ)`` on the EDM grid
  (``latentflow.scores.edm_sigmas``, ``steps`` levels and ``σ_N = 0``) with ``latentflow.scores.heun_step``:
  ``2N - 1`` guided-score evaluations per sample. With ``s_churn > 0`` (Alg. 2) each step first raises the
  noise level ``σ̂ = σ_i (1 + γ_i)``, ``γ_i = min(S_churn/N, √2 - 1)`` for ``S_tmin <= σ_i <= S_tmax``, by
  ``x̂ = x + sqrt(σ̂² - σ_i²) S_noise ξ`` (slot 0 of step i), then takes the Heun step from ``σ̂``.
* ``solver="langevin"`` (annealed Langevin, Song & Ermon 2019, Alg. 1): for the levels ``σ_1 > ... > σ_L``
  and ``langevin_steps`` T steps per level, ``α_i = ε σ_i²/σ_L²`` and
  ``x <- x + (α_i/2) s̃(x, σ_i) + sqrt(α_i) ξ``
  (ξ: slot 0 of global step ``it``); ``L T`` evaluations per sample.

The score model runs without gradients through the engine (chunked, counted in ``n_score_forward``); the
discriminator's input gradient is the engine's value-and-gradient step (chunked, counted in
``n_D_forward``/``n_D_backward``, and where asked compiled, CUDA-graphed or autocast).

Default guidance range ``guide_range=(0, 1)``: guidance only at ``σ <= 1``. A noise-conditioned D is only as
good as the levels it was trained on, and its input gradient is a stiff term for the Heun step (with a
σ-blind ``d = -0.1 ||x||²`` on the exact N(0, I) score, guiding every level of the default grid took the
sample std to 6e8 after 5 steps and 1.7e21 after 18, ``σ <= 10`` to 36, while ``σ <= 1`` gave 0.997). The
``latentflow train dgdisc`` D draws ``ln σ ~ N(-1.2, 1.2²)`` (EDM's training levels), so ``σ <= 1`` is the
84th percentile of what it saw; on grid25 guiding ``σ <= 1`` cut the EMD by 25 % (w = 1), guiding up to
``σ = 5`` threw samples off the grid. Kim et al. (2023) guide nearly every level (``τ ∈ [0.01, 1]`` of the
VP time, ``σ ≈ 0.045 .. 152``) with a D trained on all of them: pass ``guide_range=None`` (every level) or a
wider range for such a D (on Fashion-MNIST, guiding ``σ <= 10`` beat ``σ <= 3``).

Divergence: the exact flow keeps the state's RMS over its coordinates at ``sqrt(RMS(data)² + σ²)``, at most
``sqrt(2) σ_0`` while the start dominates the data (as it must for ``x_T = σ_0 z`` to sample ``p_σ0``). A
chain whose RMS passes ``DIVERGE_RMS = 10`` times ``max(σ_0, σ_data)`` (``σ_data`` = 1 when not given) has
left what the flow can reach: it is frozen at its last state within the bound and counted in
``info["diverged"]`` like a non-finite one (a healthy N(0, I) start exceeds ``10 σ_0`` with probability
below 1e-23 per coordinate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..energy import to_logit
from ..errors import OptionError, ShapeError
from ..options import Options, field
from ..result import Evals
from ..scores import as_score, edm_sigmas, heun_step
from ._checks import check_state, probe
from ._declare import Needs
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register

#: a chain whose RMS passes this multiple of max(σ_0, σ_data) has diverged (module docstring)
DIVERGE_RMS = 10.0


@dataclass(frozen=True)
class DGScoreOptions(Options):
    score: Callable | None = field(
        None, "the score model S(x, σ [B]) -> [B, *X] (required); score_output says what it predicts"
    )
    score_output: Literal["score", "denoised", "eps", "raw"] = field(
        "score",
        'what S returns: the score ∇x log p_σ, the "denoised" E[y | x] (EDM\'s D_θ), the noise "eps", '
        'or a "raw" EDM network F (needs sigma_data)',
    )
    sigma_data: float | None = field(None, 'σ_data of the EDM preconditioning (score_output="raw" only)', gt=0)
    w: float = field(
        1.0,
        "w, the guidance weight of w ∇x log(d/(1 - d)) (Kim et al. 2023, Eq. 7); 0: plain "
        "sampling of S (D may then be None)",
    )
    d_output: Literal["logit", "prob"] = field("logit", "what D(x, σ) returns: log(d/(1 - d)) or d in (0, 1)")
    guide_range: Sequence[float] | None = field(
        (0.0, 1.0),
        "(lo, hi): guide only at noise levels lo <= σ <= hi (those D was trained on; the default σ <= 1 is "
        "where the dgdisc trainer's D mostly learnt, see the module docstring); None: every level",
    )
    solver: Literal["heun", "langevin"] = field(
        "heun", '"heun": EDM Heun (Karras et al. 2022, Alg. 1/2); "langevin": annealed Langevin'
    )
    steps: int = field(
        18, "N, noise levels of the EDM grid (Heun: 2N - 1 evaluations; Langevin: L = N levels, σ_max ... σ_min)", ge=2
    )
    sigma_min: float = field(0.002, "σ_min of the EDM grid", gt=0)
    sigma_max: float = field(80.0, "σ_max of the EDM grid; the start is x_T = σ_max z", gt=0)
    rho: float = field(7.0, "ρ of the EDM grid σ_i = (σ_max^{1/ρ} + i/(N-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ", gt=0)
    sigmas: Sequence[float] | Tensor | None = field(
        None,
        "an explicit grid instead of (steps, sigma_min, sigma_max, rho): Heun: strictly decreasing to a "
        "last value >= 0; Langevin: positive, non-increasing levels",
    )
    s_churn: float = field(0.0, "S_churn of Alg. 2 (Heun): stochastic noise raise per step; 0 = deterministic", ge=0)
    s_tmin: float = field(0.0, "S_tmin: churn only at σ_i >= S_tmin", ge=0)
    s_tmax: float | None = field(None, "S_tmax: churn only at σ_i <= S_tmax (None: no upper bound)", ge=0)
    s_noise: float = field(1.0, "S_noise: std multiplier of the churn noise", ge=0)
    langevin_steps: int = field(10, 'T, Langevin steps per noise level (solver="langevin")', ge=1)
    step_size: float = field(
        1e-6,
        "ε of annealed Langevin: α_i = ε σ_i²/σ_L², so ε/σ_L² is the step relative "
        "to the noise variance (keep it well below 1)",
        gt=0,
    )

    def check(self):
        if self.score_output == "raw" and self.sigma_data is None:
            raise OptionError('score_output="raw" needs sigma_data > 0 (the data std of the EDM preconditioning)')
        if not self.sigma_min < self.sigma_max:
            raise OptionError(
                f"sigma_min must be < sigma_max; got sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r}"
            )
        if self.guide_range is not None:
            g = list(self.guide_range)
            if len(g) != 2 or not 0 <= g[0] < g[1]:
                raise OptionError(f"guide_range must be (lo, hi) with 0 <= lo < hi; got {self.guide_range!r}")
        if self.solver == "langevin" and self.s_churn > 0:
            raise OptionError(
                's_churn is a Heun option (Karras et al. 2022, Alg. 2); solver="langevin" adds its '
                "own noise: leave s_churn=0"
            )
        if self.sigmas is not None:
            sig = torch.as_tensor(self.sigmas, dtype=torch.float64).flatten()
            if self.solver == "heun":
                if sig.numel() < 2 or not bool((sig[1:] < sig[:-1]).all()) or float(sig[-1]) < 0:
                    raise OptionError(
                        'sigmas must decrease strictly to a last value >= 0 for solver="heun" '
                        f"(at least two levels); got {sig.tolist()[:6]}"
                    )
            elif sig.numel() < 1 or not bool((sig > 0).all()) or not bool((sig[1:] <= sig[:-1]).all()):
                raise OptionError(
                    f'sigmas must be positive and non-increasing for solver="langevin"; got {sig.tolist()[:6]}'
                )


class DGScore(Kernel):
    """Discriminator-guided sampling of a score model: EDM Heun or annealed Langevin on s + w ∇ log(d/(1-d))."""

    Options = DGScoreOptions
    needs = Needs(
        generator="none",
        discriminator=("D(x, sigma)",),
        discriminator_optional=True,
        score=True,
        labels=False,
        note="G=None: z ~ N(0, I) [B, *X] is the starting noise; D optional with w=0",
    )
    hint = (
        "use more steps, a smaller w or a guide_range D was trained on (Langevin: a smaller step_size); a "
        "chain diverges when non-finite or when its RMS passes 10·max(σ_0, σ_data)"
    )
    about = (
        "discriminator guidance of a **score model** `S(x, σ)` (`score=S`, no G): EDM Heun (optional churn) or "
        "annealed Langevin on `s + w ∇x log(d/(1-d))(x, σ)`, guided on a σ range (σ ≤ 1 by default)"
    )
    paper = "Kim et al. 2023; Karras et al. 2022, Alg. 1/2"

    def __init__(self, *a):
        super().__init__(*a)
        self.grid, self.alphas, self.guided_at = self._schedule(self.o, self.D is not None)
        self.bound = DIVERGE_RMS * max(self.grid[0], self.o.sigma_data or 1.0)

    def beyond(self, x: Tensor) -> Tensor:
        """Per chain: NaN where the state's RMS passes ``self.bound`` (or is not finite), else 0; given to
        ``engine.advance`` as a check, so such chains are frozen and counted as diverged."""
        rms = x.detach().reshape(x.shape[0], -1).float().pow(2).mean(1).sqrt()
        return torch.where(rms <= self.bound, torch.zeros_like(rms), torch.full_like(rms, math.nan))

    @staticmethod
    def _schedule(o, has_d: bool) -> tuple[list, list, list]:
        """The noise levels, the Langevin step per level and whether each level is guided."""
        if o.sigmas is not None:
            grid = [float(v) for v in torch.as_tensor(o.sigmas, dtype=torch.float64).flatten()]
        else:
            grid = edm_sigmas(o.steps, o.sigma_min, o.sigma_max, o.rho).tolist()
            if o.solver == "langevin":
                grid = grid[:-1]  # the levels σ_1 = σ_max > ... > σ_L = σ_min
        alphas = [o.step_size * s**2 / grid[-1] ** 2 for s in grid] if o.solver == "langevin" else []
        lo, hi = o.guide_range if o.guide_range is not None else (0.0, math.inf)
        return grid, alphas, [o.w != 0 and has_d and lo <= s <= hi for s in grid]

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """Score evaluations: Heun ``2N - 1`` (``2N - 2`` ending at σ = 0), Langevin ``L T``; a
        value-and-gradient of D at each guided one."""
        o = cls.Options(**cls.options_of(options))
        grid, _, guided = cls._schedule(o, True)
        if o.solver == "langevin":
            per_level = [o.langevin_steps] * len(grid)
        else:  # step i evaluates at σ_i (churned) and, in Heun's correction, at σ_{i+1} unless it is 0
            per_level = [0] * len(grid)
            for i in range(len(grid) - 1):
                per_level[i] += 1
                if grid[i + 1] != 0:
                    per_level[i + 1] += 1
        d = sum(c for c, g in zip(per_level, guided) if g)
        return Evals(0, 0, d + (probe_cost(n) if any(guided) else 0.0), d, sum(per_level) + probe_cost(n))

    def models(self):
        return (self.D, self.o.score)

    def validate(self, z):
        o = self.o
        if self.G is not None:
            raise OptionError(
                "dg_score samples a score model from noise and takes no generator: pass G=None "
                "(z ~ N(0, I) is the starting noise, x_T = σ_max z)"
            )
        if o.score is None:
            raise OptionError(
                "dg_score needs score=S, a score model S(x, sigma [B]) -> [B, *X] (score_output "
                "says whether it returns the score, the denoised x or the noise eps)"
            )
        if self.D is None and o.w != 0:
            raise OptionError(
                f"w={o.w!r} needs a noise-conditioned discriminator D(x, sigma); pass D, or w=0 "
                "for plain sampling of the score model"
            )
        check_state(z, ndim=None)
        if z.dim() < 2:
            raise ShapeError(
                f"z must have shape [B, *X] (the starting noise, one row per sample); got shape {tuple(z.shape)}"
            )

    def draws(self):
        o = self.o
        return o.solver == "langevin" or (
            o.s_churn > 0 and o.s_noise > 0 and any(self._gamma(i) > 0 for i in range(len(self.grid) - 1))
        )

    def n_steps(self):
        if self.o.solver == "langevin":
            return len(self.grid) * self.o.langevin_steps
        return len(self.grid) - 1

    def _gamma(self, i: int) -> float:
        o, s = self.o, self.grid[i]
        if o.s_churn == 0 or s < o.s_tmin or (o.s_tmax is not None and s > o.s_tmax):
            return 0.0
        return min(o.s_churn / (len(self.grid) - 1), math.sqrt(2.0) - 1.0)

    def init(self, e, z):
        o = self.o
        S = o.score
        if e.autocast is not None:  # under autocast the network may answer in half precision
            S = (lambda f: lambda x, s: f(x, s).to(x.dtype))(o.score)
        self.S = as_score(S, o.score_output, o.sigma_data)
        x = (self.grid[0] * z).detach()
        m = min(2, x.shape[0])
        s0 = torch.full((m,), self.grid[0], device=x.device, dtype=x.dtype)
        with torch.no_grad():
            try:
                e.score(self.S, x[:m], s0)
            except ShapeError:
                raise
            except Exception as err:  # a user's S that cannot take (x, σ): say so with shapes
                raise ShapeError(
                    f"the score model S(x, sigma) failed on x of shape {tuple(x[:m].shape)} and sigma "
                    f"of shape ({m},): {type(err).__name__}: {err}"
                ) from err
        if any(self.guided_at):
            probe(e, None, self.D, x, cond=(s0,), cond_name="sigma")

        def score_rows(xx, ss):
            return e.score(self.S, xx, ss)

        def logit(xx, ss):
            return to_logit(e.D(self.D, xx, ss), o.d_output), None

        self.score_rows, self.logit = score_rows, logit
        self.d_last = None
        return x

    def guided(self, e, x: Tensor, sigma: float, guide: bool) -> Tensor:
        """``s(x, σ) + w ∇x log(d/(1 - d))(x, σ)`` (the correction only where ``guide``)."""
        sig = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=x.dtype)
        s = e.map(self.score_rows, x, sig)
        if guide:
            lg, g, _ = e.value_and_grad(self.logit, x, sig, uses_G=False)
            self.d_last = lg
            s = s + self.o.w * g.to(s.dtype)
        return s

    def step(self, e, i, x):
        if self.o.solver == "langevin":
            return self._langevin(e, i, x)
        o, s_i, s_next = self.o, self.grid[i], self.grid[i + 1]
        gamma = self._gamma(i)
        x_hat, s_hat = x, s_i
        if gamma > 0:  # Alg. 2: raise the noise level to σ̂ = σ_i (1 + γ_i)
            s_hat = s_i * (1 + gamma)
            x_hat = x + (math.sqrt(s_hat**2 - s_i**2) * o.s_noise) * e.rng.normal(i, 0, x.shape[1:], x.dtype)
        d = -s_hat * self.guided(e, x_hat, s_hat, self.guided_at[i])
        if i == 0:  # the score (and D) at the initial state: a non-finite value there is the model's
            e.check_finite(0, d)
        guide_next = self.guided_at[i + 1] if i + 1 < len(self.grid) else False
        x_new, _ = heun_step(lambda xx, _s: self.guided(e, xx, s_next, guide_next), x_hat, s_hat, s_next, d=d)
        x = e.advance(i + 1, x_new, x, self.beyond(x_new))
        return x, loop_step(i, x, None, None)

    def _langevin(self, e, it, x):
        level = it // self.o.langevin_steps
        alpha = self.alphas[level]
        g = self.guided(e, x, self.grid[level], self.guided_at[level])
        if it == 0:
            e.check_finite(0, g)
        x_new = x + (0.5 * alpha) * g + math.sqrt(alpha) * e.rng.normal(it, 0, x.shape[1:], x.dtype)
        x = e.advance(it + 1, x_new, x, self.beyond(x_new))
        return x, loop_step(it, x, None, None)

    def finish(self, e, x):
        if self.o.solver == "langevin":
            nfe = len(self.grid) * self.o.langevin_steps
        else:
            nfe = 2 * (len(self.grid) - 1) - (1 if self.grid[-1] == 0 else 0)
        info = dict(nfe=nfe)
        if self.d_last is not None:
            info["d"] = self.d_last
        return x, None, info


dg_score = register("dg_score", DGScore)
