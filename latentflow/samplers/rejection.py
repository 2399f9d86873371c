"""Samplers that accept or reject generator samples on the density ratio ``exp(d(x))``.

* ``drs`` — Discriminator Rejection Sampling (Azadi et al. 2019): accept ``x ~ p_g`` when
  ``u < sigmoid(F(x))``, ``F = L - log(1 - exp(L - ε)) - γ``, ``L = d(x) - d_M``; ``d_M`` is a running
  max of ``d`` (started by a pilot run), ``γ`` a percentile of ``F`` on that pilot run. With ``γ = 0``
  and small ε this is exact rejection sampling with acceptance ``exp(d - d_M)``.
* ``mh`` — MH-GAN (Turner et al. 2019): an independence Metropolis–Hastings chain per output over
  ``K`` proposals ``x' ~ p_g``, accepting with ``min(1, exp(d(x') - d(x)))`` (= ``(1/D(x)-1)/(1/D(x')-1)``).

With an exact density-ratio logit ``d = log p_data/p_g`` both return samples of ``p_data``.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor

from .. import rng
from ..energy import check_d_output, check_prior, to_logit
from ..errors import OptionError
from ..result import Result, Step
from . import register
from ._engine import Runner, check_state, frozen, probe


def _gx(runner: Runner, G, D, z: Tensor, d_output: str):
    """Chunked ``x = G(z)`` and ``d(x)`` without gradients."""
    x = runner.map(lambda t: runner.G(G, t), z)
    d = runner.map(lambda t: to_logit(runner.D(D, t), d_output), x)
    return x, d


@register("drs")
def drs(
    G: Callable[[Tensor], Tensor],
    D: Callable[[Tensor], Tensor],
    z: Tensor,
    *,
    d_output: Literal["logit", "prob", "critic"] = "logit",
    prior: Literal["normal", "uniform"] = "normal",
    gamma_percentile: float | None = 95.0,
    gamma: float = 0.0,
    epsilon: float = 1e-6,
    pilot: int = 10000,
    proposal_batch: int | None = None,
    max_proposals: int | None = None,
    batch_size: int | None = None,
    generator: torch.Generator | int | None = None,
    callback: Callable[[Step], None] | None = None,
    progress: bool = True,
) -> Result:
    """Discriminator rejection sampling: keep x ~ G with probability sigmoid(F(x)); returns exactly B samples.

    Args:
        G, D: generator and discriminator; ``z [B, k]`` gives the number of outputs B and the first
            proposals (later ones are drawn from ``prior``).
        d_output: what D returns (``"logit"``, ``"prob"``, ``"critic"``).
        prior: latent prior of the proposals.
        gamma_percentile: set γ to this percentile of F over the pilot run (DRS's recipe: 95);
            ``None`` uses ``gamma`` as given.
        gamma: γ when ``gamma_percentile`` is None (0 = exact rejection sampling).
        epsilon: ε in F, keeps the log finite at ``L = 0``.
        pilot: size of the pilot run that starts the running max d_M (and sets γ).
        proposal_batch: proposals drawn per round (default B).
        max_proposals: give up (``OptionError``) after this many proposals (default 1000·B).
    """
    options = dict(d_output=d_output, prior=prior, gamma_percentile=gamma_percentile, gamma=gamma,
                   epsilon=epsilon, pilot=pilot, proposal_batch=proposal_batch, max_proposals=max_proposals)
    check_state(z)
    check_d_output(d_output)
    check_prior(prior)
    if gamma_percentile is not None and not 0 <= gamma_percentile <= 100:
        raise OptionError(f"gamma_percentile must lie in [0, 100] or be None; got {gamma_percentile!r}")
    if not epsilon > 0:
        raise OptionError(f"epsilon must be > 0; got {epsilon!r}")
    if isinstance(pilot, bool) or not isinstance(pilot, int) or pilot < 1:
        raise OptionError(f"pilot must be an int >= 1; got {pilot!r}")
    B, k = z.shape
    device, dtype = z.device, z.dtype
    proposal_batch = B if proposal_batch is None else int(proposal_batch)
    if proposal_batch < 1:
        raise OptionError(f"proposal_batch must be >= 1; got {proposal_batch!r}")
    max_proposals = 1000 * B if max_proposals is None else int(max_proposals)
    gen = rng.resolve(generator, device)
    runner = Runner("drs", options, B, device, batch_size=batch_size, progress=progress,
                    callback=callback, hint="check that D returns finite values")

    def f_of(d, d_max):
        L = d - d_max
        return L - torch.log1p(-torch.exp(L - epsilon))

    with frozen(G, D):
        probe(runner, G, D, z)
        zp = rng.sample_latents(pilot, k, prior, generator=gen, device=device, dtype=dtype)
        _, dp = _gx(runner, G, D, zp, d_output)
        dp = dp[torch.isfinite(dp)]
        if dp.numel() == 0:
            raise OptionError("drs: D returned no finite value on the pilot run; check D and d_output")
        d_max = dp.max()
        g = (torch.quantile(f_of(dp, d_max).float(), gamma_percentile / 100.0).to(dtype)
             if gamma_percentile is not None else torch.tensor(float(gamma), device=device, dtype=dtype))

        out_x, out_z = [], []
        n_acc, n_prop, rounds = 0, 0, 0
        n_acc_all = torch.zeros((), device=device)
        zb = z
        from tqdm.auto import tqdm
        bar = tqdm(total=B, desc="drs", disable=None if progress else True, leave=False)
        while n_acc < B:
            if n_prop >= max_proposals:
                raise OptionError(
                    f"drs accepted {n_acc} of {B} samples after {n_prop} proposals (max_proposals); "
                    "lower gamma_percentile or raise max_proposals")
            x, d = _gx(runner, G, D, zb, d_output)
            d = torch.where(torch.isfinite(d), d, torch.full_like(d, -float("inf")))
            d_max = torch.maximum(d_max, d.max())
            F = f_of(d, d_max) - g
            u = rng.rand((zb.shape[0],), gen, device, dtype)
            acc = u < torch.sigmoid(F)
            n_acc_all = n_acc_all + acc.sum()
            idx = torch.nonzero(acc).flatten()
            take = idx[: B - n_acc]
            out_x.append(x[take])
            out_z.append(zb[take])
            n_acc += int(take.numel())
            n_prop += zb.shape[0]
            bar.update(int(take.numel()))
            runner.emit(rounds, zb, d, acc)
            rounds += 1
            zb = rng.sample_latents(proposal_batch, k, prior, generator=gen, device=device, dtype=dtype)
        bar.close()
    x = torch.cat(out_x)
    return runner.finish(x, torch.cat(out_z), accept_rate=float(n_acc_all) / n_prop,
                         n_proposals=n_prop, gamma=g, d_max=d_max)


@register("mh")
def mh(
    G: Callable[[Tensor], Tensor],
    D: Callable[[Tensor], Tensor],
    z: Tensor,
    *,
    k: int = 100,
    d_output: Literal["logit", "prob", "critic"] = "logit",
    prior: Literal["normal", "uniform"] = "normal",
    x_init: Tensor | None = None,
    batch_size: int | None = None,
    generator: torch.Generator | int | None = None,
    callback: Callable[[Step], None] | None = None,
    progress: bool = True,
) -> Result:
    """MH-GAN: independence Metropolis-Hastings over K generator proposals per chain.

    Args:
        z: ``[B, k]`` latents; chain b starts at ``G(z[b])`` (or at ``x_init[b]``).
        k: K, proposals per chain.
        d_output: what D returns; acceptance is ``min(1, exp(d(x') - d(x)))`` on the logit.
        prior: latent prior of the proposals.
        x_init: optional real samples ``[B, *X]`` to start the chains from (MH-GAN's recipe, which
            removes burn-in bias); a chain that never leaves its real start is run again from
            ``G(z[b])`` so that every output is a generated sample.
    """
    options = dict(k=k, d_output=d_output, prior=prior, x_init=None if x_init is None else "given")
    check_state(z)
    check_d_output(d_output)
    check_prior(prior)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise OptionError(f"k must be an int >= 1; got {k!r}")
    B, kd = z.shape
    device, dtype = z.device, z.dtype
    gen = rng.resolve(generator, device)
    runner = Runner("mh", options, B, device, batch_size=batch_size, progress=progress,
                    callback=callback, hint="check that D returns finite values")

    def run_chains(x, d, zc, n_steps, counts):
        n = zc.shape[0]
        moved = torch.zeros(n, dtype=torch.bool, device=device)
        for i in runner.steps(n_steps, "mh"):
            zp = rng.sample_latents(n, kd, prior, generator=gen, device=device, dtype=dtype)
            xp, dp = _gx(runner, G, D, zp, d_output)
            log_u = torch.log(rng.rand((n,), gen, device, dtype))
            ok = torch.isfinite(dp)
            acc = ok & ((log_u < dp - d) | ~torch.isfinite(d))
            x = torch.where(acc.reshape((n,) + (1,) * (x.dim() - 1)), xp, x)
            d = torch.where(acc, dp, d)
            zc = torch.where(acc.unsqueeze(1), zp, zc)
            moved |= acc
            counts += acc.float()
            runner.emit(i, zc, d, acc)
        return x, d, zc, moved

    with frozen(G, D):
        shape = probe(runner, G, D, z)
        counts = torch.zeros(B, device=device, dtype=torch.float32)
        if x_init is not None:
            check_state(x_init, "x_init", ndim=None)
            if tuple(x_init.shape) != (B,) + tuple(shape):
                raise OptionError(f"x_init must have shape {(B,) + tuple(shape)}; got {tuple(x_init.shape)}")
            x0 = x_init.to(device=device, dtype=dtype)
            d0 = runner.map(lambda t: to_logit(runner.D(D, t), d_output), x0)
        else:
            x0, d0 = _gx(runner, G, D, z, d_output)
        x, d, zc, moved = run_chains(x0, d0, z.clone(), k, counts)
        if x_init is not None and not bool(moved.all()):
            idx = torch.nonzero(~moved).flatten()
            xr, dr = _gx(runner, G, D, z[idx], d_output)
            c2 = torch.zeros(idx.numel(), device=device, dtype=torch.float32)
            xr, dr, zr, _ = run_chains(xr, dr, z[idx].clone(), k, c2)
            x[idx], d[idx], zc[idx] = xr, dr, zr
            counts[idx] = c2
        runner.check_finite(k, d)
    return runner.finish(x, zc, accept_rate=counts / k, d=d)
