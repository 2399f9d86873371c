"""Trainers of arXiv 2306.01654 v1: FloWGAN and the noise-conditioned discriminator for
discriminator-guided Langevin (a reconstruction: the paper gives no equations).

FloWGAN: the generator follows the kernel "push-pull" field of the optimal IPM discriminator
``D* = (p_data - p_g) ⋆ κ``,

    v(x) = mean_j ∇_x κ(x, y_j) - mean_m ∇_x κ(x, x_m)      (pull to data, push from own samples),

through the surrogate loss ``-(1/B) Σ_b <G(z_b), sg(v_b)>`` (a particle model's generator step, Franceschi et al. 2023). ``+v`` is the steepest descent
of the empirical squared MMD with kernel κ. Kernels (``u = x - y``, ``r_ε = sqrt(||u||² + ε²)``):
``gaussian`` ``exp(-r²/(2ℓ²))``; ``imq`` ``(c² + r²)^(-β)``; ``polyharmonic`` of order ``m`` in dimension
``n`` (``β = 2m - n``): ``r^β`` (β < 0), ``(-1)^⌈β/2⌉ r^β`` (β odd), ``(-1)^(1+β/2) r^β log r``
(β even), evaluated at ``r_ε``; default ``m = ⌈n/2⌉`` (``-log r`` in 2-D).

Noise-conditioned D (``dgd``): a logit ``d(x, σ)`` trained by BCE to tell noised data ``x + σε`` from a
noised reference ``N(0, (ref_std² + σ²) I)``, ``σ`` log-uniform in ``[σ_min, σ_max]``; the exported
network adds the reference log-density back (``nmlp_d`` with ``ref_std``), so ``∇_x d ≈ ∇ log p_data^σ``
and ``refine(None, D, x0, method="dg_langevin", sigmas=...)`` (noisy annealed Langevin) samples the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import rng
from ..errors import OptionError
from ..nets import build
from ..samplers.dg_langevin import DGLangevin
from ._loop import LoopOptions, config_dict
from ._setup import one_net_run, start
from ._trained import write_trained
from .config import TrainConfig, check_betas, check_choice, check_nets_fit, check_positive_float, check_positive_int
from .data_source import DataSource
from .score_gan import surrogate_loss

if TYPE_CHECKING:
    from typing_extensions import Unpack

KERNELS = ("gaussian", "imq", "polyharmonic")


def _poly_beta(dim: int, order: int | None) -> int:
    m = math.ceil(dim / 2) if order is None else int(order)
    return 2 * m - dim


def kernel_value(
    kind: str, u: Tensor, *, bandwidth: float = 1.0, beta: float = 0.5, order: int | None = None, eps: float = 1e-2
) -> Tensor:
    """``κ(x, y)`` for differences ``u = x - y`` ``[..., n]`` -> ``[...]``."""
    r2 = u.pow(2).sum(-1)
    if kind == "gaussian":
        return torch.exp(-r2 / (2 * bandwidth**2))
    if kind == "imq":
        return (bandwidth**2 + r2).pow(-beta)
    if kind == "polyharmonic":
        b = _poly_beta(u.shape[-1], order)
        r = (r2 + eps**2).sqrt()
        if b < 0:
            return r.pow(b)
        if b % 2 == 1:
            return (-1) ** math.ceil(b / 2) * r.pow(b)
        return (-1) ** (1 + b // 2) * r.pow(b) * torch.log(r)
    raise OptionError(f"kernel must be one of {', '.join(KERNELS)}; got {kind!r}")


def kernel_grad(
    kind: str, u: Tensor, *, bandwidth: float = 1.0, beta: float = 0.5, order: int | None = None, eps: float = 1e-2
) -> Tensor:
    """``∇_x κ(x, y)`` for ``u = x - y`` ``[..., n]`` -> ``[..., n]`` (closed form; 0 at ``u = 0`` when ε > 0)."""
    r2 = u.pow(2).sum(-1, keepdim=True)
    if kind == "gaussian":
        return -(u / bandwidth**2) * torch.exp(-r2 / (2 * bandwidth**2))
    if kind == "imq":
        return -2 * beta * u * (bandwidth**2 + r2).pow(-beta - 1)
    if kind == "polyharmonic":
        b = _poly_beta(u.shape[-1], order)
        r = (r2 + eps**2).sqrt()
        if b < 0:
            dk = b * r.pow(b - 1)
        elif b % 2 == 1:
            dk = (-1) ** math.ceil(b / 2) * b * r.pow(b - 1)
        else:
            dk = (-1) ** (1 + b // 2) * r.pow(b - 1) * (b * torch.log(r) + 1)
        return dk * u / r
    raise OptionError(f"kernel must be one of {', '.join(KERNELS)}; got {kind!r}")


def push_pull(x: Tensor, data: Tensor, particles: Tensor, kind: str = "polyharmonic", **kw) -> Tensor:
    """``v(x) = mean_j ∇κ(x, y_j) - mean_m ∇κ(x, x_m)`` for ``x [B, n]``, ``data [N, n]``, ``particles [M, n]``."""
    x, data, particles = x.detach().flatten(1), data.detach().flatten(1), particles.detach().flatten(1)
    pull = kernel_grad(kind, x[:, None, :] - data[None], **kw).mean(1)
    push = kernel_grad(kind, x[:, None, :] - particles[None], **kw).mean(1)
    return pull - push


def mmd2(x: Tensor, y: Tensor, kind: str = "gaussian", **kw) -> Tensor:
    """Biased (V-statistic) squared MMD between the sets ``x [M, n]`` and ``y [N, n]``."""
    x, y = x.flatten(1), y.flatten(1)
    kxx = kernel_value(kind, x[:, None] - x[None], **kw).mean()
    kyy = kernel_value(kind, y[:, None] - y[None], **kw).mean()
    kxy = kernel_value(kind, x[:, None] - y[None], **kw).mean()
    return kxx + kyy - 2 * kxy


@dataclass
class FloWGANConfig(TrainConfig):
    # the fields every trainer has (TrainConfig), at this trainer's defaults
    steps: int = 3000
    batch_size: int = 512

    data: str = "ring8"
    data_root: str | None = None
    arch_g: str = "mlp_g"
    arch_g_kwargs: dict = field(default_factory=lambda: {"latent_dim": 2, "hidden": [256, 256, 256], "out_dim": 2})
    latent_dim: int = 2
    kernel: str = "polyharmonic"
    bandwidth: float = 1.0  # ℓ (gaussian) or c (imq)
    beta: float = 0.5  # IMQ exponent
    order: int | None = None  # polyharmonic order m (None: ⌈n/2⌉)
    eps: float = 1e-2  # ε-smoothing of r for the polyharmonic kernel
    n_data: int = 512  # data points per step in the pull term
    lr: float = 1e-3

    def check(self) -> None:
        check_choice(self, "kernel", KERNELS)
        check_positive_int(self, "latent_dim", "n_data")
        check_positive_float(self, "bandwidth", "beta", "lr")
        check_betas(self)
        if not (isinstance(self.eps, (int, float)) and self.eps >= 0):
            raise OptionError(f"eps must be >= 0; got {self.eps!r}")
        if self.kernel == "polyharmonic" and self.eps == 0:
            raise OptionError("eps must be > 0 for the polyharmonic kernel (it is singular at r = 0)")
        if self.order is not None and (not isinstance(self.order, int) or self.order < 1):
            raise OptionError(f"order must be a positive int or None; got {self.order!r}")

    def kernel_kw(self) -> dict:
        return dict(bandwidth=self.bandwidth, beta=self.beta, order=self.order, eps=self.eps)


def train_flowgan(cfg: FloWGANConfig, out: str, **loop: Unpack[LoopOptions]):
    """Train a generator on the push-pull kernel field (FloWGAN); writes ``G.safetensors`` and
    ``latentflow.json``. Returns G (eval mode).
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    device = start(cfg, out)
    G = build(cfg.arch_g, **cfg.arch_g_kwargs).to(device)
    data = DataSource(cfg.data, cfg.data_root, device)
    check_nets_fit(G, cfg.latent_dim, DataSource.shape_of(cfg.data), arch_g=cfg.arch_g)
    run, opt, gen, _ = one_net_run(out, cfg, "G", G, loop)
    kw = cfg.kernel_kw()

    def step(_i):
        G.train()
        y = data.sample(cfg.n_data, gen)
        x = G(rng.randn((cfg.batch_size, cfg.latent_dim), gen, device))
        v = push_pull(x, y, x, cfg.kernel, **kw)
        loss = surrogate_loss(x, v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"v_norm": v.norm(dim=1).mean().detach()}

    run.loop(cfg.steps, step, desc=f"flowgan {cfg.data}")
    G.eval()
    if run.step >= cfg.steps:
        spec = {
            "arch": {"G": {"name": cfg.arch_g, "kwargs": cfg.arch_g_kwargs}},
            "latent": {"dim": cfg.latent_dim, "prior": "normal"},
            "recipe": {"trainer": "flowgan", "config": config_dict(cfg)},
        }
        write_trained(out, spec, {"G": G})
    return G


# ---------------------------------------------------------------------------------------------------
# noise-conditioned discriminator for discriminator-guided Langevin


def geometric_sigmas(sigma_max: float, sigma_min: float, n: int) -> list[float]:
    """``n`` levels from ``sigma_max`` down to ``sigma_min``, geometrically spaced (NCSN)."""
    if n == 1:
        return [float(sigma_min)]
    return [float(v) for v in torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n, dtype=torch.float64)]


@dataclass
class NoiseDConfig(TrainConfig):
    data: str = "ring8"
    data_root: str | None = None
    arch: str = "nmlp_d"
    arch_kwargs: dict = field(default_factory=lambda: {"in_dim": 2, "width": 256, "depth": 4, "ref_std": 3.0})
    sigma_min: float = 0.05
    sigma_max: float = 3.0
    lr: float = 2e-4
    # recommended sampling options written to latentflow.json
    n_levels: int = 10
    langevin_steps: int = 50
    step_size: float = 1e-3  # ε (α_i = ε σ_i²/σ_L²); 2e-5 barely moved particles at the small levels

    def check(self) -> None:
        check_positive_int(self, "n_levels", "langevin_steps")
        check_positive_float(self, "sigma_min", "sigma_max", "lr", "step_size")
        check_betas(self)
        if not self.sigma_min < self.sigma_max:
            raise OptionError(f"sigma_min must be < sigma_max; got {self.sigma_min!r} and {self.sigma_max!r}")
        if not float(self.arch_kwargs.get("ref_std", 0.0)) > 0:
            raise OptionError("arch_kwargs.ref_std must be > 0: the reference the discriminator is trained against")

    def sigmas(self) -> list[float]:
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels)


def train_noise_d(cfg: NoiseDConfig, out: str, **loop: Unpack[LoopOptions]):
    """Train ``d(x, σ)`` (noised data vs noised reference Gaussian); writes ``D.safetensors`` and
    ``latentflow.json`` with ``sampling.dg_langevin`` options. Returns D (eval mode).
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    device = start(cfg, out)
    D = build(cfg.arch, **cfg.arch_kwargs).to(device)
    if not hasattr(D, "logit"):
        raise OptionError(f'arch "{cfg.arch}" has no logit(x, sigma) method; use "nmlp_d"')
    data = DataSource(cfg.data, cfg.data_root, device)
    run, opt, gen, _ = one_net_run(out, cfg, "D", D, loop)
    B, ref = cfg.batch_size, float(cfg.arch_kwargs["ref_std"])
    lo, hi = math.log(cfg.sigma_min), math.log(cfg.sigma_max)

    def step(_i):
        D.train()
        real = data.sample(B, gen)
        sig = torch.exp(lo + (hi - lo) * rng.rand((B,), gen, device))
        sr = sig.reshape(-1, *([1] * (real.dim() - 1)))
        xr = real + sr * rng.randn(real.shape, gen, device)
        xf = (ref**2 + sr**2).sqrt() * rng.randn(real.shape, gen, device)
        lr_, lf = D.logit(xr, sig), D.logit(xf, sig)
        loss = F.softplus(-lr_).mean() + F.softplus(lf).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss_d": loss.detach(), "acc": 0.5 * ((lr_ > 0).float().mean() + (lf < 0).float().mean()).detach()}

    run.loop(cfg.steps, step, desc=f"dgd {cfg.data}")
    D.eval()
    if run.step >= cfg.steps:
        spec = {
            "arch": {"D": {"name": cfg.arch, "kwargs": cfg.arch_kwargs}},
            "d_output": "logit",
            "d_conditioning": "sigma",
            "x0": {"prior": "normal", "std": cfg.sigma_max},
            "sampling": {
                DGLangevin.name: {
                    "sigmas": cfg.sigmas(),
                    "steps": cfg.langevin_steps,
                    "step_size": cfg.step_size,
                    "d_output": "logit",
                }
            },
            "recipe": {"trainer": "dgd", "config": config_dict(cfg)},
        }
        write_trained(out, spec, {"D": D})
    return D
