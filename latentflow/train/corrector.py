"""A density-ratio corrector: train a discriminator for a generator that has none (a VAE decoder, a GAN
whose D was not released, a generator trained by ``latentflow train scoregan``), so that every sampler of
the library can refine it.

D is a logit trained by logistic regression of real data against the generator's own samples,

``L(D) = E_real[softplus(-D(x))] + E_z[softplus(D(G(z)))]``,

whose minimiser is ``D*(x) = log p_data(x) / p_G(x)`` (Goodfellow et al. 2014, Prop. 1; the density-ratio
view of Ansari et al. 2021): exactly the logit ``ddls``, ``dgflow``, ``ex2mcmc``, ``drs`` and ``mh`` read. G is frozen. The
output folder holds G (unchanged) and the new D in the ``export`` layout, with ``d_output: logit``, so
``latentflow.load(out)`` and ``latentflow sample --model out`` read it back.

``real`` is a dataset name the trainers know (``grid25``, ``ring8``, ``swissroll``, ``fashion-mnist``) or a
tensor file ``[N, *X]``: ``.safetensors`` (key ``x``, or the only tensor), ``.npy``, ``.npz`` (key ``x`` or the
only array) or ``.pt`` (read with ``weights_only=True``). ``uint8`` data is scaled from [0, 255] to the
model's output range. The architecture comes from the data shape (``mlp_d`` for flat data, the
per-sample ``dcgan28_d`` / ``dcgan32_d`` / ``dcgan64_d`` with spectral norm for images) unless ``arch`` is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import rng
from ..data import TOY
from ..errors import LatentflowError, OptionError, ShapeError
from ..nets import build
from ._loop import LoopOptions, config_dict
from ._setup import one_net_run
from .config import TrainConfig, train_device
from .data_source import IMAGE_SETS, DataSource

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CorrectorConfig", "train_corrector", "default_arch", "load_real"]


@dataclass
class CorrectorConfig(TrainConfig):
    # the fields every trainer has (TrainConfig), at this trainer's defaults
    steps: int = 2000
    batch_size: int = 128

    model: str = ""
    real: str = ""
    data_root: str | None = None
    arch: str | None = None
    arch_kwargs: dict = field(default_factory=dict)
    lr: float = 2e-4

    def check(self) -> None:
        if not self.model:
            raise OptionError("model is required: a manifest name, hf:owner/repo or a folder (--model)")
        if not self.real:
            raise OptionError("real is required: a dataset name or a tensor file of real samples (--real)")
        if not self.lr > 0:
            raise OptionError(f"lr must be > 0; got {self.lr!r}")


def default_arch(shape) -> tuple[str, dict]:
    """``(name, kwargs)`` of the discriminator for samples of ``shape``: ``mlp_d`` for ``(k,)``, a DCGAN D
    without batch statistics for ``(C, 28, 28)``, ``(C, 32, 32)`` and ``(C, 64, 64)``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return "mlp_d", {"in_dim": shape[0], "hidden": [256, 256]}
    if len(shape) == 3 and shape[1] == shape[2]:
        c, s = shape[0], shape[1]
        if s == 28:
            return "dcgan28_d", {"channels": c, "sn": True}
        if s in (32, 64):
            return f"dcgan{s}_d", {"channels": c, "norm": "sn"}
    raise OptionError(
        f"no default corrector architecture for samples of shape {list(shape)}; "
        "choose one with --set arch=NAME --set arch_kwargs={...}"
    )


def _read_file(path: Path) -> Tensor:
    suf = path.suffix.lower()
    if suf not in (".safetensors", ".npy", ".npz", ".pt", ".pth"):
        raise OptionError(f"real file {path} must be .safetensors, .npy, .npz or .pt; got {suf or 'no suffix'}")
    try:
        if suf == ".safetensors":
            from safetensors.torch import load_file

            d = load_file(str(path))
        elif suf == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        elif suf == ".npz":
            with np.load(path, allow_pickle=False) as z:
                d = {k: torch.from_numpy(z[k]) for k in z.files}
        else:  # a pickle: tensors and plain containers only, never code (models.checkpoints)
            from ..models.checkpoints import read_pickle_weights_only

            obj = read_pickle_weights_only(path)
            if isinstance(obj, Tensor):
                return obj
            d = obj if isinstance(obj, dict) else {}
    except LatentflowError as e:
        raise OptionError(f"real: {e}") from None
    except Exception as e:  # noqa: BLE001  (numpy, zipfile and safetensors report a bad file each their way)
        raise OptionError(f"real: {str(path)!r} is not a readable {suf} file: {type(e).__name__}: {e}") from None
    d = {k: v for k, v in d.items() if isinstance(v, Tensor)}
    if "x" in d:
        return d["x"]
    if len(d) == 1:
        return next(iter(d.values()))
    raise OptionError(f"real file {path} holds tensors {sorted(d)}; name the samples 'x' (or keep only one)")


def load_real(real: str, shape, value_range=None, root: str | None = None) -> Tensor:
    """The real samples ``[N, *shape]`` (float32, CPU) named by ``real`` (see the module docstring)."""
    shape = tuple(int(s) for s in shape)
    if real in TOY or real in IMAGE_SETS:
        src = DataSource(real, root)
        x = src.images if src.images is not None else src.sample(20000, torch.Generator().manual_seed(0))
    else:
        path = Path(real).expanduser()
        if not path.is_file():
            names = ", ".join(sorted(TOY) + list(IMAGE_SETS))
            raise OptionError(f"real must be a dataset name ({names}) or a tensor file; {real!r} is neither")
        x = _read_file(path)
        if x.dtype == torch.uint8:
            lo, hi = value_range if value_range is not None else (-1.0, 1.0)
            x = x.float() / 255.0 * (hi - lo) + lo
    if not x.is_floating_point():
        x = x.float()
    x = x.float().cpu()
    if tuple(x.shape[1:]) != shape and x.dim() == len(shape) and shape[:1] == (1,) and tuple(x.shape[1:]) == shape[1:]:
        x = x.unsqueeze(1)  # [N, H, W] grey images for a [1, H, W] generator
    if x.dim() < 2 or tuple(x.shape[1:]) != shape:
        raise ShapeError(
            f"real samples must have shape [N, {', '.join(map(str, shape))}] (the generator's output); "
            f"got {list(x.shape)}"
        )
    if x.shape[0] < 2 or not bool(torch.isfinite(x).all()):
        raise ShapeError(
            f"real must hold at least 2 finite samples; got {x.shape[0]} (finite: {bool(torch.isfinite(x).all())})"
        )
    return x


def train_corrector(cfg: CorrectorConfig, out: str, **loop: Unpack[LoopOptions]):
    """Train a logit D of real vs ``G(z)`` for ``cfg.model``'s generator; writes G, the new D and
    ``latentflow.json`` (the ``export`` layout) to ``out``. Returns ``(G, D)`` in eval mode.
    ``loop``: progress, resume, ckpt_every, log_every, stop_after (:class:`~latentflow.train._loop.LoopOptions`)."""
    from ..models import load

    cfg.validate()
    device = train_device(cfg, out)
    pair = load(cfg.model, device=device)
    if pair.G is None:
        raise LatentflowError(
            f'model "{cfg.model}" has no generator: a corrector discriminator is trained against G\'s samples'
        )
    spec = pair.meta.get("spec") or {}
    arch_g = (spec.get("arch") or {}).get("G")
    if not arch_g:
        raise LatentflowError(
            f'model "{cfg.model}" carries no architecture record for G, so the corrected '
            "model could not be written back; load it from a folder or manifest entry"
        )
    shape = tuple(pair.meta["output_shape"])
    vr = pair.meta.get("output_range")
    real = load_real(cfg.real, shape, vr, cfg.data_root).to(device)
    name, kwargs = (cfg.arch, dict(cfg.arch_kwargs)) if cfg.arch else default_arch(shape)
    if cfg.arch is None and cfg.arch_kwargs:
        kwargs.update(cfg.arch_kwargs)
    torch.manual_seed(cfg.seed)  # initial weights
    D = build(name, **kwargs).to(device)
    G = pair.G
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    run, opt, gen, _ = one_net_run(out, cfg, "D", D, loop)
    B, k, prior = cfg.batch_size, pair.latent_dim, pair.meta.get("prior") or "normal"

    def step(_i):
        D.train()
        xr = real[rng.randint(real.shape[0], (B,), gen, device)]
        with torch.no_grad():
            xf = G(rng.sample_latents(B, k, prior, generator=gen, device=device))
        dr, df = D(xr), D(xf)
        loss = F.softplus(-dr).mean() + F.softplus(df).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = 0.5 * ((dr > 0).float().mean() + (df < 0).float().mean())
        return {"loss_d": loss.detach(), "accuracy": acc.detach()}

    run.loop(cfg.steps, step, desc=f"corrector {pair.meta.get('name')}")
    D.eval()
    if run.step >= cfg.steps:
        _write(out, cfg, pair, arch_g, name, kwargs, G, D)
    return G, D


def _write(out, cfg, pair, arch_g, arch_d, kwargs_d, G, D) -> None:
    from ..models import export, make_pair

    meta = pair.meta
    corrected = make_pair(
        G,
        D,
        arch_g=arch_g,
        arch_d={"name": arch_d, "kwargs": kwargs_d},
        name=f"{meta.get('name') or 'model'}-corrector",
        latent_dim=pair.latent_dim,
        prior=meta.get("prior") or "normal",
        d_output="logit",
        output_shape=list(meta["output_shape"]),
        output_range=meta.get("output_range"),
        license=meta.get("license"),
        citation=meta.get("citation"),
        recipe=json.dumps({"trainer": "corrector", "config": config_dict(cfg)}),
        dataset=meta.get("dataset") or (cfg.real if not Path(cfg.real).suffix else None),
    )
    export(corrected, out)
