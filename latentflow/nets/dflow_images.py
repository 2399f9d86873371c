"""Time-conditioned conv discriminators for Discriminator Flow on images (Franceschi et al. 2023, App. D.2).

* ``TimeEmbedding``: ``t [B] -> [B, dim]`` for ``t ∈ [0, 1]``, one of

  - ``"fourier"``: ``e(t) = [cos 2πωt, sin 2πωt]`` with ``n_freq`` fixed ``ω ~ N(0, scale²)`` (a buffer).
    Seed 000 uses ``scale = 16``: neighbouring grid times ``i/N`` then get unrelated embeddings (the phase
    moves by about ``2π·16/N`` per step), so D learns ``N`` separate critics and is undefined between
    grid times. ``scale ≈ 1`` (a few periods over ``[0, 1]`` at most) keeps ``e`` smooth in ``t``, so one
    critic is shared across times and any sampling grid works.
  - ``"learned"``: ``e(t) = Σ_k hat_k(t) E_k``, the piecewise-linear interpolation of a learned table
    ``E [n_knots, dim]`` at the knots ``k/(n_knots - 1)``: continuous in ``t``, learned from the data.

* ``TimeConvDiscriminator`` (``tconv_d``): DCGAN-style critic ``f(x [B, C, S, S], t [B]) -> [B]`` for
  ``S ∈ {28, 32}``: three strided convolutions (28: 28 -> 14 -> 7 -> 4 with kernels 4, 4, 3; 32: 32 -> 16
  -> 8 -> 4 with kernel 4) of widths ``ch, 2ch, 4ch``, each output modulated channel-wise before the
  LeakyReLU, ``h <- (1 + γ(t)) ⊙ h + β(t)``, by a depth-2 SiLU MLP (hidden width twice the embedding's) on
  ``e(t)``; a last 4x4 convolution to one value (DCGAN's head). No normalisation layer (BatchNorm would
  couple the particles of one batch). ``down="avgpool"`` replaces each strided convolution by a 3x3
  convolution and a 2x2 average pool: the input gradient, the particles' velocity, then upsamples by
  box filters instead of stride-2 transposed convolutions (no checkerboard pattern). ``init="orthogonal"`` with ``gain = 1.41`` is Franceschi et al. 2023's MNIST
  choice (Table 4) and gives D an O(1) input gradient from the first step; ``"normal"`` draws
  ``N(0, gain²)`` (0.02 for the seed's other settings). The FiLM output layer starts at zero, so the
  untrained critic does not depend on ``t``.

Pure torch modules; they import nothing of latentflow but its errors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import OptionError, ShapeError
from ._common import _film, _init_weights, _keywords
from .registry import register_arch
from .time_cond import EmbedKw, _rows

if TYPE_CHECKING:
    from typing_extensions import Unpack

EMBEDDINGS = ("fourier", "learned")


class TimeConvKw(EmbedKw, total=False):
    """``tconv_d``'s keywords after ``channels``, ``size`` and ``ch`` (defaults in ``TIME_CONV_DEFAULTS``; the
    module's docstring tells what each choice does): :class:`~latentflow.nets.time_cond.EmbedKw` (for
    ``"learned"``, ``n_freq`` sets the width and ``seed`` the initial table), ``embed`` (``"fourier"`` or
    ``"learned"``), ``n_knots`` (the learned table's rows), ``init`` (``"orthogonal"`` or ``"normal"``) with
    its ``gain`` (the std for ``"normal"``), ``slope`` (LeakyReLU's) and ``down`` (``"stride"`` or
    ``"avgpool"``)."""

    embed: str
    n_knots: int
    init: str
    gain: float
    slope: float
    down: str


TIME_CONV_DEFAULTS: TimeConvKw = {
    "embed": "fourier",
    "n_freq": 64,
    "freq_scale": 1.0,
    "n_knots": 17,
    "init": "orthogonal",
    "gain": 1.41,
    "slope": 0.2,
    "down": "stride",
    "seed": 0,
}


class TimeEmbedding(nn.Module):
    """``t [B] -> [B, dim]``: ``"fourier"`` (``dim = 2 n_freq``, ``ω ~ N(0, scale²)`` from ``seed``) or
    ``"learned"`` (``dim = 2 n_freq``, a table of ``n_knots`` rows interpolated linearly in ``t``)."""

    freqs: torch.Tensor  # a buffer (registered in __init__ for "fourier")

    def __init__(self, kind: str = "fourier", n_freq: int = 64, scale: float = 1.0, n_knots: int = 17, seed: int = 0):
        super().__init__()
        if kind not in EMBEDDINGS:
            raise OptionError(f"embed must be one of {', '.join(EMBEDDINGS)}; got {kind!r}")
        if isinstance(n_freq, bool) or not isinstance(n_freq, int) or n_freq < 1:
            raise OptionError(f"n_freq must be an int >= 1; got {n_freq!r}")
        self.kind, self.dim = kind, 2 * n_freq
        if kind == "fourier":
            if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
                raise OptionError(f"freq_scale must be a finite number > 0; got {scale!r}")
            g = torch.Generator("cpu").manual_seed(int(seed))
            self.register_buffer("freqs", torch.randn(n_freq, generator=g) * float(scale))
        else:
            if isinstance(n_knots, bool) or not isinstance(n_knots, int) or n_knots < 2:
                raise OptionError(f"n_knots must be an int >= 2; got {n_knots!r}")
            g = torch.Generator("cpu").manual_seed(int(seed))
            self.table = nn.Parameter(torch.randn(n_knots, self.dim, generator=g))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1)
        if self.kind == "fourier":
            a = 2 * math.pi * t[:, None].to(self.freqs.dtype) * self.freqs
            return torch.cat([torch.cos(a), torch.sin(a)], 1)
        K = self.table.shape[0]
        u = t.to(self.table.dtype).clamp(0.0, 1.0) * (K - 1)
        lo = u.floor().clamp(max=K - 2).long()
        w = (u - lo.to(u.dtype))[:, None]
        return (1 - w) * self.table[lo] + w * self.table[lo + 1]


@register_arch("tconv_d")
class TimeConvDiscriminator(nn.Module):
    """``f(x [B, C, S, S], t [B]) -> [B]`` (``S`` = ``size``, 28 or 32): a FiLM-modulated DCGAN critic; the
    other keywords are :class:`TimeConvKw`'s."""

    def __init__(self, channels: int = 1, size: int = 28, ch: int = 32, **kw: Unpack[TimeConvKw]):
        super().__init__()
        o = _keywords(self, kw, TIME_CONV_DEFAULTS)
        init, gain, down = o["init"], o["gain"], o["down"]
        for k, v in (("channels", channels), ("ch", ch)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise OptionError(f"{k} must be an int >= 1; got {v!r}")
        if size not in (28, 32):
            raise OptionError(f"size must be 28 or 32; got {size!r}")
        if init not in ("orthogonal", "normal"):
            raise OptionError(f'init must be "orthogonal" or "normal"; got {init!r}')
        if down not in ("stride", "avgpool"):
            raise OptionError(f'down must be "stride" or "avgpool"; got {down!r}')
        if not (isinstance(gain, (int, float)) and gain > 0):
            raise OptionError(f"gain must be a number > 0; got {gain!r}")
        self.channels, self.size = channels, size
        self.embed = TimeEmbedding(o["embed"], o["n_freq"], o["freq_scale"], o["n_knots"], o["seed"])
        w = [ch, 2 * ch, 4 * ch]
        k3 = 3 if size == 28 else 4
        if down == "stride":
            self.convs = nn.ModuleList(
                [nn.Conv2d(channels, w[0], 4, 2, 1), nn.Conv2d(w[0], w[1], 4, 2, 1), nn.Conv2d(w[1], w[2], k3, 2, 1)]
            )
        else:  # 3x3 stride-1 convolutions, each followed by a 2x2 average pool (ceil: 7 -> 4)
            self.convs = nn.ModuleList(
                [nn.Conv2d(channels, w[0], 3, 1, 1), nn.Conv2d(w[0], w[1], 3, 1, 1), nn.Conv2d(w[1], w[2], 3, 1, 1)]
            )
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if down == "avgpool" else None
        self.head = nn.Conv2d(w[2], 1, 4, 1, 0)
        self.widths = w
        self.act = nn.LeakyReLU(o["slope"])
        e = self.embed.dim
        self.film = _film(e, 2 * sum(w))  # the untrained critic does not depend on t
        _init_weights(list(self.convs) + [self.head], init, float(gain))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.channels, self.size, self.size):
            raise ShapeError(f"x must have shape [B, {self.channels}, {self.size}, {self.size}]; got {tuple(x.shape)}")
        c = _rows(t, x, "t")
        mod = self.film(self.embed(c).to(x.dtype))
        h, o = x, 0
        for conv, w in zip(self.convs, self.widths):
            h = conv(h)
            g, b = mod[:, o : o + w, None, None], mod[:, o + w : o + 2 * w, None, None]
            o += 2 * w
            h = self.act((1 + g) * h + b)
            if self.pool is not None:
                h = self.pool(h)
        return self.head(h).flatten(1)[:, 0]
