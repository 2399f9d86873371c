"""DOT: Discriminator Optimal Transport (Tanaka 2019), in latent or target (data) space.

Each sample moves by gradient descent on ``H(y) = ||y - y0 + δ||₂ - d(y) / K_eff`` started at
``y = y0`` (``y`` is ``z`` in latent space with ``d(G(z))``, or ``x`` in target space with ``d(x)``);
``K_eff = max |d(a) - d(b)| / ||a - b||`` over random pairs estimates D's Lipschitz constant.
Normal prior: the radial part of the latent gradient is removed (keeps ``||z||`` on its shell);
uniform prior: ``z`` is clipped to [-1, 1]. Deterministic given ``K_eff``.
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


def estimate_k_eff(pairs_a: Tensor, pairs_b: Tensor, d_a: Tensor, d_b: Tensor) -> Tensor:
    """``max |d(a) - d(b)| / ||a - b||`` over the given pairs (rows)."""
    dist = (pairs_a - pairs_b).flatten(1).norm(dim=1).clamp_min(1e-12)
    return ((d_a - d_b).abs() / dist).max()


@register("dot")
def dot(
    G: Callable[[Tensor], Tensor] | None,
    D: Callable[[Tensor], Tensor],
    z: Tensor,
    *,
    steps: int = 100,
    lr: float = 0.01,
    space: Literal["latent", "target"] = "latent",
    d_output: Literal["logit", "prob", "critic"] = "critic",
    prior: Literal["normal", "uniform"] = "normal",
    k_eff: float | None = None,
    k_eff_pairs: int = 100,
    delta: float = 0.001,
    optimizer: Literal["sgd", "adam"] = "sgd",
    clip: float | None = None,
    batch_size: int | Literal["auto"] | None = None,
    compile: bool = False,
    cuda_graph: bool = False,
    autocast: Literal["bf16", "fp16"] | None = None,
    generator: torch.Generator | int | None = None,
    callback: Callable[[Step], None] | None = None,
    progress: bool = True,
) -> Result:
    """Discriminator optimal transport: descend H(y) = ||y - y0 + δ|| - d(y)/K_eff from each y0.

    Args:
        G: generator (may be ``None`` with ``space="target"``: then ``z`` holds the samples ``x``).
        D: discriminator ``x -> [B]`` or ``[B, 1]`` (WGAN critic by default, as in DOT).
        z: latents ``[B, k]`` (or samples ``[B, *X]`` when ``G`` is None in target space).
        steps: N_update, gradient steps per sample.
        lr: step size of SGD (or Adam).
        space: ``"latent"`` (move z) or ``"target"`` (move x = G(z)).
        d_output: what D returns: ``"critic"``, ``"logit"`` or ``"prob"``.
        prior: latent prior; ``"normal"`` projects out the radial gradient, ``"uniform"`` clips to [-1, 1].
        k_eff: K_eff; ``None`` estimates it on ``k_eff_pairs`` random pairs drawn from the prior.
        k_eff_pairs: number of pairs for the K_eff estimate.
        delta: δ, keeps the norm differentiable at the start point.
        optimizer: ``"sgd"`` or ``"adam"`` (β1 = 0, β2 = 0.9, as DOT's code).
        clip: target space only: clip x to [-clip, clip] after each step (DOT uses 2 on 2-D data).
        batch_size: evaluate G and D in chunks of this many chains, or ``"auto"``: the largest chunk
            that fits in free memory, from a probe on a few rows (results do not depend on it).
        compile: evaluate the energy through ``torch.compile`` (its backward is compiled with it); the
            first call compiles (seconds to a minute); falls back to eager with a logged warning.
        cuda_graph: capture each chunk's energy-and-gradient step as a CUDA graph and replay it
            (CUDA tensors only; one capture per chunk shape).
        autocast: ``"bf16"`` or ``"fp16"``: evaluate G and D under ``torch.autocast``; the chain state,
            energies, gradients and accept tests stay in ``z``'s dtype. fp16 has no gradient scaling
            (small gradients can underflow): prefer bf16.
    """
    options = dict(steps=steps, lr=lr, space=space, d_output=d_output, prior=prior, k_eff=k_eff,
                   k_eff_pairs=k_eff_pairs, delta=delta, optimizer=optimizer, clip=clip, autocast=autocast)
    if space not in ("latent", "target"):
        raise OptionError(f'space must be "latent" or "target"; got {space!r}')
    if optimizer not in ("sgd", "adam"):
        raise OptionError(f'optimizer must be "sgd" or "adam"; got {optimizer!r}')
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise OptionError(f"steps must be an int >= 0; got {steps!r}")
    if not lr > 0:
        raise OptionError(f"lr must be > 0; got {lr!r}")
    if k_eff is not None and not k_eff > 0:
        raise OptionError(f"k_eff must be > 0 or None; got {k_eff!r}")
    if G is None and space == "latent":
        raise OptionError('space="latent" needs a generator G; pass G or use space="target"')
    check_d_output(d_output)
    check_prior(prior)
    check_state(z, ndim=2 if G is not None else None)
    B = z.shape[0]
    device, dtype = z.device, z.dtype
    gen = rng.resolve(generator, device) if k_eff is None else None  # DOT is deterministic given K_eff
    runner = Runner("dot", options, B, device, batch_size=batch_size, progress=progress,
                    callback=callback, hint="reduce lr",
                    compile=compile, cuda_graph=cuda_graph, autocast=autocast)

    with frozen(G, D):
        probe(runner, G, D, z)

        def dval(x):
            return to_logit(runner.D(D, x), d_output)

        # K_eff from random pairs drawn from the prior (latent) or their images (target)
        if k_eff is None:
            if G is not None:
                za = rng.sample_latents(k_eff_pairs, z.shape[1], prior, generator=gen, device=device, dtype=dtype)
                zb = rng.sample_latents(k_eff_pairs, z.shape[1], prior, generator=gen, device=device, dtype=dtype)
                xa = runner.map(lambda t: runner.G(G, t), za)
                xb = runner.map(lambda t: runner.G(G, t), zb)
                da, db = runner.map(dval, xa), runner.map(dval, xb)
                ka, kb = (za, zb) if space == "latent" else (xa, xb)
            else:
                ia = rng.randint(B, (k_eff_pairs,), gen, device)
                ib = rng.randint(B, (k_eff_pairs,), gen, device)
                ka, kb = z[ia], z[ib]
                keep = (ka - kb).flatten(1).norm(dim=1) > 0
                ka, kb = ka[keep], kb[keep]
                da, db = runner.map(dval, ka), runner.map(dval, kb)
            k_est = estimate_k_eff(ka, kb, da, db)
        else:
            k_est = torch.tensor(float(k_eff), device=device, dtype=dtype)
        inv_k = 1.0 / k_est.clamp_min(1e-12)

        if space == "latent":
            y0 = z.detach()

            def objective(y, y0_rows):
                dist = (y - y0_rows + delta).flatten(1).norm(dim=1)
                return dist - dval(runner.G(G, y)) * inv_k, None
        else:
            y0 = (runner.map(lambda t: runner.G(G, t), z) if G is not None else z).detach()

            def objective(y, y0_rows):
                dist = (y - y0_rows + delta).flatten(1).norm(dim=1)
                return dist - dval(y) * inv_k, None

        def grad_H(y):
            H, g, _ = runner.value_and_grad(objective, y, y0, uses_G=space == "latent")
            return H, g

        y = y0.clone()
        v_adam = torch.zeros_like(y) if optimizer == "adam" else None
        H = None
        for i in runner.steps(steps, "dot"):
            H, g = grad_H(y)
            if space == "latent" and prior == "normal":
                g = g - y * (g * y).sum(1, keepdim=True) / (y * y).sum(1, keepdim=True).clamp_min(1e-12)
            if optimizer == "adam":
                v_adam = 0.9 * v_adam + 0.1 * g * g
                upd = g / (torch.sqrt(v_adam / (1 - 0.9 ** (i + 1))) + 1e-8)
            else:
                upd = g
            y_new = y - lr * upd
            if space == "latent" and prior == "uniform":
                y_new = y_new.clamp(-1, 1)
            if space == "target" and clip is not None:
                y_new = y_new.clamp(-clip, clip)
            live = runner.check_finite(i + 1, H, y_new)
            y = torch.where(live.reshape((B,) + (1,) * (y.dim() - 1)), y_new, y)
            runner.emit(i, y, H, None)

        if space == "latent":
            x = runner.map(lambda t: runner.G(G, t), y)
            z_out = y
        else:
            x, z_out = y, (z if G is not None else None)
    return runner.finish(x, z_out, k_eff=k_est, objective=H if H is not None else torch.zeros(B))
