"""Discriminator Flow trainer: Franceschi et al. 2023, Algorithm 3 (discretised, batched).

Each iteration draws ``x_0`` from the prior (``N(0, I)`` by default), simulates the current flow with Euler
on the grid ``t_i = i/N`` (``x_{i+1} = x_i - (η/N) ∇_x c(f(x_i, t_i))``, no gradient through the
simulation), picks one step ``i_b ~ U{0..N-1}`` per sample and takes one optimiser step on the
discriminator loss at ``t_b = i_b/N`` for the fake ``x_{i_b}`` against a real sample evaluated at the same
``t_b``:

* ``ns``: ``softplus(f(fake)) + softplus(-f(real))`` (f high on real data);
* ``ipm``: ``E f(real) - E f(fake) + λ E ||∇_x f(x̂, t)||²`` on interpolates ``x̂`` (zero-centred GP;
  f high on *generated* data, the paper's sign convention);
* ``hinge``: ``relu(1 - f(real)) + relu(1 + f(fake))``.

Options beyond Algorithm 3: ``prior="gaussian"`` (``x_0 ~ N(mean, cov)`` of the training data instead of
``N(0, I)``: a ``gaussian_prior`` net fitted once, written as ``P.safetensors``; loaded models draw ``x_0``
from it, see ``ModelPair.initial_state``), ``time_sampling="uniform"`` (Algorithm 2: ``t_b ~ U[0, 1)``, the
particle carried part of an Euler step past its grid time, so that a critic with a smooth time embedding is
trained between grid times and Euler or Heun can sample on any grid), ``reuse`` (one simulated batch of
trajectories serves several D updates), ``time_weight="balanced"`` (each time bin's IPM + GP objective divided
by its running RMS ``‖∇f‖``), ``lr_schedule`` (constant, linear or cosine decay of Adam's rate) and an EMA of
D's weights. ``PRESETS`` holds named recipes (Fashion-MNIST on a CPU core; Franceschi et al. 2023's MNIST
32x32 configuration for a GPU).

A sample only needs the trajectory up to its own ``i_b``, so particles leave the simulation once their
step is reached: the same result as simulating all ``N - 1`` steps for every particle, at about half the
cost. The output folder gets ``D.safetensors`` and ``latentflow.json`` whose ``sampling.dflow`` entry
holds ``eta``, ``steps`` and ``loss`` for ``latentflow.refine(None, D, x0, method="dflow", ...)``, and
``x0`` says where the particles start (``{prior: normal}`` or ``{prior: gaussian}`` with ``P``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .. import rng
from ..errors import OptionError
from ..nets import build
from ..nets.priors import GaussianPrior
from ..samplers.dflow import LOSSES, DFlow
from ._loop import LoopOptions, Run, check_ema, config_dict, ema_update, make_ema
from ._setup import start
from ._trained import write_trained
from .config import TrainConfig, check_betas, check_choice, check_positive_float, check_positive_int
from .data_source import DataSource
from .dflow_sim import _TrajectoryCache, flow_velocity, simulate_all, simulate_at

LR_SCHEDULES = ("constant", "linear", "cosine")
PRIORS = ("normal", "gaussian")
PRIOR_FIT_N = 60_000  # "gaussian" prior: fitted to at most this many training samples (toy sets: drawn)


def lr_at(cfg, k: int) -> float:
    """The learning rate of D update ``k`` (0-based) of ``cfg.steps``: ``lr``, ``lr (1 - k/steps)`` or
    ``lr (1 + cos(π k/steps))/2``; a function of ``k`` only, so a resumed run gets the same rates."""
    u = min(max(k / cfg.steps, 0.0), 1.0)
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1.0 - u)
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * u))
    return cfg.lr


@dataclass
class DFlowConfig(TrainConfig):
    # the fields every trainer has (TrainConfig), at this trainer's defaults
    batch_size: int = 128

    data: str = "grid25"
    data_root: str | None = None
    arch: str = "tmlp_d"
    arch_kwargs: dict = field(default_factory=lambda: {"in_dim": 2, "width": 512, "depth": 4})
    loss: str = "ns"
    prior: str = "normal"  # x_0: "normal" N(0, I) (the paper) or "gaussian" N(mean, cov) of the data
    prior_eps: float = 1e-3  # "gaussian": cov + prior_eps I
    eta: float = 20.0
    flow_steps: int = 56  # N, the training grid (sampling uses the same)
    gp_weight: float | None = None  # zero-centred GP strength; None: 0.04 for ipm, 0 otherwise
    ema: float = 0.0  # decay of an EMA of D's weights, written as the output D (0 = off)
    simulate_with: str = "live"  # "ema": trajectories by the EMA of D (needs ema > 0), the live D trains on them
    reuse: int = 1  # D updates per simulated batch of trajectories (1 = Algorithm 3)
    time_sampling: str = "grid"  # "grid": t_b = i/N (Algorithm 3); "uniform": t_b ~ U[0, 1) (Algorithm 2)
    time_weight: str = "none"  # "balanced": each time bin's loss divided by its running RMS ‖∇f‖ (ipm + GP)
    lr: float = 2e-4
    lr_schedule: str = "constant"  # "constant", "linear" (lr (1 - k/steps)) or "cosine" (lr (1 + cos πk/steps)/2)

    def check(self) -> None:
        check_choice(self, "loss", LOSSES)
        check_positive_int(self, "flow_steps", "reuse")
        check_choice(self, "prior", PRIORS)
        check_positive_float(self, "prior_eps")
        check_choice(self, "time_sampling", ("grid", "uniform"), quoted=True)
        check_positive_float(self, "eta", "lr")
        if self.simulate_with not in ("live", "ema") or (self.simulate_with == "ema" and not self.ema > 0):
            raise OptionError(
                f'simulate_with must be "live" or "ema" (with ema > 0); got {self.simulate_with!r} '
                f"with ema={self.ema!r}"
            )
        check_choice(self, "time_weight", ("none", "balanced"), quoted=True)
        if self.time_weight == "balanced" and (self.loss != "ipm" or self.gp <= 0):
            raise OptionError(
                f'time_weight="balanced" needs loss="ipm" with gp_weight > 0; got loss={self.loss!r}, '
                f"gp_weight={self.gp_weight!r}"
            )
        check_choice(self, "lr_schedule", LR_SCHEDULES)
        check_betas(self)
        check_ema(self)
        if self.gp_weight is not None and (not isinstance(self.gp_weight, (int, float)) or self.gp_weight < 0):
            raise OptionError(f"gp_weight must be >= 0 or None; got {self.gp_weight!r}")
        if not isinstance(self.arch_kwargs, dict):
            raise OptionError(f"arch_kwargs must be a dict; got {type(self.arch_kwargs).__name__}")

    @property
    def gp(self) -> float:
        return (0.04 if self.loss == "ipm" else 0.0) if self.gp_weight is None else float(self.gp_weight)


from .dflow_presets import PRESETS  # noqa: E402  (named recipes; data only)

if TYPE_CHECKING:
    from typing_extensions import Unpack


def preset(name: str, **overrides) -> DFlowConfig:
    """``DFlowConfig`` of the named recipe in :data:`PRESETS` with ``overrides`` applied (not validated:
    ``train_dflow`` validates)."""
    if name not in PRESETS:
        raise OptionError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
    kw = {**PRESETS[name], **overrides}
    if "arch_kwargs" in overrides and isinstance(overrides["arch_kwargs"], dict):
        kw["arch_kwargs"] = {**PRESETS[name]["arch_kwargs"], **overrides["arch_kwargs"]}
    return DFlowConfig(**kw)


def d_loss(loss: str, f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator loss to *minimise* (``-L_d``, without the regulariser)."""
    if loss == "ns":
        return F.softplus(-f_real).mean() + F.softplus(f_fake).mean()
    if loss == "ipm":
        return f_real.mean() - f_fake.mean()
    if loss == "hinge":
        return F.relu(1 - f_real).mean() + F.relu(1 + f_fake).mean()
    raise OptionError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")


def zero_gp(D, real, fake, t, gen: torch.Generator, per_sample: bool = False) -> torch.Tensor:
    """``E ||∇_x f(x̂, t)||²`` on ``x̂ = α real + (1 - α) fake``, ``α ~ U(0, 1)`` per sample (``per_sample``:
    the ``[B]`` values instead of their mean)."""
    a = rng.rand((real.shape[0],) + (1,) * (real.dim() - 1), gen, real.device, real.dtype)
    xh = (a * real + (1 - a) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(D(xh, t).sum(), xh, create_graph=True)
    sq = g.flatten(1).pow(2).sum(1)
    return sq if per_sample else sq.mean()


class _TimeBalance(torch.nn.Module):
    """``time_weight="balanced"``: per time bin ``k = ⌊N t⌋`` a running mean ``s_k`` (decay ``0.99``) of
    ``‖∇_x f(x̂, t)‖²``; sample ``b`` of the IPM + GP loss gets the weight ``w_b ∝ s_{k_b}^{-1/2}`` (normalised
    to mean 1 over the bins). Every term of the per-time objective scales with the critic's scale at that
    time, so without it the early times, where noise is far from the data and ``‖∇f‖`` is large, take most
    of the update (measured: ``‖∇f‖`` 150 at t = 0 against 3 at t ≈ 1, where the critic no longer tells
    fakes from data). Rescaling each time's objective does not change its optimum, only how the updates
    are shared between times. A buffer, so checkpoints carry it."""

    s: torch.Tensor  # the buffer (registered in __init__)

    def __init__(self, N: int, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("s", torch.zeros(N))

    def weights(self, k: torch.Tensor) -> torch.Tensor:
        s = self.s.clamp_min(1e-12)
        seen = self.s > 0
        if not bool(seen.any()):
            return torch.ones(k.shape[0], device=k.device)
        inv = torch.where(seen, s.rsqrt(), torch.zeros_like(s))
        inv = torch.where(seen, inv, inv[seen].mean())
        return inv[k] / inv.mean()

    @torch.no_grad()
    def update(self, k: torch.Tensor, sq: torch.Tensor) -> None:
        N = self.s.shape[0]
        tot = torch.zeros(N, device=sq.device, dtype=sq.dtype).index_add_(0, k, sq)
        cnt = torch.zeros(N, device=sq.device, dtype=sq.dtype).index_add_(0, k, torch.ones_like(sq))
        m = cnt > 0
        mean = tot[m] / cnt[m]
        cur = self.s[m]
        self.s[m] = torch.where(cur > 0, self.decay * cur + (1 - self.decay) * mean, mean)


def train_dflow(cfg: DFlowConfig, out: str, **loop: Unpack[LoopOptions]):
    """Train a time-conditioned discriminator ``f(x, t)`` per ``cfg`` (Franceschi et al. 2023, Alg. 3); writes
    ``D.safetensors``, ``latentflow.json``, checkpoints and ``metrics.jsonl`` to ``out``. Returns D (eval;
    with ``cfg.ema > 0`` the EMA of D's weights, which is also what ``D.safetensors`` holds; the training
    simulation always uses the live D).
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    device = start(cfg, out)
    D = build(cfg.arch, **cfg.arch_kwargs).to(device)
    data = DataSource(cfg.data, cfg.data_root, device)
    gen = torch.Generator("cpu").manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    modules = {"D": D}
    B, N, shape = cfg.batch_size, cfg.flow_steps, data.shape
    P = fit_prior(cfg, data) if cfg.prior == "gaussian" else None
    if P is not None:
        modules["P"] = P = P.to(device)

    def draw_x0():
        z = rng.randn((B,) + tuple(shape), gen, device)
        if P is None:
            return z
        with torch.no_grad():
            return P(z.reshape(B, -1))

    if cfg.reuse > 1:
        modules["trajectories"] = cache = _TrajectoryCache(N, B, shape).to(device)
    if cfg.ema > 0:
        modules["D_ema"] = D_ema = make_ema(D)
    if cfg.time_weight == "balanced":
        modules["time_balance"] = balance = _TimeBalance(N).to(device)
    run = Run(out, cfg, modules, {"D": opt}, gen, **loop)
    gp_w = cfg.gp

    def simulate(fn, *args):
        """``fn(D, *args)`` with D in eval mode and its parameters out of autograd (a simulation); with
        ``simulate_with="ema"`` the EMA critic (always frozen) moves the particles."""
        if cfg.simulate_with == "ema":
            return fn(D_ema, *args)
        D.eval()
        for p in D.parameters():
            p.requires_grad_(False)
        try:
            return fn(D, *args)
        finally:
            for p in D.parameters():
                p.requires_grad_(True)
            D.train()

    def step(i):
        real = data.sample(B, gen)
        if cfg.reuse == 1:  # Algorithm 3: fresh particles, each simulated only up to its own step
            x0 = draw_x0()
            i_b = rng.randint(N, (B,), gen, device)
            fake = simulate(simulate_at, x0, i_b, cfg.eta, cfg.loss, N)
        else:  # one simulated batch of trajectories serves `reuse` updates
            if i % cfg.reuse == 0:
                x0 = draw_x0()
                cache.traj.copy_(simulate(simulate_all, x0, cfg.eta, cfg.loss, N))
            i_b = rng.randint(N, (B,), gen, device)
            fake = cache.traj[i_b, torch.arange(B, device=device)]
        t_b = i_b.to(real.dtype) / N
        if cfg.time_sampling == "uniform":  # continue each particle part of an Euler step: t_b ~ U[0, 1)
            u = rng.rand((B,), gen, device, real.dtype)
            v = simulate(flow_velocity, fake, t_b, cfg.eta, cfg.loss)
            fake = fake + (u / N).reshape((B,) + (1,) * len(shape)) * v
            t_b = t_b + u / N
        f_real, f_fake = D(real, t_b), D(fake, t_b)
        ld = d_loss(cfg.loss, f_real, f_fake)
        metrics = {"loss_d": ld.detach(), "f_real": f_real.detach().mean(), "f_fake": f_fake.detach().mean()}
        if cfg.time_weight == "balanced":
            k = (t_b * N).long().clamp(0, N - 1)
            w = balance.weights(k)
            sq = zero_gp(D, real, fake, t_b, gen, per_sample=True)
            balance.update(k, sq.detach())
            ld = (w * (f_real - f_fake + gp_w * sq)).mean()
            metrics["gp"] = sq.detach().mean()
        elif gp_w > 0:
            gp = zero_gp(D, real, fake, t_b, gen)
            ld = ld + gp_w * gp
            metrics["gp"] = gp.detach()
        opt.zero_grad(set_to_none=True)
        ld.backward()
        if cfg.lr_schedule != "constant":
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, i)
        opt.step()
        if cfg.ema > 0:
            ema_update(D_ema, D, cfg.ema)
        return metrics

    run.loop(cfg.steps, step, desc=f"dflow {cfg.data}")
    D.eval()
    final = D_ema if cfg.ema > 0 else D
    if run.step >= cfg.steps:
        write_dflow(out, cfg, final, P)
    return final


def fit_prior(cfg: DFlowConfig, data: DataSource):
    """``prior="gaussian"``: a ``gaussian_prior`` net fitted to the training data (all images, or
    ``PRIOR_FIT_N`` draws of a toy set from a generator seeded by ``cfg.seed``), on the CPU."""
    if data.images is not None:
        x = data.images[:PRIOR_FIT_N].cpu()
    else:
        x = data.sample(PRIOR_FIT_N, torch.Generator("cpu").manual_seed(cfg.seed + 7)).cpu()
    return GaussianPrior(shape=list(data.shape)).fit(x, cfg.prior_eps)


def write_dflow(out, cfg: DFlowConfig, D, P=None) -> dict:
    """``D.safetensors`` (and ``P.safetensors``, the fitted prior) and ``latentflow.json`` (architecture,
    sampling options, recipe)."""
    out = Path(out)
    arch = {"D": {"name": cfg.arch, "kwargs": cfg.arch_kwargs}}
    if P is not None:
        arch["P"] = {"name": "gaussian_prior", "kwargs": {"shape": list(P.shape)}}
    spec = {
        "arch": arch,
        "d_output": "critic" if cfg.loss == "ipm" else "logit",
        "d_conditioning": "time",
        "x0": {"prior": cfg.prior},
        "sampling": {DFlow.name: {"eta": cfg.eta, "steps": cfg.flow_steps, "loss": cfg.loss}},
        "recipe": {"trainer": "dflow", "config": config_dict(cfg)},
    }
    return write_trained(out, spec, {"D": D} if P is None else {"D": D, "P": P})
