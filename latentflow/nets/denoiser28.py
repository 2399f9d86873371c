"""A small conv denoiser for 28x28 images (the generated-score network of a Score GAN).

* ``tconv28_den``: EDM-preconditioned denoiser ``den(x̃, σ) = c_skip x̃ + c_out F(c_in x̃, log(σ)/4)`` on
  ``[B, C, 28, 28]`` with ``F`` a three-level U-Net (28 -> 14 -> 7 and back, skip connections by
  concatenation), each block ``conv3x3 - GroupNorm - FiLM(σ) - SiLU`` with a residual connection where the
  width is kept. GroupNorm normalises each sample on its own (no batch coupling); FiLM is
  ``h <- (1 + γ(σ)) ⊙ h + β(σ)`` from a depth-2 SiLU MLP on the Fourier embedding of ``log(σ)/4``
  (EDM's ``c_noise``). The last convolution starts at zero, so the untrained network is ``c_skip x̃``.
  About 0.1 M parameters at ``ch=16``: a CPU-sized stand-in for EDM's U-Net (width 64, 2 res-blocks).

Importing this module registers the architecture in ``latentflow.nets.registry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import OptionError
from ._common import _film, _keywords, edm_precond
from .registry import register_arch
from .time_cond import FourierEmbedding, SigmaNetKw, _rows

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: the defaults of ``tconv28_den``'s :class:`~latentflow.nets.time_cond.SigmaNetKw` keywords
DENOISER28_DEFAULTS: SigmaNetKw = {"n_freq": 32, "freq_scale": 16.0, "sigma_data": 0.5, "seed": 0}


def _groups(c: int) -> int:
    for g in (8, 4, 2, 1):
        if c % g == 0:
            return g
    return 1


class _Block(nn.Module):
    """``conv3x3 - GroupNorm - FiLM - SiLU`` (+ the input when ``cin == cout``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm = nn.GroupNorm(_groups(cout), cout)
        self.act = nn.SiLU()
        self.res = cin == cout
        self.cout = cout

    def forward(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        g, b = film[:, : self.cout, None, None], film[:, self.cout :, None, None]
        h = self.act((1 + g) * self.norm(self.conv(x)) + b)
        return x + h if self.res else h


@register_arch("tconv28_den")
class ConvDenoiser28(nn.Module):
    """EDM-preconditioned U-Net denoiser ``den(x̃ [B, C, 28, 28], σ [B]) -> [B, C, 28, 28]``; its score is
    ``(den - x̃)/σ²`` (``σ_data`` 0.5, images in [-1, 1]). The other keywords are
    :class:`~latentflow.nets.time_cond.SigmaNetKw`'s (defaults ``DENOISER28_DEFAULTS``)."""

    def __init__(self, channels: int = 1, ch: int = 16, **kw: Unpack[SigmaNetKw]):
        super().__init__()
        o = _keywords(self, kw, DENOISER28_DEFAULTS)
        if channels < 1 or ch < 1:
            raise OptionError(f"channels and ch must be >= 1; got {channels}, {ch}")
        self.channels, self.sigma_data = channels, float(o["sigma_data"])
        c1, c2, c3 = ch, 2 * ch, 4 * ch
        self.embed = FourierEmbedding(o["n_freq"], o["freq_scale"], o["seed"])
        e = self.embed.dim
        self.inp = nn.Conv2d(channels, c1, 3, 1, 1)
        self.e1, self.e2, self.mid = _Block(c1, c1), _Block(c2, c2), _Block(c3, c3)
        self.d1, self.d2 = nn.Conv2d(c1, c2, 4, 2, 1), nn.Conv2d(c2, c3, 3, 2, 1)  # 28 -> 14 -> 7
        self.u2 = nn.ConvTranspose2d(c3, c2, 4, 2, 1)  # 7 -> 14
        self.u1 = nn.ConvTranspose2d(c2, c1, 4, 2, 1)  # 14 -> 28
        self.dec2, self.dec1 = _Block(2 * c2, c2), _Block(2 * c1, c1)
        self.blocks = [self.e1, self.e2, self.mid, self.dec2, self.dec1]
        self.film = _film(e, 2 * sum(b.cout for b in self.blocks))
        self.out = nn.Conv2d(c1, channels, 3, 1, 1)
        for p in self.out.parameters():  # weight and bias: the untrained network outputs zero
            nn.init.zeros_(p)

    def F(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        mod = self.film(self.embed(c_noise).to(x.dtype))
        films, o = [], 0
        for b in self.blocks:
            films.append(mod[:, o : o + 2 * b.cout])
            o += 2 * b.cout
        h1 = self.e1(self.inp(x), films[0])  # 28
        h2 = self.e2(self.d1(h1), films[1])  # 14
        h = self.mid(self.d2(h2), films[2])  # 7
        h = self.dec2(torch.cat([self.u2(h), h2], 1), films[3])  # 14
        h = self.dec1(torch.cat([self.u1(h), h1], 1), films[4])  # 28
        return self.out(h)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = _rows(sigma, x, "sigma").reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in, c_noise = edm_precond(s, self.sigma_data)
        return c_skip * x + c_out * self.F(c_in * x, c_noise.flatten())

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """``σ``-smoothed score ``(den(x, σ) - x)/σ²``."""
        s = _rows(sigma, x, "sigma").reshape(-1, 1, 1, 1)
        return (self(x, sigma) - x) / s**2
