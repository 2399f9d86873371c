"""Networks for score models: EDM-preconditioned denoisers and noise-conditioned discriminators.

* ``FourierFeatures``: fixed random frequencies ``ω ~ N(0, scale²)`` (a buffer), ``e(c) = [cos 2πωc, sin 2πωc]``,
  fed EDM's ``c_noise = log(σ)/4``.
* ``EDMDenoiserMLP`` (``den_mlp``): ``D(x, σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ))`` on ``[B, n]``
  with Karras et al. 2022, Table 1: ``c_skip = σ_d²/(σ² + σ_d²)``, ``c_out = σ σ_d/sqrt(σ² + σ_d²)``,
  ``c_in = 1/sqrt(σ² + σ_d²)``, ``c_noise = log(σ)/4``; ``F`` is a SiLU MLP on ``concat(c_in x, e(c_noise))``.
  The last layer starts at zero, so the untrained denoiser is ``c_skip x``. ``x_freq > 0`` adds random Fourier
  features ``[cos 2π c_in x Ω, sin 2π c_in x Ω]``, ``Ω ~ N(0, x_scale²)``, of the input (an MLP on raw 2-D
  coordinates learns the sharp snap-to-mode of small σ slowly).
* ``NoiseDiscMLP`` (``dg_mlp``, the same input features) and ``NoiseDiscConv28`` (``dg_conv28``): time-conditioned discriminators
  ``d(x, σ) -> logit [B]`` (Kim et al. 2023) for 2-D points and ``[B, C, 28, 28]`` images; the conv net is three
  strided convs (28 -> 14 -> 7 -> 4) with GroupNorm and FiLM ``h <- (1 + γ(σ)) h + β(σ)``; the input is scaled
  by ``c_in(σ)`` so that every noise level reaches the network at unit scale.

The 28x28 denoiser is the package's ``tconv28_den`` (a small U-Net with the same preconditioning).
``SCORE_NETS`` maps the names above to their classes; ``build_score_net(name, **kwargs)`` builds one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import OptionError, ShapeError
from ._common import _film, _keywords, edm_precond
from .registry import register_arch
from .time_cond import FourierEmbedding, SigmaNetKw, _rows

if TYPE_CHECKING:
    from typing_extensions import Unpack


class SigmaMLPKw(SigmaNetKw, total=False):
    """:class:`~latentflow.nets.time_cond.SigmaNetKw` and the input features of ``den_mlp`` / ``dg_mlp``:
    ``x_freq`` random Fourier features of ``c_in x`` (0: none) with frequencies ``Ω ~ N(0, x_scale²)``."""

    x_freq: int
    x_scale: float


#: the defaults of this module's shared keywords (``x_freq`` / ``x_scale``: the MLPs' only)
SIGMA_NET_DEFAULTS: SigmaNetKw = {"n_freq": 32, "freq_scale": 4.0, "sigma_data": 0.5, "seed": 0}
SIGMA_MLP_DEFAULTS: SigmaMLPKw = {**SIGMA_NET_DEFAULTS, "x_freq": 0, "x_scale": 1.0}


def sigma_rows(sigma, x: torch.Tensor, name: str = "sigma") -> torch.Tensor:
    """A noise level as a ``[B]`` tensor on ``x``'s device and dtype (a scalar is broadcast)."""
    return _rows(sigma, x, name)


class FourierFeatures(FourierEmbedding):
    """``[B] -> [B, 2 n_freq]``: ``[cos 2πωc, sin 2πωc]`` with ``n_freq`` frequencies drawn from ``seed``
    (:class:`~latentflow.nets.time_cond.FourierEmbedding` with this family's defaults)."""

    def __init__(self, n_freq: int = 32, scale: float = 4.0, seed: int = 0):
        super().__init__(n_freq, scale, seed)


class InputFeatures(nn.Module):
    """``u [B, n] -> [u, cos 2π uΩ, sin 2π uΩ]`` with ``Ω [n, k] ~ N(0, scale²)`` fixed (``k = 0``: ``u``)."""

    freqs: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, in_dim: int, k: int = 0, scale: float = 1.0, seed: int = 0):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 0 or not scale > 0:
            raise OptionError(f"x_freq must be an int >= 0 and x_scale > 0; got {k!r}, {scale!r}")
        g = torch.Generator("cpu").manual_seed(int(seed) + 1)
        self.register_buffer("freqs", torch.randn(in_dim, k, generator=g) * scale)
        self.dim = in_dim + 2 * k

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.freqs.shape[1] == 0:
            return u
        a = 2 * math.pi * u @ self.freqs.to(u.dtype)
        return torch.cat([u, torch.cos(a), torch.sin(a)], 1)


def _mlp(dims: list[int], zero_last: bool = False) -> nn.Sequential:
    """``Linear-SiLU-...-Linear`` through ``dims``; ``zero_last``: the last layer starts at zero."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layer = nn.Linear(dims[i], dims[i + 1])
        layers.append(layer)
        if i < len(dims) - 2:
            layers.append(nn.SiLU())
        elif zero_last:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def _check_dims(**kw) -> None:
    for k, v in kw.items():
        if not isinstance(v, int) or v < 1:
            raise OptionError(f"{k} must be a positive int; got {v!r}")


class _SigmaMLP(nn.Module):
    """A SiLU MLP on ``concat(features(c_in(σ) x), e(c_noise(σ)))``: ``in_dim`` outputs when the subclass
    ``denoises`` (the last layer starting at zero), one logit otherwise. The other keywords are
    :class:`SigmaMLPKw`'s (defaults ``SIGMA_MLP_DEFAULTS``)."""

    denoises = False

    def __init__(self, in_dim: int = 2, width: int = 128, depth: int = 4, **kw: Unpack[SigmaMLPKw]):
        super().__init__()
        o = _keywords(self, kw, SIGMA_MLP_DEFAULTS)
        _check_dims(in_dim=in_dim, width=width, depth=depth)
        self.in_dim, self.sigma_data = in_dim, float(o["sigma_data"])
        self.embed = FourierFeatures(o["n_freq"], o["freq_scale"], o["seed"])
        self.feat = InputFeatures(in_dim, o["x_freq"], o["x_scale"], o["seed"])
        out = in_dim if self.denoises else 1
        self.net = _mlp([self.feat.dim + self.embed.dim] + [width] * (depth - 1) + [out], zero_last=self.denoises)

    def _net(self, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(F(c_in x, c_noise), c_skip, c_out)``, the preconditioning factors as ``[B, 1]``."""
        s = sigma_rows(sigma, x)
        c_skip, c_out, c_in, c_noise = edm_precond(s[:, None], self.sigma_data)
        return self.net(torch.cat([self.feat(c_in * x), self.embed(c_noise[:, 0]).to(x.dtype)], 1)), c_skip, c_out


class EDMDenoiserMLP(_SigmaMLP):
    """``D(x [B, in_dim], σ [B] or scalar) -> [B, in_dim]``, EDM-preconditioned; ``score = (D - x)/σ²``."""

    output = "denoised"
    denoises = True

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        F, c_skip, c_out = self._net(x, sigma)
        return c_skip * x + c_out * F


class NoiseDiscMLP(_SigmaMLP):
    """``d(x [B, in_dim], σ) -> [B]`` logit: a SiLU MLP on ``concat(c_in(σ) x, e(log(σ)/4))``."""

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return self._net(x, sigma)[0][:, 0]


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class NoiseDiscConv28(nn.Module):
    """``d(x [B, C, 28, 28], σ) -> [B]`` logit: conv4s2 - conv4s2 - conv3s2 (28 -> 14 -> 7 -> 4), each
    GroupNorm + FiLM(σ) + SiLU, then a linear head; the input is ``c_in(σ) x``. The other keywords are
    :class:`~latentflow.nets.time_cond.SigmaNetKw`'s (defaults ``SIGMA_NET_DEFAULTS``)."""

    def __init__(self, channels: int = 1, ch: int = 16, **kw: Unpack[SigmaNetKw]):
        super().__init__()
        o = _keywords(self, kw, SIGMA_NET_DEFAULTS)
        _check_dims(channels=channels, ch=ch)
        self.sigma_data = float(o["sigma_data"])
        self.embed = FourierFeatures(o["n_freq"], o["freq_scale"], o["seed"])
        self.widths = [ch, 2 * ch, 4 * ch]
        w = self.widths
        self.convs = nn.ModuleList(
            [nn.Conv2d(channels, w[0], 4, 2, 1), nn.Conv2d(w[0], w[1], 4, 2, 1), nn.Conv2d(w[1], w[2], 3, 2, 1)]
        )
        self.norms = nn.ModuleList([nn.GroupNorm(_groups(c), c) for c in w])
        e = self.embed.dim
        self.film = _film(e, 2 * sum(w))
        self.act = nn.SiLU()
        self.head = nn.Linear(w[-1] * 16, 1)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (28, 28):
            raise ShapeError(f"x must have shape [B, C, 28, 28]; got {tuple(x.shape)}")
        s = sigma_rows(sigma, x)
        _, _, c_in, c_noise = edm_precond(s, self.sigma_data)
        mod = self.film(self.embed(c_noise).to(x.dtype))
        h, o = c_in[:, None, None, None] * x, 0
        for conv, norm, w in zip(self.convs, self.norms, self.widths):
            g, b = mod[:, o : o + w, None, None], mod[:, o + w : o + 2 * w, None, None]
            o += 2 * w
            h = self.act((1 + g) * norm(conv(h)) + b)
        return self.head(h.flatten(1))[:, 0]


SCORE_NETS = {"den_mlp": EDMDenoiserMLP, "dg_mlp": NoiseDiscMLP, "dg_conv28": NoiseDiscConv28}
for _name, _cls in SCORE_NETS.items():  # also buildable by name like every other architecture
    register_arch(_name)(_cls)


def build_score_net(name: str, **kwargs) -> nn.Module:
    """The network ``SCORE_NETS[name](**kwargs)``."""
    if name not in SCORE_NETS:
        raise OptionError(f'Unknown score network "{name}". Available: {", ".join(sorted(SCORE_NETS))}.')
    return SCORE_NETS[name](**kwargs)
