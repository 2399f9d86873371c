"""Time-conditioned discriminator for discriminator guidance (Kim et al. 2023).

``d_φ(x, σ)`` (a logit) learns to tell noised data from noised samples of a score model: ``y ~ p_data`` and
``y' ~ q`` (a fixed pool of ``n_fake`` samples drawn once with the EDM Heun sampler of
``latentflow.scores.edm_heun_sample``), both noised to ``x = y + σ n`` at ``ln σ ~ N(P_mean, P_std²)`` (as in
EDM training); loss ``BCE = softplus(-d(x_real, σ)) + softplus(d(x_fake, σ'))``. At the optimum
``d/(1 - d) = p_σ/q_σ``, so ``∇x d_φ`` is the correction ``∇ log p_σ - ∇ log q_σ`` that
``latentflow.scores.dg_correction`` adds to the model's score.

Output folder: ``D.safetensors`` and ``latentflow.json`` ``{arch: {D: ...}, d_output: logit,
d_conditioning: sigma, score: <denoiser folder or null>, recipe}`` (read back by :func:`load_dg_disc`), and
``fake.safetensors``, the generated pool (so a resumed run does not redraw it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .. import rng
from .._io import atomic_save_safetensors
from ..errors import LatentflowError, OptionError
from ..scores import as_score, edm_heun_sample, edm_sigmas
from ._loop import LoopOptions, check_ema, config_dict, ema_update
from ._setup import one_net_run
from ._trained import write_trained
from .config import TrainConfig, check_betas, check_positive_float, check_positive_int, train_device
from .data_source import DataSource
from .denoiser import build_net, load_denoiser, load_role
from .edm import noised, sample_sigma_lognormal

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("latentflow.train")

DEFAULT_ARCH = {"fashion-mnist": ("dg_conv28", {"channels": 1, "ch": 16, "sigma_data": 0.5})}
DEFAULT_2D = ("dg_mlp", {"in_dim": 2, "width": 128, "depth": 4, "x_freq": 32, "x_scale": 1.0, "sigma_data": 1.0})


@dataclass
class DGDiscConfig(TrainConfig):
    # the fields every trainer has (TrainConfig), at this trainer's defaults
    steps: int = 3000
    batch_size: int = 256  # real and fake samples per step (each)
    betas: tuple = (0.9, 0.999)

    data: str = "grid25"
    data_root: str | None = None
    score: str | None = None  # folder of a train_denoiser run (or pass score_model= to the trainer)
    arch: str | None = None  # None: dg_mlp for 2-D, dg_conv28 for fashion-mnist
    arch_kwargs: dict | None = None
    n_fake: int = 10000  # size of the generated pool
    heun_steps: int = 18  # N of the sampler that draws the pool (2N - 1 evaluations)
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    gen_batch: int = 1000
    p_mean: float = -1.2
    p_std: float = 1.2
    lr: float = 3e-4
    ema: float = 0.0

    def check(self) -> None:
        check_positive_int(self, "n_fake", "heun_steps", "gen_batch")
        check_positive_float(self, "sigma_min", "sigma_max", "rho", "p_std", "lr")
        check_betas(self)
        check_ema(self)
        if self.heun_steps < 2:
            raise OptionError(f"heun_steps must be >= 2; got {self.heun_steps!r}")
        if not self.sigma_min < self.sigma_max:
            raise OptionError(f"sigma_min must be < sigma_max; got {self.sigma_min!r} and {self.sigma_max!r}")
        DataSource.shape_of(self.data)


def generate(
    score_model: nn.Module,
    n: int,
    shape,
    *,
    heun_steps: int,
    sigma_min: float,
    sigma_max: float,
    rho: float,
    generator: torch.Generator,
    batch_size: int = 1000,
    device="cpu",
) -> torch.Tensor:
    """``n`` samples of the denoiser ``score_model`` (EDM Heun, ``σ_max n`` start): ``[n, *shape]``."""
    sig = edm_sigmas(heun_steps, sigma_min, sigma_max, rho)
    x0 = sigma_max * rng.randn((n, *shape), generator, device)
    s = as_score(score_model, "denoised")
    with torch.no_grad():
        return edm_heun_sample(s, x0, sig, batch_size=batch_size)


def train_dg_disc(
    cfg: DGDiscConfig, out: str | Path, *, score_model: nn.Module | None = None, **loop: Unpack[LoopOptions]
) -> nn.Module:
    """Train ``d_φ(x, σ)`` per ``cfg`` against the samples of ``score_model`` (default: the denoiser in
    ``cfg.score``); writes ``D.safetensors``, ``fake.safetensors`` and ``latentflow.json``. Returns ``d_φ``
    (a logit; eval mode; the EMA weights when ``cfg.ema > 0``).
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    cfg.validate()
    device = train_device(cfg, out)
    out = Path(out)
    d_arch, d_kw = DEFAULT_ARCH.get(cfg.data, DEFAULT_2D)
    arch = cfg.arch or d_arch
    kw = dict(d_kw if cfg.arch_kwargs is None else cfg.arch_kwargs)
    data = DataSource(cfg.data, cfg.data_root, device)
    fake_path = out / "fake.safetensors"
    if loop.get("resume", True) and fake_path.exists():
        fake = load_file(str(fake_path))["fake"].to(device)
    else:
        if score_model is None:
            if cfg.score is None:
                raise OptionError(
                    "train_dg_disc needs a score model: set cfg.score to a train_denoiser folder or pass score_model="
                )
            score_model = load_denoiser(cfg.score, device)
        gen0 = torch.Generator("cpu").manual_seed(cfg.seed + 2)
        log.info("drawing the pool: %d samples, Heun N = %d", cfg.n_fake, cfg.heun_steps)
        fake = generate(
            score_model,
            cfg.n_fake,
            data.shape,
            heun_steps=cfg.heun_steps,
            sigma_min=cfg.sigma_min,
            sigma_max=cfg.sigma_max,
            rho=cfg.rho,
            generator=gen0,
            batch_size=cfg.gen_batch,
            device=device,
        )
        if not torch.isfinite(fake).all():
            raise LatentflowError("the score model produced non-finite samples; check it before training a D")
        atomic_save_safetensors({"fake": fake}, fake_path)
    torch.manual_seed(cfg.seed)
    D = build_net(arch, kw).to(device)
    run, opt, gen, D_ema = one_net_run(out, cfg, "D", D, loop)
    B = cfg.batch_size

    def step(_i):
        D.train()
        real = data.sample(B, gen)
        fk = fake[rng.randint(fake.shape[0], (B,), gen, device)]
        s_r = sample_sigma_lognormal(B, gen, cfg.p_mean, cfg.p_std, device, real.dtype)
        s_f = sample_sigma_lognormal(B, gen, cfg.p_mean, cfg.p_std, device, real.dtype)
        d_r, d_f = D(noised(real, s_r, gen), s_r), D(noised(fk, s_f, gen), s_f)
        loss = F.softplus(-d_r).mean() + F.softplus(d_f).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if D_ema is not None:
            ema_update(D_ema, D, cfg.ema)
        acc = 0.5 * ((d_r > 0).float().mean() + (d_f < 0).float().mean())
        return {"loss": loss.detach(), "acc": acc.detach()}

    run.loop(cfg.steps, step, desc=f"dg-disc {cfg.data}")
    final = D if D_ema is None else D_ema
    final.eval()
    if run.step >= cfg.steps:
        spec = {
            "arch": {"D": {"name": arch, "kwargs": kw}},
            "d_output": "logit",
            "d_conditioning": "sigma",
            "score": cfg.score,
            "output": {"shape": list(data.shape)},
            "dataset": cfg.data,
            "recipe": {"trainer": "dgdisc", "config": config_dict(cfg)},
            "schema": 1,
        }
        write_trained(out, spec, {"D": final})
    return final


def load_dg_disc(folder, device="cpu") -> nn.Module:
    """The discriminator ``d_φ(x, σ)`` (a logit) a :func:`train_dg_disc` run wrote to ``folder``."""
    return load_role(folder, "D", device)[0]
