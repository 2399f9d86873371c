"""Discriminator Flow (Franceschi et al. 2023, §4.2 and Algorithm 3): a generator-free GAN sampled as a
particle ODE.

``dx/dt = v(x, t) = -η ∇_x c(f(x, t))`` from ``x_0`` (``N(0, I)`` in the paper; a trained model's own
starting distribution is ``pair.initial_state(n)``) over ``t ∈ [0, 1]``, where ``f(x, t)`` is a
time-conditioned discriminator and ``c`` the generator loss of its GAN loss:

* ``"ns"`` (non-saturating): ``c(u) = softplus(-u)``, so ``v = η sigmoid(-f) ∇f``;
* ``"ipm"``: ``c(u) = u``, so ``v = -η ∇f`` (an IPM critic is high on *generated* data);
* ``"hinge"``: ``c(u) = -u``, so ``v = η ∇f``.

Euler: ``x_{i+1} = x_i + h_i v(x_i, t_i)`` on the grid ``t_i = i / N`` (what the paper trains and
samples with). Heun: ``x̃ = x_i + h v(x_i, t_i)``, ``x_{i+1} = x_i + h/2 (v(x_i, t_i) + v(x̃, t_{i+1}))``,
with a plain Euler last step, since ``t = 1`` is never seen in training (EDM's habit as well). The
entropy noise of step i is slot 0 of the chain's stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import OptionError
from ..options import Options, field
from ..result import Evals
from ._checks import check_state, probe
from ._declare import Needs
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register

LOSSES = ("ns", "ipm", "hinge")


def time_grid(n: int, t_end: float = 1.0, *, device="cpu", dtype=torch.float32) -> Tensor:
    """The uniform grid ``t_i = i t_end / n``, ``i = 0..n``, as an ``[n + 1]`` tensor."""
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
    raise OptionError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")


def loss_of_d(engine, D: Callable, loss: str):
    """``(x, t) -> (c(f(x, t)), f)`` for ``Engine.value_and_grad`` (one function per run, so that a
    compiled or graphed step is built once)."""

    def c_of(xx, tr, *ys):  # ys: (y,) for a class-conditional D(x, t, y)
        f = engine.D(D, xx, tr, *ys)
        return generator_loss(f, loss), f

    return c_of


@dataclass(frozen=True)
class DFlowOptions(Options):
    steps: int = field(56, "N, steps of the uniform grid t_i = i/N (ignored if grid is given)", ge=1)
    eta: float = field(20.0, "η, the gradient strength (20 on 2-D Gaussians with N = 56, 2 on MNIST with N = 64)")
    loss: Literal["ns", "ipm", "hinge"] = field("ns", "the GAN loss D was trained with")
    solver: Literal["euler", "heun"] = field("euler", "Euler (NFE = steps) or Heun (NFE = 2 steps - 1)")
    grid: Sequence[float] | Tensor | None = field(
        None, "increasing times [M + 1] to integrate over instead of the uniform grid"
    )
    stop_step: int | None = field(None, "stop after this many steps (early stopping, output x_{M/N})", ge=1)
    entropy_reg: float = field(0.0, "adds sqrt(entropy_reg · h) ξ noise after every step but the last (0 = ODE)", ge=0)


class DFlow(Kernel):
    """Discriminator Flow: integrate dx/dt = -η ∇c(f(x, t)) with Euler or Heun steps (Franceschi et al. 2023)."""

    Options = DFlowOptions
    needs = Needs(generator="optional", discriminator=("D(x, t)",), note="G=None: z holds x_0")
    hint = "reduce eta or use more steps"
    about = "Discriminator Flow particle ODE `dx/dt = -η ∇c(f(x, t))` with Euler or Heun steps"
    paper = "seed 000 §4.2"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """A value-and-gradient of D per Euler step, two per Heun step but the last (the NFE); G once at the
        start when given."""
        o = cls.options_of(options)
        grid_steps = o["steps"] if o["grid"] is None else len(o["grid"]) - 1
        run = grid_steps if o["stop_step"] is None else min(o["stop_step"], grid_steps)
        nfe = run + (min(run, grid_steps - 1) if o["solver"] == "heun" else 0)
        return Evals((1 + probe_cost(n)) * generator, 0, nfe + probe_cost(n), nfe)

    def draws(self):
        return self.o.entropy_reg > 0

    def validate(self, z):
        check_state(z, ndim=2 if self.G is not None else None)
        o = self.o
        ts = time_grid(o.steps, dtype=z.dtype) if o.grid is None else torch.as_tensor(o.grid, dtype=z.dtype).cpu()
        if ts.dim() != 1 or ts.numel() < 2 or not bool((ts[1:] > ts[:-1]).all()):
            raise OptionError("grid must be a 1-D increasing tensor of at least two times")
        self.n = ts.numel() - 1
        if o.stop_step is not None:
            if o.stop_step > self.n:
                raise OptionError(f"stop_step must be an int in [1, {self.n}]; got {o.stop_step!r}")
            self.n = o.stop_step
        self.t = ts.tolist()

    def n_steps(self):
        return self.n

    def init(self, e, z):
        probe(e, self.G, None, z, ys=e.ys)
        x = (e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *e.ys) if self.G is not None else z).detach()
        B = x.shape[0]
        probe(e, None, self.D, x, cond=(torch.zeros(B, device=x.device, dtype=x.dtype),), ys=e.ys)
        self.c_of = loss_of_d(e, self.D, self.o.loss)
        self.f = None
        return x

    def velocity(self, e, x, t):
        """``v(x, t) = -η ∇_x c(f(x, t))`` and ``f``; one forward and one backward of D per particle."""
        tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
        _, g, f = e.value_and_grad(self.c_of, x, tt, *e.ys, uses_G=False)
        return -self.o.eta * g, f

    def step(self, e, i, x):
        o, t = self.o, self.t
        h = t[i + 1] - t[i]
        k1, f = self.velocity(e, x, t[i])
        if i == 0:  # f at the initial state: a non-finite value there is the model's
            e.check_finite(0, f)
        x_new = x + h * k1
        if o.solver == "heun" and i < len(t) - 2:
            k2, _ = self.velocity(e, x_new, t[i + 1])
            x_new = x + 0.5 * h * (k1 + k2)
        if o.entropy_reg > 0 and i < self.n - 1:
            x_new = x_new + (o.entropy_reg * h) ** 0.5 * e.rng.normal(i, 0, x.shape[1:], x.dtype)
        self.f = f
        x = e.advance(i + 1, x_new, x, f)
        return x, loop_step(i, x, f, None)

    def finish(self, e, x):
        f = self.f if self.f is not None else torch.zeros(x.shape[0], device=x.device)
        return x, None, dict(nfe=e.count.n_D_backward / x.shape[0], t_end=self.t[self.n], f=f)


dflow = register("dflow", DFlow)
