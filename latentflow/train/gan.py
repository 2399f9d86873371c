"""GAN trainer for the small models the project ships (2-D MLPs, DCGANs).

Losses (the discriminator is high on real data in all three):

* ``wgan-gp``: ``L_D = E[D(fake)] - E[D(real)] + λ E[(||∇D(x̂)|| - 1)²]`` on random interpolates,
  ``L_G = -E[D(G(z))]``; D is a critic (``d_output: critic``).
* ``ns`` (non-saturating): ``L_D = softplus(-D(real)) + softplus(D(fake))``, ``L_G = softplus(-D(G(z)))``;
  D returns a logit.
* ``hinge``: ``L_D = relu(1 - D(real)) + relu(1 + D(fake))``, ``L_G = -D(G(z))``.

Che et al. 2020 (§5.1) train their 2-D models with WGAN-GP, Adam(1e-4, β = (0.5, 0.9)), normal prior, DOT's MLPs;
those are the defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .. import dist, rng
from ..errors import OptionError
from ..nets import build
from ._loop import LoopOptions, Run, config_dict
from ._setup import start
from .config import TrainConfig, check_choice, check_nets_fit, check_positive_int
from .data_source import DataSource
from .parallel import Parallel

if TYPE_CHECKING:
    from typing_extensions import Unpack

LOSSES = ("wgan-gp", "ns", "hinge")


@dataclass
class GANConfig(TrainConfig):
    # the fields every trainer has (TrainConfig), at this trainer's defaults
    steps: int = 20000
    betas: tuple = (0.5, 0.9)

    data: str = "grid25"
    data_root: str | None = None
    arch_g: str = "mlp_g"
    arch_g_kwargs: dict = field(default_factory=lambda: {"latent_dim": 2, "hidden": [256, 256, 256], "out_dim": 2})
    arch_d: str = "mlp_d"
    arch_d_kwargs: dict = field(default_factory=lambda: {"in_dim": 2, "hidden": [512, 512, 512]})
    latent_dim: int = 2
    prior: str = "normal"
    loss: str = "wgan-gp"
    gp_weight: float = 10.0
    n_critic: int = 5
    lr_g: float = 1e-4
    lr_d: float = 1e-4

    def check(self) -> None:
        check_choice(self, "loss", LOSSES)
        check_choice(self, "prior", ("normal", "uniform"), quoted=True)
        check_positive_int(self, "n_critic", "latent_dim")
        for k in ("lr_g", "lr_d"):
            if not getattr(self, k) > 0:
                raise OptionError(f"{k} must be > 0; got {getattr(self, k)!r}")
        if self.gp_weight < 0:
            raise OptionError(f"gp_weight must be >= 0; got {self.gp_weight!r}")

    @property
    def d_output(self) -> str:
        return "critic" if self.loss == "wgan-gp" else "logit"


def gradient_penalty(D, real, fake, gen: torch.Generator, par: Parallel | None = None) -> torch.Tensor:
    """``E[(||∇_x D(x̂)||₂ - 1)²]`` on ``x̂ = α real + (1 - α) fake``, ``α ~ U(0, 1)`` per sample (with
    ``par``: α drawn for the global batch, this rank's rows kept)."""
    n = par.batch(real.shape[0]) if par is not None else real.shape[0]
    a = rng.rand((n,) + (1,) * (real.dim() - 1), gen, real.device, real.dtype)
    a = par.mine(a) if par is not None else a
    xh = (a * real + (1 - a) * fake).requires_grad_(True)
    out = D(xh)
    (g,) = torch.autograd.grad(out.sum(), xh, create_graph=True)
    return (g.flatten(1).norm(dim=1) - 1).pow(2).mean()


def d_loss(loss: str, d_real, d_fake):
    if loss == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    if loss == "ns":
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()


def g_loss(loss: str, d_fake):
    if loss == "ns":
        return F.softplus(-d_fake).mean()
    return -d_fake.mean()


def train_gan(cfg: GANConfig, out: str, **loop: Unpack[LoopOptions]):
    """Train G and D per ``cfg``; writes ``G.safetensors``, ``D.safetensors``, ``latentflow.json``,
    checkpoints and ``metrics.jsonl`` to ``out``. Returns ``(G, D)`` (in eval mode).
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    device = start(cfg, out)
    G = build(cfg.arch_g, **cfg.arch_g_kwargs).to(device)
    D = build(cfg.arch_d, **cfg.arch_d_kwargs).to(device)
    data = DataSource(cfg.data, cfg.data_root, device)
    check_nets_fit(G, cfg.latent_dim, DataSource.shape_of(cfg.data), D, arch_g=cfg.arch_g, arch_d=cfg.arch_d)
    gen = torch.Generator("cpu").manual_seed(cfg.seed + 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
    par = Parallel(device)  # under torchrun: DDP nets, global-batch draws sliced per rank (train.parallel)
    run = Run(out, cfg, {"G": G, "D": D}, {"G": opt_g, "D": opt_d}, gen, parallel=par, **loop)
    B = par.batch(cfg.batch_size)  # every draw is made at the global batch size, then sliced
    G_par, D_par = par.wrap(G), par.wrap(D)

    def latents(n):
        return par.mine(rng.sample_latents(n, cfg.latent_dim, cfg.prior, generator=gen, device=device))

    def step(_i):
        G.train()
        D.train()
        for _ in range(cfg.n_critic):
            real = par.mine(data.sample(B, gen))
            with torch.no_grad():
                fake = G(latents(B))
            ld = d_loss(cfg.loss, D_par(real), D_par(fake))
            if cfg.loss == "wgan-gp" and cfg.gp_weight > 0:
                gp = gradient_penalty(D_par, real, fake, gen, par)
                ld = ld + cfg.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            ld.backward()
            opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        lg = g_loss(cfg.loss, D(G_par(latents(B))))
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
        return {"loss_d": ld.detach(), "loss_g": lg.detach()}

    run.loop(cfg.steps, step, desc=f"gan {cfg.data}")
    G.eval()
    D.eval()
    if run.step >= cfg.steps and par.main:
        write_pair(out, cfg, G, D)
    dist.barrier()
    return G, D


def write_pair(out, cfg: GANConfig, G, D) -> dict:
    """Write ``G.safetensors``, ``D.safetensors`` and ``latentflow.json`` (the ``export`` layout, so
    ``latentflow.load(out)`` and ``latentflow sample --model out`` read it back)."""
    from ..models import export, make_pair

    shape = list(DataSource.shape_of(cfg.data))
    pair = make_pair(
        G,
        D,
        arch_g={"name": cfg.arch_g, "kwargs": cfg.arch_g_kwargs},
        arch_d={"name": cfg.arch_d, "kwargs": cfg.arch_d_kwargs},
        name=f"{cfg.data}-{cfg.loss}",
        latent_dim=cfg.latent_dim,
        prior=cfg.prior,
        d_output=cfg.d_output,
        output_shape=shape,
        output_range=None if len(shape) == 1 else [-1.0, 1.0],
        recipe=json.dumps({"trainer": "gan", "config": config_dict(cfg)}),
        dataset=cfg.data,
    )
    export(pair, out)
    return pair.meta["spec"]
