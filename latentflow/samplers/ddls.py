"""DDLS: Discriminator Driven Latent Sampling (seed 001, Algorithm 1), ULA and MALA.

Target on the chain variable ``u`` (``= z`` for a normal prior):
``p(u) ∝ exp(-E(u) / T_L)``, ``E(u) = 1/2 ||u||^2 - d(G(z(u))) / T``.

ULA step (seed 001 Alg. 1): ``u <- u - (ε/2) ∇E(u) + τ ξ``, ``ξ ~ N(0, I)``, ``τ = sqrt(ε)`` by default,
so the Langevin temperature ``T_L = τ² / ε`` is 1. MALA proposes the same move and accepts it with the
Metropolis–Hastings ratio of the Gaussian proposal, which removes ULA's O(ε) bias; its step size can
adapt per chain towards a target acceptance during the first ``adapt_steps`` steps.
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor

from .. import rng
from ..energy import LatentEnergy, check_d_output, check_prior, latent_from_u, u_from_latent
from ..errors import OptionError
from ..result import Result, Step
from . import register
from ._engine import Runner, check_state, frozen, probe


@register("ddls")
def ddls(
    G: Callable[[Tensor], Tensor],
    D: Callable[[Tensor], Tensor],
    z: Tensor,
    *,
    steps: int = 100,
    step_size: float = 0.01,
    noise_scale: float | None = None,
    d_output: Literal["logit", "prob", "critic"] = "logit",
    prior: Literal["normal", "uniform"] = "normal",
    temperature: float = 1.0,
    mala: bool = False,
    adapt_steps: int = 0,
    target_accept: float = 0.574,
    output_noise: float = 0.0,
    record_trace: bool = False,
    batch_size: int | Literal["auto"] | None = None,
    compile: bool = False,
    cuda_graph: bool = False,
    autocast: Literal["bf16", "fp16"] | None = None,
    generator: torch.Generator | int | None = None,
    callback: Callable[[Step], None] | None = None,
    progress: bool = True,
) -> Result:
    """Langevin dynamics in latent space on the GAN energy E(z) = -log p0(z) - d(G(z))/T (seed 001).

    Args:
        G: generator ``z [B, k] -> x [B, *X]`` (``nn.Module`` or function).
        D: discriminator ``x -> [B]`` or ``[B, 1]``; what it returns is said by ``d_output``.
        z: initial latents ``[B, k]``, one chain per row (draw them with ``sample_latents``).
        steps: number of Langevin steps, n in seed 001 Alg. 1.
        step_size: ε in seed 001 Alg. 1; the drift is ``(ε/2) ∇E``.
        noise_scale: τ, the noise std per step; ``None`` means ``sqrt(ε)`` (Langevin temperature 1).
            Seed 001's CIFAR-10 run uses ε = 0.01 with τ = 0.1.
        d_output: ``"logit"`` (d), ``"prob"`` (sigmoid(d), converted back stably) or ``"critic"`` (WGAN).
        prior: ``"normal"`` N(0, I) or ``"uniform"`` U[-1, 1]^k (sampled through the normal CDF).
        temperature: T dividing the discriminator term of the energy (1 = seed 001).
        mala: accept/reject each move with the Metropolis–Hastings ratio (MALA) and report acceptance.
        adapt_steps: MALA only: adapt each chain's step size towards ``target_accept`` during the first
            ``adapt_steps`` steps (Robbins–Monro on log ε, keeping T_L fixed); frozen afterwards.
        target_accept: acceptance rate the adaptation aims at (0.574 is optimal for MALA).
        output_noise: ε_n of seed 001 Corollary 1: sample ``G(z) + ε_n z'`` jointly over ``(z, z')``.
        record_trace: keep the energy of every chain at every step in ``info["energy_trace"]``.
        batch_size: evaluate G and D in chunks of this many chains, or ``"auto"``: the largest chunk
            that fits in free memory, from a probe on a few rows (results do not depend on it).
        compile: evaluate the energy through ``torch.compile`` (its backward is compiled with it); the
            first call compiles (seconds to a minute); falls back to eager with a logged warning.
        cuda_graph: capture each chunk's energy-and-gradient step as a CUDA graph and replay it
            (CUDA tensors only; one capture per chunk shape).
        autocast: ``"bf16"`` or ``"fp16"``: evaluate G and D under ``torch.autocast``; the chain state,
            energies, gradients and accept tests stay in ``z``'s dtype. fp16 has no gradient scaling
            (small gradients can underflow): prefer bf16.
        generator: ``torch.Generator`` or int seed; the only source of randomness.
        callback: called with ``Step(i, z, energy, accepted)`` after every step.
        progress: show a tqdm bar on stderr.
    """
    options = dict(steps=steps, step_size=step_size, noise_scale=noise_scale, d_output=d_output,
                   prior=prior, temperature=temperature, mala=mala, adapt_steps=adapt_steps,
                   target_accept=target_accept, output_noise=output_noise, autocast=autocast)
    check_state(z)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise OptionError(f"steps must be an int >= 0; got {steps!r}")
    if not step_size > 0:
        raise OptionError(f"step_size must be > 0; got {step_size!r}")
    if noise_scale is not None and not noise_scale >= 0:
        raise OptionError(f"noise_scale must be >= 0 or None; got {noise_scale!r}")
    if adapt_steps and not mala:
        raise OptionError("adapt_steps needs mala=True (the adaptation follows the MH acceptance rate)")
    if not 0 < target_accept < 1:
        raise OptionError(f"target_accept must lie in (0, 1); got {target_accept!r}")
    if not (isinstance(adapt_steps, int) and 0 <= adapt_steps <= steps):
        raise OptionError(f"adapt_steps must be an int in [0, steps]; got {adapt_steps!r}")
    check_d_output(d_output)
    check_prior(prior)
    tau = math.sqrt(step_size) if noise_scale is None else float(noise_scale)
    t_langevin = tau * tau / step_size
    if mala and tau == 0:
        raise OptionError("mala=True needs noise_scale > 0")

    B, k = z.shape
    device, dtype = z.device, z.dtype
    gen = rng.resolve(generator, device)
    runner = Runner("ddls", options, B, device, batch_size=batch_size, progress=progress,
                    callback=callback, hint="reduce step_size (or use mala=True)",
                    compile=compile, cuda_graph=cuda_graph, autocast=autocast)
    with frozen(G, D):
        x_shape = probe(runner, G, D, z)
        energy = LatentEnergy(G, D, runner, latent_dim=k, x_shape=x_shape, prior=prior,
                              d_output=d_output, temperature=temperature, output_noise=output_noise)
        u = u_from_latent(z, prior)
        if output_noise > 0:
            zp = rng.randn((B, math.prod(x_shape)), gen, device, dtype)
            u = torch.cat([u, zp], 1)
        state = u.detach()

        E, g, x = runner.value_and_grad(energy, state)
        runner.check_finite(0, E, g, x)
        # drift a = ε/2 and noise b = τ per chain: adaptation scales both, keeping T_L = b²/(2a)
        a = torch.full((B, 1), 0.5 * step_size, device=device, dtype=dtype)
        b = torch.full((B, 1), tau, device=device, dtype=dtype)
        accepted = torch.zeros(B, device=device, dtype=torch.float32)
        trace = [E] if record_trace else None
        for i in runner.steps(steps, "ddls-mala" if mala else "ddls"):
            noise = runner.randn(state.shape, gen, dtype)
            prop = state - a * g + b * noise
            E_p, g_p, x_p = runner.value_and_grad(energy, prop)
            live = runner.check_finite(i + 1, E_p, g_p, prop, x_p)
            if mala:
                # log q(s | s') - log q(s' | s) for q(s' | s) = N(s - a ∇E(s), b² I)
                fwd = (prop - state + a * g).pow(2).sum(1)
                bwd = (state - prop + a * g_p).pow(2).sum(1)
                b2 = b[:, 0].pow(2)
                log_alpha = -(E_p - E) / t_langevin + (fwd - bwd) / (2 * b2)
                log_u = torch.log(runner.rand((B,), gen, dtype))
                acc = live & (log_u < log_alpha)
                if i < adapt_steps:
                    p_acc = torch.exp(torch.clamp(torch.nan_to_num(log_alpha, nan=-1e4), max=0.0))
                    fac = torch.exp(0.05 * (p_acc - target_accept)).unsqueeze(1)
                    a = torch.where(live.unsqueeze(1), a * fac, a)
                    b = torch.sqrt(2 * a * t_langevin)
                elif steps > adapt_steps:
                    accepted += acc.float()
            else:
                acc = live
                accepted += acc.float()
            m = acc.unsqueeze(1)
            state = torch.where(m, prop, state)
            g = torch.where(m, g_p, g)
            E = torch.where(acc, E_p, E)
            x = torch.where(acc.reshape((B,) + (1,) * (x.dim() - 1)), x_p, x)
            if trace is not None:
                trace.append(E)
            runner.emit(i, state, E, acc)

    z_out = latent_from_u(state[:, :k], prior)
    info = dict(energy=E, langevin_temperature=t_langevin)
    if mala:
        n_counted = steps - adapt_steps
        info["accept_rate"] = accepted / max(n_counted, 1)
        info["step_size_final"] = (2 * a[:, 0])
    if output_noise > 0:
        info["output_noise_z"] = state[:, k:]
    if trace is not None:
        info["energy_trace"] = torch.stack(trace)
    return runner.finish(x, z_out, **info)
