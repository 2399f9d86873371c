"""Ex2MCMC: i-SIR global moves from the prior interleaved with MALA local moves in latent space
(Samsonov et al. 2022, "Local-Global MCMC kernels: the best of both worlds"; the Ex2MCMC kernel with the
prior as its global proposal, without the flow-fitted proposal of FlEx2MCMC).

Target on the chain variable ``u`` (``= z`` for a normal prior, as in DDLS):
``π(u) ∝ exp(-E(u))``, ``E(u) = 1/2 ||u||^2 - d(G(z(u))) / T``. One iteration:

1. **i-SIR** (iterated sampling–importance–resampling): keep the current state ``u_1 = u`` and draw
   ``N - 1`` candidates ``u_2..u_N ~ N(0, I)`` (the prior); pick ``u_J`` with probability
   ``w_j / Σ_k w_k``, ``w_j = π(u_j) / p(u_j) ∝ exp(d(G(z(u_j))) / T)``. This kernel leaves ``π`` invariant
   for any ``N >= 2`` and jumps between modes the local moves cannot cross.
2. **MALA** rejuvenation: ``mala_steps`` Metropolis-adjusted Langevin steps ``u' = u - (ε/2) ∇E(u) +
   sqrt(ε) ξ`` accepted with the Metropolis–Hastings ratio.

Candidates whose D value is not finite get weight 0 (counted in ``info["nonfinite_d"]``). Random draws
per chain at iteration i: candidates slot 0, the resampling uniform slot 1, MALA step j's noise slot
2 + 2j and accept uniform slot 3 + 2j. D evaluations per chain and iteration: ``N - 1`` forwards
(candidates) plus ``mala_steps + 1`` forwards and backwards (when ``mala_steps > 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..energy import latent_from_u, to_logit, u_from_latent
from ..options import field
from ..result import Evals
from ._checks import LatentTargetOptions, latent_energy, mala_log_alpha
from ._declare import Candidate
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register


@dataclass(frozen=True)
class Ex2MCMCOptions(LatentTargetOptions):
    """Options of :class:`Ex2MCMC`: i-SIR global moves with MALA steps between them, on the latent energy of
    :class:`~latentflow.samplers._checks.LatentTargetOptions`."""

    steps: int = field(50, "iterations; each is one i-SIR global step and mala_steps MALA steps", ge=0)
    n_particles: int = field(
        10,
        "N, the i-SIR candidates per chain, the current state included (N - 1 fresh prior draws per iteration)",
        ge=2,
    )
    mala_steps: int = field(5, "local MALA steps after each i-SIR step (0: i-SIR alone)", ge=0)
    step_size: float = field(0.01, "ε of the MALA steps: drift (ε/2) ∇E, noise sqrt(ε)", gt=0)


class State(NamedTuple):
    u: Tensor  # chain state [B, k]
    logw: Tensor  # d(G(z(u)))/T at the state [B]
    E: Tensor  # energy at the state [B]
    mala_acc: Tensor  # MALA accept counts [B]
    moves: Tensor  # i-SIR steps that picked a fresh candidate [B]
    nonfinite: Tensor  # candidates with a non-finite D value [B]


class Ex2MCMC(Kernel):
    """Ex2MCMC: i-SIR proposals from the prior (weights exp(d(G(z))/T)) interleaved with MALA steps in latent space."""

    Options = Ex2MCMCOptions  # needs (a generator and D(x)) and hint (a smaller step size): the defaults
    about = (
        "Ex2MCMC: i-SIR global moves (N - 1 prior candidates per chain plus the current state, picked ∝ "
        "`exp(d(G(z))/T)`) interleaved with `mala_steps` MALA steps on the DDLS energy; reaches modes Langevin "
        "alone cannot leave or enter"
    )
    paper = "Samsonov et al. 2022"
    #: the search space's i-SIR candidates N and MALA steps per iteration
    SEARCH_N, SEARCH_MALA = 5, 4

    @classmethod
    def per_step(cls, options=None) -> tuple[int, int]:
        """D (forward, backward) evaluations per chain in one iteration: ``N - 1`` candidates, and ``L + 1``
        value-and-gradients when there are ``L > 0`` MALA steps."""
        o = cls.options_of(options)
        local = o["mala_steps"] + 1 if o["mala_steps"] else 0
        return o["n_particles"] - 1 + local, local

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """A value-and-gradient at the start, :meth:`per_step` per iteration (G with D), G once at the end."""
        steps = cls.options_of(options)["steps"]
        fwd, bwd = cls.per_step(options)
        d = 1 + steps * fwd + probe_cost(n)
        return Evals(d + 1, 1 + steps * bwd, d, 1 + steps * bwd)

    @classmethod
    def fit_budget(cls, budget, options=None):
        """At least one iteration, as many as ``budget`` D forward evaluations per sample pay for."""
        return {"steps": max(1, int(budget) // cls.per_step(options)[0])}

    @classmethod
    def search_space(cls, ctx):
        """N = 5 candidates and 4 MALA steps per iteration; 2 iterations and the most the budget allows (the
        start and the boundary probe take two of it), over ε × T."""
        shape = dict(n_particles=cls.SEARCH_N, mala_steps=cls.SEARCH_MALA)
        per = cls.per_step(shape)[0]
        iters = sorted({i for i in (2, (ctx.budget - 2) // per) if i >= 1 and 2 + i * per <= ctx.budget})
        return [
            Candidate(cls.name, dict(steps=i, **shape, step_size=ctx.step(eps), temperature=T))
            for i in iters
            for eps in (0.01, 0.03)
            for T in (1.0, 0.3)
        ]

    def init(self, e, z):
        o = self.o
        self.energy, _ = latent_energy(e, self.G, self.D, z, o)
        self.k = z.shape[1]
        u = u_from_latent(z, o.prior).detach()
        E, g, _ = e.value_and_grad(self.energy, u, *e.ys)
        e.check_finite(0, E, g)
        zeros = torch.zeros(z.shape[0], device=z.device)
        return State(u, self._logw(u, E), E, zeros, zeros, zeros.long())

    @staticmethod
    def _logw(u, E):
        """``d/T = 1/2 ||u||² - E``: the log importance weight against the prior."""
        return 0.5 * u.pow(2).sum(1) - E

    def _candidate_logw(self, e, u, n: int):
        """Log weights of ``n`` candidates per chain (rows of ``u`` grouped by chain); a candidate of chain
        ``c`` of a conditional model is drawn for, and weighed with, ``c``'s label."""
        o = self.o
        ys = tuple(y.repeat_interleave(n) for y in e.ys)

        def logw(t, *yy):
            d = to_logit(e.D(self.D, e.G(self.G, latent_from_u(t, o.prior), *yy), *yy), o.d_output)
            return d / o.temperature

        return e.map(logw, u, *ys)

    def _isir(self, e, i, s):
        o = self.o
        B, k, n = s.u.shape[0], self.k, o.n_particles - 1
        cand = e.rng.normal(i, 0, (n, k), s.u.dtype)  # [B, N-1, k]
        lw = self._candidate_logw(e, cand.reshape(B * n, k), n).reshape(B, n)
        bad = ~torch.isfinite(lw)
        lw = torch.where(bad, torch.full_like(lw, -float("inf")), lw)
        logits = torch.cat([s.logw.unsqueeze(1), lw], 1)  # the current state is candidate 0
        p = torch.softmax(logits, 1)
        cum = torch.cumsum(p, 1)
        v = e.rng.uniform(i, 1, (), cum.dtype).unsqueeze(1) * cum[:, -1:]
        j = (cum <= v).sum(1).clamp_max(n)  # inverse CDF of the weights
        rows = torch.arange(B, device=s.u.device)
        pick = torch.cat([s.u.unsqueeze(1), cand], 1)[rows, j]
        return pick, logits[rows, j], j > 0, bad.sum(1)

    def step(self, e, i, s):
        o = self.o
        u, logw, moved, n_bad = self._isir(e, i, s)
        acc_total = s.mala_acc
        if o.mala_steps == 0:
            E = 0.5 * u.pow(2).sum(1) - logw
        else:
            E, g, _ = e.value_and_grad(self.energy, u, *e.ys)
            a, b = 0.5 * o.step_size, o.step_size**0.5
            for j in range(o.mala_steps):
                prop = u - a * g + b * e.rng.normal(i, 2 + 2 * j, u.shape[1:], u.dtype)
                E_p, g_p, _ = e.value_and_grad(self.energy, prop, *e.ys)
                live = e.check_finite(i + 1, E_p, g_p, prop)
                log_alpha = mala_log_alpha(u, E, g, prop, E_p, g_p, a, b * b)
                acc = live & (torch.log(e.rng.uniform(i, 3 + 2 * j, (), u.dtype)) < log_alpha)
                u = torch.where(acc.unsqueeze(1), prop, u)
                E = torch.where(acc, E_p, E)
                g = torch.where(acc.unsqueeze(1), g_p, g)
                acc_total = acc_total + acc.float()
            logw = self._logw(u, E)
        new = State(u, logw, E, acc_total, s.moves + moved.float(), s.nonfinite + n_bad)
        return new, loop_step(i, u, E, moved, latent_from_u(u, o.prior))

    def finish(self, e, s):
        o = self.o
        z = latent_from_u(s.u, o.prior)
        x = e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *e.ys)
        info = dict(
            energy=s.E,
            global_accept_rate=s.moves / max(o.steps, 1),
            nonfinite_d=s.nonfinite,
            n_nonfinite_d=int(s.nonfinite.sum()),
        )
        if o.mala_steps:
            info["accept_rate"] = s.mala_acc / max(o.steps * o.mala_steps, 1)
        return x, z, info


ex2mcmc = register("ex2mcmc", Ex2MCMC)
