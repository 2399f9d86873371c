"""DDLS: Discriminator Driven Latent Sampling (Che et al. 2020, Algorithm 1), ULA and MALA.

Target on the chain variable ``u`` (``= z`` for a normal prior):
``p(u) ∝ exp(-E(u) / T_L)``, ``E(u) = 1/2 ||u||^2 - d(G(z(u))) / T``.

ULA step (Che et al. 2020, Alg. 1): ``u <- u - (ε/2) ∇E(u) + τ ξ``, ``ξ ~ N(0, I)``, ``τ = sqrt(ε)`` by
default, so the Langevin temperature ``T_L = τ² / ε`` is 1. MALA proposes the same move and accepts it
with the Metropolis–Hastings ratio of the Gaussian proposal, which removes ULA's O(ε) bias; its step
size can adapt per chain towards a target acceptance during the first ``adapt_steps`` steps
(:meth:`DDLS._adapt`: Robbins–Monro on ``log ε`` with gain ``4 t^-0.6``, frozen at the average of the
second half; from ε0 = 1e-4, 1e-2 or 1 it lands at one ε, which scales with the target's variance).

Defaults (ULA, ε = 0.003, 100 steps, T = 1), chosen by ``benchmarks/defaults.py`` on four GANs built
unlike latentflow's own (``benchmarks/foreign_gans.py``) at ~100 D evaluations per sample, by the rule
"least worst-case change of EMD / FID-FMNIST against the generator alone; among candidates within the
noise of that (7.3 %), the best median change". Changes (grid25-ns-bn, ring8-wgp-unif,
swiss-hinge-strongd, fmnist-mlp-ns; worst, median): ULA ε 0.003: −5.9, −6.6, −2.9, −6.5 % (worst −2.9,
median −6.2); ULA ε 0.01 (the old default): +4.9, −10.1, −8.6, −9.0 % (worst +4.9); ULA ε 0.001: worst
−0.8, median −3.0; MALA adapted from ε0 0.01 (adapt 50 of 100): +57.9, −12.7, −9.3, −17.3 %. MALA samples
``exp(-E)`` more exactly, which helps where D's logit tracks the density ratio and hurts where it does
not (grid25-ns-bn's BatchNorm D); a short ULA run stays near the generator's samples. T = 1 is the only
temperature that targets ``p_data`` when D is exact. A model's own ``sampling:`` settings (manifest or
folder), used by ``latentflow sample`` and :meth:`ModelPair.refine`, override these.
Random draws per chain: the noise ``ξ`` (slot 0 of step i), the accept uniform (slot 1), the
output-noise start ``z'`` (slot 2 of step 0). A class-conditional model keeps each chain's label ``y[c]``
fixed: the chain samples ``p(z | y) ∝ exp(-E(z; y))`` with ``G(z, y)`` and ``D(x, y)``.

Schedules: with ``decay_every = k > 0``, after every k-th step ``ε <- step_decay · ε`` and
``τ <- noise_decay · τ`` (``noise_decay=None``: ``sqrt(step_decay)``, which keeps ``T_L = τ²/ε`` fixed, the
only choice MALA takes). PyTorch-StudioGAN's ``langevin_sampling`` (its ``-lgv`` evaluation option)
runs ``z <- z - (rate/2) ∇E + sqrt(rate) · scaler · n``, ``n ~ N(0, lgv_std · I)`` (``lgv_std`` is passed
as the *covariance* of ``n``), on ``E = -log N(z; 0, I) - D(G(z))``, and after every ``lgv_decay_steps``
steps multiplies both ``rate`` and ``scaler`` by ``lgv_decay``; so its noise std ``sqrt(rate · lgv_std) ·
scaler`` shrinks by ``lgv_decay^1.5`` per decay. :func:`studiogan_options` gives the equivalent options:

=====================  ==========================================================================
StudioGAN              latentflow ``ddls``
=====================  ==========================================================================
``lgv_rate``           ``step_size`` (ε)
``lgv_std``            ``noise_scale = sqrt(lgv_rate · lgv_std)`` (τ)
``lgv_decay``          ``step_decay = lgv_decay``, ``noise_decay = lgv_decay ** 1.5``
``lgv_decay_steps``    ``decay_every`` (StudioGAN decays only when lgv_decay > 0 and lgv_decay_steps > 0)
``lgv_steps``          ``steps``
(energy)               ``d_output="logit"`` (D's raw output), ``temperature=1``, ``mala=False``
=====================  ==========================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..energy import latent_from_u, u_from_latent
from ..errors import OptionError
from ..options import field
from ..result import Evals
from ._checks import LatentTargetOptions, latent_energy, mala_log_alpha
from ._declare import Candidate, with_published
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register

#: step-size adaptation: gain γ0 t^-κ on log ε (see :meth:`DDLS._adapt`)
ADAPT_GAIN, ADAPT_DECAY = 4.0, 0.6


@dataclass(frozen=True)
class DDLSOptions(LatentTargetOptions):
    """Options of :class:`DDLS`: Langevin (ULA, or MALA with ``mala=True``) on the latent energy of
    :class:`~latentflow.samplers._checks.LatentTargetOptions`."""

    steps: int = field(100, "number of Langevin steps, n in Alg. 1", ge=0)
    step_size: float = field(0.003, "ε in Alg. 1; the drift is (ε/2) ∇E (the default: see the module docstring)", gt=0)
    noise_scale: float | None = field(
        None,
        "τ, the noise std per step; None means sqrt(ε) (Langevin "
        "temperature 1); the CIFAR-10 run of Che et al. uses ε = 0.01, τ = 0.1",
        ge=0,
    )
    decay_every: int = field(
        0,
        "k: after every k-th step multiply ε by step_decay and τ by noise_decay "
        "(StudioGAN's lgv_decay_steps); 0: a constant step",
        ge=0,
    )
    noise_decay: float | None = field(
        None,
        "factor on τ every decay_every steps; None: sqrt(step_decay), which "
        "keeps T_L = τ²/ε fixed (StudioGAN: lgv_decay ** 1.5)",
        gt=0,
    )
    step_decay: float = field(1.0, "factor on ε every decay_every steps (StudioGAN's lgv_decay)", gt=0)
    mala: bool = field(False, "accept/reject each move with the Metropolis–Hastings ratio (MALA)")
    adapt_steps: int = field(
        0,
        "MALA only: adapt each chain's step size towards target_accept during the "
        "first adapt_steps steps (Robbins–Monro on log ε with a decaying gain, then frozen at the average "
        "of its second half; T_L fixed)",
        ge=0,
    )
    target_accept: float = field(
        0.574, "acceptance rate the adaptation aims at (0.574 is optimal for MALA)", gt=0, lt=1
    )
    output_noise: float = field(
        0.0, "ε_n of Che et al. 2020, Corollary 1: sample G(z) + ε_n z' jointly over (z, z')", ge=0
    )
    record_trace: bool = field(False, 'keep the energy of every chain at every step in info["energy_trace"]')

    def check(self):
        if self.adapt_steps and not self.mala:
            raise OptionError("adapt_steps needs mala=True (the adaptation follows the MH acceptance rate)")
        if self.adapt_steps > self.steps:
            raise OptionError(f"adapt_steps must be an int in [0, steps]; got {self.adapt_steps!r}")
        if self.mala and self.noise_scale == 0:
            raise OptionError("mala=True needs noise_scale > 0")
        if (
            self.mala
            and self.noise_decay is not None
            and not math.isclose(self.noise_decay, math.sqrt(self.step_decay))
        ):
            raise OptionError(
                f"mala=True keeps the Langevin temperature fixed: noise_decay must be None or "
                f"sqrt(step_decay) = {math.sqrt(self.step_decay):g}; got {self.noise_decay!r}"
            )

    @property
    def noise_factor(self) -> float:
        return math.sqrt(self.step_decay) if self.noise_decay is None else float(self.noise_decay)

    @property
    def tau(self) -> float:
        return math.sqrt(self.step_size) if self.noise_scale is None else float(self.noise_scale)


class State(NamedTuple):
    u: Tensor  # chain state [B, k (+ dim x)]
    E: Tensor  # energy [B]
    g: Tensor  # ∇E [B, ...]
    x: Tensor  # G(z(u)) [B, *X]
    a: Tensor  # drift ε/2 per chain [B, 1]
    b: Tensor  # noise τ per chain [B, 1]
    accepted: Tensor  # accept counts [B]
    trace: tuple
    log_eps_bar: Tensor  # adaptation: running average of log ε per chain [B, 1]


class DDLS(Kernel):
    """Langevin dynamics in latent space on the GAN energy E(z) = -log p0(z) - d(G(z))/T (Che et al. 2020)."""

    Options = DDLSOptions  # needs: the default (a generator and D(x))
    hint = "reduce step_size (or use mala=True)"
    calibration = "temperature"  # -(a s + b)/T has the gradient (and MH ratio) of -s/(T/a)
    about = (
        "Langevin on `E(z) = -log p0(z) - d(G(z))/T` in latent space; ULA (`z <- z - ε/2 ∇E + τ ξ`) or MALA "
        "(`mala=True`, acceptance reported, `adapt_steps` tunes ε per chain, scale-free: Robbins–Monro on log ε "
        "with a decaying gain); `d_output` = `logit`, `prob` or `critic`; normal or uniform prior (the uniform "
        "one through the normal CDF, so chains never leave the box); `output_noise` = seed 001 Corollary 1"
    )
    paper = "seed 001 Alg. 1"
    budget_option = "steps"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """One value-and-gradient of G and D at the start and per step (MALA's too)."""
        per = cls.options_of(options)["steps"] + 1
        return Evals(per + probe_cost(n), per, per + probe_cost(n), per)

    @classmethod
    def search_space(cls, ctx):
        """ULA over temperature × step size × steps, MALA (adapted over the first half) at the most steps,
        and their calibrated variants; Che et al. 2020's CIFAR-10 setting (ε = 0.01, τ = √ε, up to 1000
        steps) among them."""
        steps, out = ctx.steps, []
        for T in (1.0, 0.3, 0.1, 0.03):
            for eps in (0.01, 0.03, 0.1):
                out += [Candidate(cls.name, dict(steps=s, step_size=ctx.step(eps), temperature=T)) for s in steps]
            if steps:
                s = steps[-1]
                mala = dict(steps=s, step_size=ctx.step(0.01), temperature=T, mala=True, adapt_steps=s // 2)
                out.append(Candidate(cls.name, mala))
                if ctx.calibrated:
                    out.append(Candidate(cls.name, mala, True))
                    out += [
                        Candidate(cls.name, dict(steps=s, step_size=ctx.step(0.03), temperature=T), True) for s in steps
                    ]
        top = min(1000, ctx.budget - 2)
        che = dict(steps=top, step_size=ctx.step(0.01), temperature=1.0)
        return with_published(out, [Candidate(cls.name, che, name="Che et al. 2020")] if top >= 1 else [])

    def init(self, e, z):
        o = self.o
        B, k = z.shape
        self.energy, x_shape = latent_energy(e, self.G, self.D, z, o, output_noise=o.output_noise)
        self.t_l = o.tau**2 / o.step_size
        self.k = k
        u = u_from_latent(z, o.prior)
        if o.output_noise > 0:
            u = torch.cat([u, e.rng.normal(0, 2, (math.prod(x_shape),), z.dtype)], 1)
        u = u.detach()
        E, g, x = e.value_and_grad(self.energy, u, *e.ys)
        e.check_finite(0, E, g, x)
        # drift a = ε/2 and noise b = τ per chain: adaptation scales both, keeping T_L = b²/(2a)
        a = torch.full((B, 1), 0.5 * o.step_size, device=z.device, dtype=z.dtype)
        b = torch.full((B, 1), o.tau, device=z.device, dtype=z.dtype)
        return State(
            u, E, g, x, a, b, torch.zeros(B, device=z.device), (E,) if o.record_trace else (), torch.log(2 * a)
        )

    def step(self, e, i, s):
        o = self.o
        prop = s.u - s.a * s.g + s.b * e.rng.normal(i, 0, s.u.shape[1:], s.u.dtype)
        E_p, g_p, x_p = e.value_and_grad(self.energy, prop, *e.ys)
        live = e.check_finite(i + 1, E_p, g_p, prop, x_p)
        a, b, accepted, log_eps_bar = s.a, s.b, s.accepted, s.log_eps_bar
        if o.mala:
            # log q(s | s') - log q(s' | s) for q(s' | s) = N(s - a ∇E(s), b² I)
            log_alpha = mala_log_alpha(s.u, s.E, s.g, prop, E_p, g_p, a, b[:, 0].pow(2), self.t_l)
            acc = live & (torch.log(e.rng.uniform(i, 1, (), s.u.dtype)) < log_alpha)
            if i < o.adapt_steps:
                a, log_eps_bar = self._adapt(i, live, log_alpha, s)
                b = torch.sqrt(2 * a * self.t_l)
            else:
                accepted = accepted + acc.float()
        else:
            acc = live
            accepted = accepted + acc.float()
        if o.decay_every and (i + 1) % o.decay_every == 0:
            a, b = a * o.step_decay, b * o.noise_factor
        u = torch.where(acc.unsqueeze(1), prop, s.u)
        E = torch.where(acc, E_p, s.E)
        x = torch.where(acc.reshape((-1,) + (1,) * (s.x.dim() - 1)), x_p, s.x)
        new = State(
            u,
            E,
            torch.where(acc.unsqueeze(1), g_p, s.g),
            x,
            a,
            b,
            accepted,
            s.trace + (E,) if o.record_trace else (),
            log_eps_bar,
        )
        return new, loop_step(i, u, E, acc, latent_from_u(u[:, : self.k], o.prior))

    def _adapt(self, i, live, log_alpha, s):
        """One Robbins–Monro update of each chain's log ε with a decaying gain, at t = i + 1::

            log ε_t = log ε_{t-1} + γ0 t^-κ (α_t - δ),      γ0 = 4, κ = 0.6

        (α_t: the MH acceptance probability of step t, 0 for a chain whose proposal was not finite; δ =
        target_accept). The gain sums to ≫ 1 over tens of steps, so ε travels decades from any ε0 (α ∈ [0, 1]
        moves log ε by up to 4 per step at first), and shrinks, so the iterates settle. The last adaptation
        step freezes ε at the Polyak–Ruppert average of log ε_t over the second half of the adaptation
        (Robbins & Monro 1951; Polyak & Juditsky 1992). Returns (drift a = ε/2, averaged log ε), [B, 1]."""
        o, t = self.o, i + 1
        p_acc = torch.exp(torch.clamp(torch.nan_to_num(log_alpha, nan=-math.inf), max=0.0))
        p_acc = torch.where(live, p_acc, torch.zeros_like(p_acc)).unsqueeze(1).to(s.a.dtype)
        log_eps = torch.log(2 * s.a) + ADAPT_GAIN * t**-ADAPT_DECAY * (p_acc - o.target_accept)
        log_eps = torch.clamp(log_eps, min=-60.0, max=20.0)  # keep exp() and the proposal finite
        n_avg = t - o.adapt_steps // 2
        log_eps_bar = s.log_eps_bar + (log_eps - s.log_eps_bar) / n_avg if n_avg >= 1 else s.log_eps_bar
        a = 0.5 * torch.exp(log_eps_bar if t == o.adapt_steps else log_eps)
        return a, log_eps_bar

    def finish(self, e, s):
        o = self.o
        info = dict(energy=s.E, langevin_temperature=self.t_l)
        if o.mala:
            info["accept_rate"] = s.accepted / max(o.steps - o.adapt_steps, 1)
        if o.mala or o.decay_every:
            info["step_size_final"] = 2 * s.a[:, 0]
        if o.decay_every:
            info["noise_scale_final"] = s.b[:, 0]
        if o.output_noise > 0:
            info["output_noise_z"] = s.u[:, self.k :]
        if o.record_trace:
            info["energy_trace"] = torch.stack(s.trace)
        return s.x, latent_from_u(s.u[:, : self.k], o.prior), info


def studiogan_options(
    lgv_rate: float, lgv_std: float, lgv_decay: float = -1, lgv_decay_steps: int = -1, lgv_steps: int = 1000
) -> dict:
    """The ``ddls`` options that run PyTorch-StudioGAN's ``langevin_sampling`` with its ``-lgv_rate -lgv_std
    -lgv_decay -lgv_decay_steps -lgv_steps`` (see the table in this module's docstring)."""
    if not lgv_rate > 0 or not lgv_std > 0:
        raise OptionError(f"lgv_rate and lgv_std must be > 0; got lgv_rate={lgv_rate!r}, lgv_std={lgv_std!r}")
    out = dict(
        steps=int(lgv_steps),
        step_size=float(lgv_rate),
        noise_scale=math.sqrt(lgv_rate * lgv_std),
        d_output="logit",
        temperature=1.0,
        mala=False,
    )
    if lgv_decay > 0 and lgv_decay_steps > 0:
        out.update(decay_every=int(lgv_decay_steps), step_decay=float(lgv_decay), noise_decay=float(lgv_decay) ** 1.5)
    return out


ddls = register("ddls", DDLS)
