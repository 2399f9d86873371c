"""Discriminator Flow (seed 000, §4.2 and Algorithm 3): a generator-free GAN sampled as a particle ODE.

``dx/dt = v(x, t) = -η ∇_x c(f(x, t))`` from ``x_0 ~ N(0, I)`` over ``t ∈ [0, 1]``, where ``f(x, t)`` is
a time-conditioned discriminator and ``c`` the generator loss of its GAN loss:

* ``"ns"`` (non-saturating): ``c(u) = softplus(-u)``, so ``v = η sigmoid(-f) ∇f``;
* ``"ipm"``: ``c(u) = u``, so ``v = -η ∇f`` (an IPM critic is high on *generated* data, spec §0.2);
* ``"hinge"``: ``c(u) = -u``, so ``v = η ∇f``.

Euler: ``x_{i+1} = x_i + h_i v(x_i, t_i)`` on the grid ``t_i = i / N`` (what seed 000 trains and
samples with). Heun: ``x̃ = x_i + h v(x_i, t_i)``, ``x_{i+1} = x_i + h/2 (v(x_i, t_i) + v(x̃, t_{i+1}))``,
with a plain Euler last step, since ``t = 1`` is never seen in training (EDM's habit as well).
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import rng
from ..errors import OptionError
from ..result import Result, Step
from . import register
from ._engine import Runner, check_state, frozen, probe

LOSSES = ("ns", "ipm", "hinge")


def time_grid(n: int, t_end: float = 1.0, *, device="cpu", dtype=torch.float32) -> Tensor:
    """The uniform grid ``t_i = i t_end / n``, ``i = 0..n`` (seed 000 §3.4), as an ``[n + 1]`` tensor."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OptionError(f"the time grid needs an int number of steps >= 1; got {n!r}")
    return torch.linspace(0.0, float(t_end), n + 1, device=device, dtype=dtype)


def generator_loss(f: Tensor, loss: str) -> Tensor:
    """``c(f)`` per sample for the GAN loss ``loss``; particles move down its gradient."""
    if loss == "ns":
        return F.softplus(-f)
    if loss == "ipm":
        return f
    if loss == "hinge":
        return -f
    raise OptionError(f'loss must be one of {", ".join(LOSSES)}; got {loss!r}')


def velocity(runner: Runner, D: Callable, x: Tensor, t: float, eta: float, loss: str, c_of=None):
    """``v(x, t) = -η ∇_x c(f(x, t))`` and ``f``; one forward and one backward of D per particle.

    ``c_of`` (from :func:`loss_of_d`) lets a loop pass the same function at every step, so that a
    compiled or graphed step is built once."""
    tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
    _, g, f = runner.value_and_grad(c_of or loss_of_d(runner, D, loss), x, tt, uses_G=False)
    return -eta * g, f


def loss_of_d(runner: Runner, D: Callable, loss: str):
    """``(x, t) -> (c(f(x, t)), f)`` for :meth:`Runner.value_and_grad`."""
    def c_of(xx, tr):
        f = runner.D(D, xx, tr)
        return generator_loss(f, loss), f
    return c_of


@register("dflow")
def dflow(
    G: Callable[[Tensor], Tensor] | None,
    D: Callable[[Tensor, Tensor], Tensor],
    z: Tensor,
    *,
    steps: int = 56,
    eta: float = 20.0,
    loss: Literal["ns", "ipm", "hinge"] = "ns",
    solver: Literal["euler", "heun"] = "euler",
    grid: Tensor | None = None,
    stop_step: int | None = None,
    entropy_reg: float = 0.0,
    batch_size: int | Literal["auto"] | None = None,
    compile: bool = False,
    cuda_graph: bool = False,
    autocast: Literal["bf16", "fp16"] | None = None,
    generator: torch.Generator | int | None = None,
    callback: Callable[[Step], None] | None = None,
    progress: bool = True,
) -> Result:
    """Discriminator Flow: integrate dx/dt = -η ∇c(f(x, t)) with Euler or Heun steps (seed 000).

    Args:
        G: ``None`` for the generator-free flow (then ``z`` holds ``x_0``, e.g. ``torch.randn``);
            with a generator the flow starts from ``G(z)``.
        D: time-conditioned discriminator ``f(x [B, *X], t [B]) -> [B]`` or ``[B, 1]``.
        z: ``x_0 [B, *X]`` (or latents when ``G`` is given).
        steps: N, the number of steps of the uniform grid ``t_i = i/N`` (ignored if ``grid`` is given).
        eta: η, the gradient strength (seed 000: 20 on 2-D Gaussians with N = 56, 2 on MNIST with N = 64).
        loss: the GAN loss D was trained with: ``"ns"``, ``"ipm"`` or ``"hinge"``.
        solver: ``"euler"`` (NFE = steps) or ``"heun"`` (NFE = 2 steps - 1).
        grid: increasing times ``[M + 1]`` to integrate over instead of the uniform grid.
        stop_step: stop after this many steps (seed 000's early stopping, output ``x_{M/N}``).
        entropy_reg: adds ``sqrt(entropy_reg · h) ξ`` noise after every step but the last (0 = ODE).
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
    options = dict(steps=steps, eta=eta, loss=loss, solver=solver, stop_step=stop_step,
                   entropy_reg=entropy_reg, grid=None if grid is None else "given", autocast=autocast)
    if solver not in ("euler", "heun"):
        raise OptionError(f'solver must be "euler" or "heun"; got {solver!r}')
    generator_loss(torch.zeros(1), loss)  # validates the name
    check_state(z, ndim=2 if G is not None else None)
    if entropy_reg < 0:
        raise OptionError(f"entropy_reg must be >= 0; got {entropy_reg!r}")
    device, dtype = z.device, z.dtype
    ts = time_grid(steps, device=device, dtype=dtype) if grid is None else torch.as_tensor(grid, dtype=dtype).to(device)
    if ts.dim() != 1 or ts.numel() < 2 or not bool((ts[1:] > ts[:-1]).all()):
        raise OptionError("grid must be a 1-D increasing tensor of at least two times")
    n = ts.numel() - 1
    if stop_step is not None:
        if not (isinstance(stop_step, int) and 1 <= stop_step <= n):
            raise OptionError(f"stop_step must be an int in [1, {n}]; got {stop_step!r}")
        n = stop_step
    t_list = ts.tolist()
    B = z.shape[0]
    gen = rng.resolve(generator, device) if entropy_reg > 0 else None  # an ODE draws nothing
    runner = Runner("dflow", options, B, device, batch_size=batch_size, progress=progress,
                    callback=callback, hint="reduce eta or use more steps",
                    compile=compile, cuda_graph=cuda_graph, autocast=autocast)
    with frozen(G, D):
        probe(runner, G, None, z)
        x = (runner.map(lambda t: runner.G(G, t), z) if G is not None else z).detach()
        rowshape = (B,) + (1,) * (x.dim() - 1)
        probe(runner, None, D, x, cond=(torch.zeros(B, device=device, dtype=dtype),))
        f = None
        c_of = loss_of_d(runner, D, loss)
        for i in runner.steps(n, f"dflow-{solver}"):
            h = t_list[i + 1] - t_list[i]
            k1, f = velocity(runner, D, x, t_list[i], eta, loss, c_of)
            x_new = x + h * k1
            if solver == "heun" and i < len(t_list) - 2:
                k2, _ = velocity(runner, D, x_new, t_list[i + 1], eta, loss, c_of)
                x_new = x + 0.5 * h * (k1 + k2)
            if entropy_reg > 0 and i < n - 1:
                x_new = x_new + (entropy_reg * h) ** 0.5 * runner.randn(x.shape, gen, dtype)
            live = runner.check_finite(i + 1, x_new, f)
            x = torch.where(live.reshape(rowshape), x_new, x)
            runner.emit(i, x, f, None)
    nfe = runner.count.n_D_backward / B
    return runner.finish(x, None, nfe=nfe, t_end=t_list[n],
                         f=f if f is not None else torch.zeros(B, device=device))
