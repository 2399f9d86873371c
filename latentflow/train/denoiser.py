"""EDM denoiser trainer (Karras et al. 2022): a score model ``D(x, σ)`` for 2-D toy data or Fashion-MNIST.

Loss (Karras et al. 2022, Eq. 2 and Table 1): ``ln σ ~ N(P_mean, P_std²)``, ``x = y + σ n``,

    L = E[ λ(σ) ||D(x, σ) - y||² ],   λ(σ) = (σ² + σ_d²)/(σ σ_d)²,

with ``D = c_skip x + c_out F(c_in x, c_noise)`` preconditioned inside the network (``den_mlp`` for 2-D,
the package's ``tconv28_den`` U-Net for 28x28 images). The score is ``(D(x, σ) - x)/σ²``
(``latentflow.scores.as_score(D, "denoised")``). ``ema > 0`` keeps an EMA of the weights, which is what
the output holds.

Output folder: ``score.safetensors`` (the final weights, EMA when on) and ``latentflow.json``
``{arch: {score: {name, kwargs}}, score_output: denoised, sigma_data, recipe}``; :func:`load_denoiser`
reads it back. Checkpoints and ``metrics.jsonl`` as every trainer (``latentflow.train._loop.Run``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import LatentflowError, OptionError
from ..nets import build
from ..scores import edm_loss_weight
from ._loop import LoopOptions, check_ema, config_dict, ema_update
from ._setup import one_net_run, start
from ._trained import write_trained
from .config import TrainConfig, check_betas, check_positive_float
from .data_source import DataSource
from .edm import noised, sample_sigma_lognormal

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: per-dataset defaults for ``arch`` / ``arch_kwargs`` / ``sigma_data`` when they are left at None
DEFAULT_ARCH = {
    "fashion-mnist": ("tconv28_den", {"channels": 1, "ch": 16}, 0.5),
}
DEFAULT_2D = ("den_mlp", {"in_dim": 2, "width": 128, "depth": 4, "x_freq": 32, "x_scale": 1.0}, 1.0)


def build_net(name: str, kwargs: dict) -> nn.Module:
    """A score network by name from the architecture registry (``latentflow.nets.build``)."""
    return build(name, **kwargs)


def resolve_arch(data: str, arch: str | None, arch_kwargs: dict | None, sigma_data: float | None):
    """``(arch, kwargs, σ_data)`` with the dataset's defaults filled in; ``sigma_data`` goes into kwargs."""
    d_arch, d_kw, d_sd = DEFAULT_ARCH.get(data, DEFAULT_2D)
    arch = arch or d_arch
    kw = dict(d_kw if arch_kwargs is None else arch_kwargs)
    sd = float(sigma_data if sigma_data is not None else kw.get("sigma_data", d_sd))
    kw["sigma_data"] = sd
    return arch, kw, sd


@dataclass
class DenoiserConfig(TrainConfig):
    # the fields every trainer has (TrainConfig), at this trainer's defaults
    betas: tuple = (0.9, 0.999)

    data: str = "grid25"
    data_root: str | None = None
    arch: str | None = None  # None: den_mlp for 2-D, tconv28_den for fashion-mnist
    arch_kwargs: dict | None = None
    sigma_data: float | None = None  # None: 1.0 for 2-D (grid25's coordinate std is 1.4), 0.5 for images
    p_mean: float = -1.2
    p_std: float = 1.2
    lr: float = 1e-3
    ema: float = 0.999
    grad_clip: float = 1.0  # max gradient norm (0 = off)

    def check(self) -> None:
        check_positive_float(self, "p_std", "lr")
        check_betas(self)
        check_ema(self)
        if not isinstance(self.p_mean, (int, float)) or isinstance(self.p_mean, bool):
            raise OptionError(f"p_mean must be a number; got {self.p_mean!r}")
        if self.sigma_data is not None:
            check_positive_float(self, "sigma_data")
        if not isinstance(self.grad_clip, (int, float)) or self.grad_clip < 0:
            raise OptionError(f"grad_clip must be a number >= 0 (0 = off); got {self.grad_clip!r}")
        DataSource.shape_of(self.data)


def train_denoiser(cfg: DenoiserConfig, out: str, **loop: Unpack[LoopOptions]) -> nn.Module:
    """Train an EDM denoiser per ``cfg``; writes ``score.safetensors`` and ``latentflow.json`` to ``out``.
    Returns the denoiser ``D(x, σ)`` in eval mode (the EMA weights when ``cfg.ema > 0``).
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    device = start(cfg, out)
    arch, kw, sd = resolve_arch(cfg.data, cfg.arch, cfg.arch_kwargs, cfg.sigma_data)
    net = build_net(arch, kw).to(device)
    data = DataSource(cfg.data, cfg.data_root, device)
    run, opt, gen, ema = one_net_run(out, cfg, "score", net, loop)
    B = cfg.batch_size

    def step(_i):
        net.train()
        y = data.sample(B, gen)
        sig = sample_sigma_lognormal(B, gen, cfg.p_mean, cfg.p_std, device, y.dtype)
        err = (net(noised(y, sig, gen), sig) - y).flatten(1).pow(2).mean(1)
        loss = (edm_loss_weight(sig, sd) * err).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        if ema is not None:
            ema_update(ema, net, cfg.ema)
        return {"loss": loss.detach()}

    run.loop(cfg.steps, step, desc=f"denoiser {cfg.data}")
    final = net if ema is None else ema
    final.eval()
    if run.step >= cfg.steps:
        write_denoiser(out, cfg, final, arch, kw, sd)
    return final


def write_denoiser(out, cfg: DenoiserConfig, net: nn.Module, arch: str, kw: dict, sd: float) -> dict:
    out = Path(out)
    spec = {
        "arch": {"score": {"name": arch, "kwargs": kw}},
        "score_output": "denoised",
        "sigma_data": sd,
        "output": {"shape": list(DataSource.shape_of(cfg.data))},
        "dataset": cfg.data,
        "recipe": {"trainer": "denoiser", "config": config_dict(cfg)},
        "schema": 1,
    }
    return write_trained(out, spec, {"score": net})


def read_spec(folder, role: str) -> dict:
    p = Path(folder) / "latentflow.json"
    try:
        spec = json.loads(p.read_text())
        spec["arch"][role]["name"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LatentflowError(
            f"{p}: expected a latentflow.json with arch.{role}.name (a folder written by the "
            f"trainer); got {type(e).__name__}: {e}"
        ) from e
    return spec


def load_role(folder, role: str, device="cpu") -> tuple[nn.Module, dict]:
    """``(network in eval mode, spec)`` for ``role`` of a training folder (``<role>.safetensors``)."""
    from safetensors.torch import load_file

    spec = read_spec(folder, role)
    a = spec["arch"][role]
    net = build_net(a["name"], a.get("kwargs", {}))
    net.load_state_dict(load_file(str(Path(folder) / f"{role}.safetensors")), strict=True)
    return net.to(device).eval(), spec


def load_denoiser(folder, device="cpu") -> nn.Module:
    """The denoiser ``D(x, σ)`` a :func:`train_denoiser` run wrote to ``folder`` (eval mode)."""
    return load_role(folder, "score", device)[0]
