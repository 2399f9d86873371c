"""Score GAN trainer: Franceschi et al. 2023, Algorithm 1: a generator trained with diffusion scores.

Both distributions are noised at a random level ``σ ~ p_σ`` (Franceschi et al. 2023, Eq. 28,
``σ = (σ_max^{1/ρ} + α (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ``, ``α ~ U[0, 1]``). A generated-score network
``den_φ`` learns ``∇ log(ρ ⋆ k^σ)`` by denoising score matching on generator samples (one step per
iteration); every ``K`` iterations the generator takes one step on the surrogate loss (ibid., Eq. 27)

    L_G = -(1/B) Σ_b < g(z_b), sg(σ_b (μ_data s_data(x̃_b, σ_b) - μ_ρ s_φ(x̃_b, σ_b))) >,  x̃ = g(z) + σ ε.

The data score is a callable ``score(x, sigma [B]) -> [B, *X]``: for the 2-D mixtures, the exact score
of the Gaussian-smoothed mixture (``mixture_score``); otherwise pass one (e.g. a denoiser's
``(den(x, σ) - x)/σ²``) as ``train_score_gan(..., data_score=...)``. ``steps`` counts φ updates
(the paper's Gaussians: 31,500 = 3,150 generator steps × K = 10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .. import dist, rng
from ..errors import OptionError
from ..nets import build
from ._loop import LoopOptions, Run, check_ema, config_dict, ema_update, make_ema
from ._setup import start
from ._trained import write_trained
from .config import TrainConfig, check_betas, check_choice, check_nets_fit, check_positive_float, check_positive_int
from .data_source import DataSource
from .parallel import Parallel

if TYPE_CHECKING:
    from typing_extensions import Unpack

ScoreFn = Callable[[Tensor, Tensor], Tensor]


def p_sigma_at(alpha: Tensor, sigma_min: float = 0.1, sigma_max: float = 10.0, rho: float = 3.0) -> Tensor:
    """Franceschi et al. 2023, Eq. 28 at ``alpha`` in [0, 1]: ``(σ_max^{1/ρ} + α (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ`` (α = 0 -> σ_max)."""
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (a + alpha * (b - a)) ** rho


def sample_p_sigma(
    n: int,
    gen: torch.Generator,
    sigma_min: float = 0.1,
    sigma_max: float = 10.0,
    rho: float = 3.0,
    device="cpu",
    dtype=torch.float32,
) -> Tensor:
    """``n`` noise levels ``σ ~ p_σ`` (Franceschi et al. 2023, Eq. 28): EDM's inference schedule at a uniform random position."""
    return p_sigma_at(rng.rand((n,), gen, device, dtype), sigma_min, sigma_max, rho)


def mixture_score(centers: Tensor, std: float, weights: Tensor | None = None) -> ScoreFn:
    """Exact score of ``Σ_k w_k N(μ_k, std² I) ⋆ N(0, σ² I)`` as ``score(x [B, n], sigma [B] or scalar)``.

    ``∇ log p^σ(x) = Σ_k γ_k(x) (μ_k - x)/(std² + σ²)``, ``γ = softmax_k(log w_k - ||x - μ_k||²/(2(std² + σ²)))``
    (log space, so it never vanishes far from the data). ``std = 0`` gives the smoothed empirical
    distribution of the points ``centers``."""
    C = torch.as_tensor(centers).double()
    if C.dim() != 2:
        raise OptionError(f"centers must have shape [K, n]; got {tuple(C.shape)}")
    logw = (
        torch.full((C.shape[0],), -float(torch.log(torch.tensor(float(C.shape[0])))), dtype=torch.float64)
        if weights is None
        else torch.log(torch.as_tensor(weights, dtype=torch.float64))
    )

    def score(x: Tensor, sigma) -> Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
        s = s.expand(x.shape[0]) if s.dim() == 0 else s.reshape(-1)
        v = (std**2 + s**2)[:, None]  # [B, 1]
        xd = x.detach().double()
        c = C.to(x.device)
        d2 = torch.cdist(xd, c).pow(2)  # [B, K]
        gam = torch.softmax(logw.to(x.device) - d2 / (2 * v), dim=1)  # [B, K]
        return ((gam @ c - xd) / v).to(x.dtype)

    return score


def denoiser_score(den: Callable[[Tensor, Tensor], Tensor]) -> ScoreFn:
    """``score(x, σ) = (den(x, σ) - x)/σ²`` for a denoiser ``den(x [B, *X], σ [B])``."""

    def score(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        s = (s.expand(x.shape[0]) if s.dim() == 0 else s).reshape(-1, *([1] * (x.dim() - 1)))
        return (den(x, s.flatten()) - x) / s**2

    return score


def score_gan_direction(
    x_noisy: Tensor, sigma: Tensor, s_data: ScoreFn, s_gen: ScoreFn, mu_data: float = 1.0, mu_rho: float = 1.0
) -> Tensor:
    """``σ (μ_data s_data - μ_ρ s_gen)`` at ``(x̃, σ)``, detached (ibid., Eq. 27)."""
    with torch.no_grad():
        sr = sigma.reshape(-1, *([1] * (x_noisy.dim() - 1)))
        return sr * (mu_data * s_data(x_noisy, sigma) - mu_rho * s_gen(x_noisy, sigma))


def surrogate_loss(x: Tensor, v: Tensor) -> Tensor:
    """``-(1/B) Σ_b <x_b, sg(v_b)>`` : its θ-gradient is ``-(1/B) Σ_b J_θᵀ v_b``."""
    return -(x * v.detach()).flatten(1).sum(1).mean()


@dataclass
class ScoreGANConfig(TrainConfig):
    # the fields every trainer has (TrainConfig), at this trainer's defaults
    steps: int = 31500  # φ updates (generator updates = steps // k)
    batch_size: int = 128
    betas: tuple = (0.9, 0.999)

    data: str = "grid25"
    data_root: str | None = None
    arch_g: str = "mlp_g"
    arch_g_kwargs: dict = field(
        default_factory=lambda: {"latent_dim": 128, "hidden": [512, 512, 512], "out_dim": 2, "slope": 0.0}
    )
    arch_s: str = "mlp_den"
    arch_s_kwargs: dict = field(default_factory=lambda: {"in_dim": 2, "width": 512, "depth": 4})
    latent_dim: int = 128
    sigma_min: float = 0.1
    sigma_max: float = 10.0
    rho: float = 3.0
    k: int = 10  # K: φ updates per generator update
    mu_data: float = 1.0
    mu_rho: float = 1.0
    ema: float = 0.0  # decay of an EMA of G's weights, written as the output G (0 = off)
    dsm_weight: str = "edm"  # "edm": λ(σ) = (σ² + σ_d²)/(σ σ_d)²; "none": plain squared error
    lr_s: float = 2e-4
    lr_g: float = 2e-4

    def check(self) -> None:
        check_positive_int(self, "latent_dim", "k")
        check_positive_float(self, "sigma_min", "sigma_max", "rho", "lr_s", "lr_g")
        check_betas(self)
        check_ema(self)
        if not self.sigma_min < self.sigma_max:
            raise OptionError(f"sigma_min must be < sigma_max; got {self.sigma_min!r} and {self.sigma_max!r}")
        check_choice(self, "dsm_weight", ("edm", "none"), quoted=True)
        for k in ("mu_data", "mu_rho"):
            if not isinstance(getattr(self, k), (int, float)):
                raise OptionError(f"{k} must be a number; got {getattr(self, k)!r}")


def default_data_score(data: DataSource, n_ref: int = 4096, seed: int = 0) -> ScoreFn:
    """Exact smoothed score of a toy mixture; the smoothed empirical score of a fixed sample otherwise."""
    if data.toy is None:
        raise OptionError(
            f'data "{data.name}" has no closed-form score; pass data_score=score(x, sigma) '
            "(e.g. denoiser_score(den) of a pre-trained denoiser)"
        )
    if data.toy.centers is not None:
        return mixture_score(data.toy.centers, data.toy.std)
    return mixture_score(data.toy.sample(n_ref, seed), 0.0)


def train_score_gan(cfg: ScoreGANConfig, out: str, *, data_score: ScoreFn | None = None, **loop: Unpack[LoopOptions]):
    """Train a generator with the Score-GAN flow (Franceschi et al. 2023, Alg. 1); writes ``G.safetensors``,
    ``S.safetensors`` (the generated-score denoiser), ``latentflow.json``. Returns ``(G, S)`` in eval mode
    (with ``cfg.ema > 0``, G is the EMA of the generator's weights, also what ``G.safetensors`` holds).
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    device = start(cfg, out)
    G = build(cfg.arch_g, **cfg.arch_g_kwargs).to(device)
    S = build(cfg.arch_s, **cfg.arch_s_kwargs).to(device)
    data = DataSource(cfg.data, cfg.data_root, device)
    shape = DataSource.shape_of(cfg.data) if data_score is None else None  # a given score: any sample shape
    check_nets_fit(G, cfg.latent_dim, shape, arch_g=cfg.arch_g)
    s_data = data_score if data_score is not None else default_data_score(data)
    gen = torch.Generator("cpu").manual_seed(cfg.seed + 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
    opt_s = torch.optim.Adam(S.parameters(), lr=cfg.lr_s, betas=tuple(cfg.betas))
    modules = {"G": G, "S": S}
    if cfg.ema > 0:
        modules["G_ema"] = G_ema = make_ema(G)
    par = Parallel(device)  # under torchrun: DDP nets, global-batch draws sliced per rank (train.parallel)
    run = Run(out, cfg, modules, {"G": opt_g, "S": opt_s}, gen, parallel=par, **loop)
    B = par.batch(cfg.batch_size)  # every draw is made at the global batch size, then sliced
    G_par, S_par = par.wrap(G), par.wrap(S)
    sd = float(getattr(S, "sigma_data", 0.5))
    s_gen = denoiser_score(S)

    def noised(x):
        sig = par.mine(sample_p_sigma(B, gen, cfg.sigma_min, cfg.sigma_max, cfg.rho, device, x.dtype))
        sr = sig.reshape(-1, *([1] * (x.dim() - 1)))
        return sig, x + sr * par.mine(rng.randn((B, *x.shape[1:]), gen, device, x.dtype))

    last = {}

    def step(i):
        G.train()
        S.train()
        with torch.no_grad():
            x = G(par.mine(rng.randn((B, cfg.latent_dim), gen, device)))
        sig, xn = noised(x)
        err = (S_par(xn, sig) - x).flatten(1).pow(2).sum(1)
        if cfg.dsm_weight == "edm":
            err = err * (sig**2 + sd**2) / (sig * sd) ** 2
        ls = err.mean()
        opt_s.zero_grad(set_to_none=True)
        ls.backward()
        opt_s.step()
        metrics = {"loss_s": ls.detach()}
        if (i + 1) % cfg.k == 0:
            S.eval()
            for p in S.parameters():
                p.requires_grad_(False)
            x = G_par(par.mine(rng.randn((B, cfg.latent_dim), gen, device)))
            sig, xn = noised(x.detach())
            v = score_gan_direction(xn, sig, s_data, s_gen, cfg.mu_data, cfg.mu_rho)
            lg = surrogate_loss(x, v)
            opt_g.zero_grad(set_to_none=True)
            lg.backward()
            opt_g.step()
            if cfg.ema > 0:
                ema_update(G_ema, G, cfg.ema)
            for p in S.parameters():
                p.requires_grad_(True)
            last["dir_norm"] = v.flatten(1).norm(dim=1).mean().detach()
        if "dir_norm" in last:
            metrics["dir_norm"] = last["dir_norm"]
        return metrics

    run.loop(cfg.steps, step, desc=f"scoregan {cfg.data}")
    G.eval()
    S.eval()
    final = G_ema if cfg.ema > 0 else G
    if run.step >= cfg.steps and par.main:
        write_score_gan(out, cfg, final, S)
    dist.barrier()
    return final, S


def write_score_gan(out, cfg: ScoreGANConfig, G, S) -> dict:
    out = Path(out)
    spec = {
        "arch": {
            "G": {"name": cfg.arch_g, "kwargs": cfg.arch_g_kwargs},
            "S": {"name": cfg.arch_s, "kwargs": cfg.arch_s_kwargs},
        },
        "latent": {"dim": cfg.latent_dim, "prior": "normal"},
        "recipe": {"trainer": "scoregan", "config": config_dict(cfg)},
    }
    return write_trained(out, spec, {"G": G, "S": S})
