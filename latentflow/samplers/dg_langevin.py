"""Discriminator-guided (annealed) Langevin in data space (seed 002; spec §6.4).

For noise levels ``σ_1 > ... > σ_L`` and ``steps`` iterations per level, with ``α_i = ε σ_i² / σ_L²``:
``x <- x + (α_i / 2) · s · ∇_x d(x, σ_i) + sqrt(α_i) ξ``.
The discriminator's logit gradient stands in for the score of a score network. If the discriminator
tracks the current particles (a score *difference*), turn the noise off (``noise=False``): the noisy
update would then double-count diffusion (spec §6.4).
"""
from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from .. import rng
from ..energy import check_d_output, to_logit
from ..errors import OptionError
from ..result import Result, Step
from . import register
from ._engine import Runner, check_state, frozen, probe


@register("dg_langevin")
def dg_langevin(
    G: Callable[[Tensor], Tensor] | None,
    D: Callable[..., Tensor],
    z: Tensor,
    *,
    steps: int = 100,
    step_size: float = 1e-3,
    sigmas: Sequence[float] | Tensor | None = None,
    d_output: Literal["logit", "prob", "critic"] = "logit",
    guidance: float = 1.0,
    noise: bool = True,
    clip: float | None = None,
    batch_size: int | Literal["auto"] | None = None,
    compile: bool = False,
    cuda_graph: bool = False,
    autocast: Literal["bf16", "fp16"] | None = None,
    generator: torch.Generator | int | None = None,
    callback: Callable[[Step], None] | None = None,
    progress: bool = True,
) -> Result:
    """Langevin in data space driven by the discriminator's gradient, optionally annealed over σ.

    Args:
        G: generator whose samples ``G(z)`` start the chains, or ``None`` (then ``z`` holds ``x0``).
        D: ``D(x) -> [B]`` or, when ``sigmas`` is given, the noise-conditioned ``D(x, σ [B]) -> [B]``.
        z: latents ``[B, k]`` or, with ``G=None``, initial particles ``[B, *X]``.
        steps: T, Langevin iterations per noise level.
        step_size: ε; the step at level i is ``α_i = ε σ_i² / σ_L²`` (ε itself without ``sigmas``).
        sigmas: decreasing noise levels σ_1 > ... > σ_L, or ``None`` for a single, unconditioned level.
        d_output: what D returns (``"logit"``, ``"prob"``, ``"critic"``).
        guidance: s, multiplier of the discriminator gradient.
        noise: add the ``sqrt(α_i) ξ`` term (turn off for a deterministic discriminator flow).
        clip: clip particles to [-clip, clip] after each step (e.g. 1 for images in [-1, 1]).
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
    options = dict(steps=steps, step_size=step_size, d_output=d_output, guidance=guidance, noise=noise,
                   clip=clip, autocast=autocast, sigmas=None if sigmas is None else [float(s) for s in torch.as_tensor(sigmas).flatten()])
    check_state(z, ndim=2 if G is not None else None)
    check_d_output(d_output)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise OptionError(f"steps must be an int >= 0; got {steps!r}")
    if not step_size > 0:
        raise OptionError(f"step_size must be > 0; got {step_size!r}")
    device, dtype = z.device, z.dtype
    if sigmas is not None:
        sig = torch.as_tensor(sigmas, dtype=dtype).flatten().to(device)
        if sig.numel() < 1 or not bool((sig > 0).all()):
            raise OptionError("sigmas must be a non-empty sequence of positive noise levels")
        if sig.numel() > 1 and not bool((sig[1:] <= sig[:-1]).all()):
            raise OptionError("sigmas must be non-increasing (σ_1 > ... > σ_L)")
        alphas = step_size * sig.pow(2) / sig[-1].pow(2)
        levels = sig.tolist()
        alpha_list = alphas.tolist()
    else:
        levels, alpha_list = [None], [float(step_size)]
    B = z.shape[0]
    gen = rng.resolve(generator, device) if noise else None  # never draw noise that is not used
    runner = Runner("dg_langevin", options, B, device, batch_size=batch_size, progress=progress,
                    callback=callback, hint="reduce step_size",
                    compile=compile, cuda_graph=cuda_graph, autocast=autocast)

    with frozen(G, D):
        cond0 = () if sigmas is None else (torch.full((B,), levels[0], device=device, dtype=dtype),)
        probe(runner, G, D, z, cond=cond0)
        x = (runner.map(lambda t: runner.G(G, t), z) if G is not None else z).detach()
        rowshape = (B,) + (1,) * (x.dim() - 1)

        def logit(xx, sig_rows=None):
            out = runner.D(D, xx) if sig_rows is None else runner.D(D, xx, sig_rows)
            return to_logit(out, d_output), None

        it = 0
        d_val = None
        bar = runner.steps(steps * len(levels), "dg-langevin")
        for level, alpha in zip(levels, alpha_list):
            sig_rows = None if level is None else torch.full((B,), level, device=device, dtype=dtype)
            for _ in range(steps):
                next(bar)
                if sig_rows is None:
                    d_val, g, _ = runner.value_and_grad(logit, x, uses_G=False)
                else:
                    d_val, g, _ = runner.value_and_grad(logit, x, sig_rows, uses_G=False)
                x_new = x + (0.5 * alpha * guidance) * g
                if noise:
                    x_new = x_new + alpha ** 0.5 * runner.randn(x.shape, gen, dtype)
                if clip is not None:
                    x_new = x_new.clamp(-clip, clip)
                live = runner.check_finite(it + 1, d_val, x_new)
                x = torch.where(live.reshape(rowshape), x_new, x)
                runner.emit(it, x, d_val, None)
                it += 1
        for _ in bar:
            pass
    return runner.finish(x, None, d=d_val if d_val is not None else torch.zeros(B, device=device))
