"""Small time- and noise-conditioned networks for the particle-model trainers (Discriminator Flow, Score GAN,
discriminator-guided Langevin).

* ``FourierEmbedding``: fixed random frequencies ``ω ~ N(0, scale²)`` (a buffer, so checkpoints carry
  it), ``e(t) = [cos 2πωt, sin 2πωt]``.
* ``tmlp_d``: time-conditioned MLP discriminator ``f(x [B, n], t [B]) -> [B]`` (embedding concatenated to
  the input, LeakyReLU 0.2, normal(0.02) init, no normalisation: BatchNorm would couple the particles).
* ``nmlp_d``: the same network conditioned on a noise level ``σ`` through the embedding of ``log(σ)/4``
  (EDM's ``c_noise``), for discriminator-guided Langevin.
* ``mlp_den``: EDM-preconditioned MLP denoiser ``den(x̃, σ)`` whose score is ``(den - x̃)/σ²`` (the
  generated-score network of the Score GAN).
* ``tconv28_d``: small time-conditioned conv discriminator for 28x28 images, FiLM-modulated
  (``h <- (1 + γ(t)) ⊙ h + β(t)`` before each activation).

``depth`` counts the linear layers of an MLP (``depth - 1`` hidden activations). The keywords that the
time- and noise-conditioned nets of the package share are declared once, here: :class:`EmbedKw`,
:class:`TimeNetKw` and :class:`SigmaNetKw`; each family keeps its defaults in one table next to its nets.
Importing this module registers the architectures in ``latentflow.nets.registry``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypedDict

import torch
from torch import nn

from ..errors import OptionError, ShapeError
from ._common import _film, _init_weights, _keywords, _mlp, edm_precond
from .registry import register_arch

if TYPE_CHECKING:
    from typing_extensions import Unpack


class EmbedKw(TypedDict, total=False):
    """The keywords of the Fourier embedding ``e(c) = [cos 2πωc, sin 2πωc]`` of the time or noise level,
    taken by every conditioned net of the package after its own (the defaults are its family's):

    * ``n_freq``: the number of frequencies ``ω`` (``e`` has ``2 n_freq`` features);
    * ``freq_scale``: their spread, ``ω ~ N(0, freq_scale²)``;
    * ``seed``: the seed ``ω`` (and any other fixed random features) are drawn from, so that the same
      keywords give the same embedding; the layers' weights are drawn from torch's global stream."""

    n_freq: int
    freq_scale: float
    seed: int


class TimeNetKw(EmbedKw, total=False):
    """:class:`EmbedKw` and the keywords of this module's nets (``tmlp_d``, ``nmlp_d``, ``mlp_den``,
    ``tconv28_d``), defaults in ``TIME_NET_DEFAULTS``:

    * ``slope``: the LeakyReLU slope of the hidden activations (0: ReLU);
    * ``init_std``: when > 0, the linear / conv weights are drawn from ``normal(0, init_std)`` and the biases
      zeroed (PyTorch's default initialisation otherwise)."""

    slope: float
    init_std: float


class SigmaNetKw(EmbedKw, total=False):
    """:class:`EmbedKw` and ``sigma_data``, the data's standard deviation ``σ_d`` of the EDM preconditioning
    (Karras et al. 2022, Table 1), for the noise-conditioned nets of ``score_nets`` and ``denoiser28``."""

    sigma_data: float


#: the defaults of :class:`TimeNetKw` (``mlp_den``'s ``init_std`` is 0)
TIME_NET_DEFAULTS: TimeNetKw = {"n_freq": 64, "freq_scale": 16.0, "slope": 0.2, "init_std": 0.02, "seed": 0}


def _rows(c, x: torch.Tensor, name: str) -> torch.Tensor:
    """A time / noise level as a ``[B]`` tensor on ``x``'s device and dtype (scalar broadcast)."""
    B = x.shape[0]
    c = torch.as_tensor(c, device=x.device, dtype=x.dtype)
    if c.dim() == 0:
        return c.expand(B)
    if c.dim() == 2 and c.shape[1] == 1:
        c = c[:, 0]
    if c.shape != (B,):
        raise ShapeError(f"{name} must be a scalar or a tensor of shape ({B},); got shape {tuple(c.shape)}")
    return c


class FourierEmbedding(nn.Module):
    """``e(t) = [cos 2πωt, sin 2πωt]`` with ``n_freq`` fixed frequencies ``ω ~ N(0, scale²)`` drawn from
    ``seed`` (so the same kwargs give the same embedding); ``[B] -> [B, 2 n_freq]``."""

    freqs: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, n_freq: int = 64, scale: float = 16.0, seed: int = 0):
        super().__init__()
        if n_freq < 1 or not scale > 0:
            raise OptionError(f"FourierEmbedding needs n_freq >= 1 and scale > 0; got {n_freq}, {scale}")
        g = torch.Generator("cpu").manual_seed(int(seed))
        self.register_buffer("freqs", torch.randn(n_freq, generator=g) * scale)
        self.dim = 2 * n_freq

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a = 2 * math.pi * t.reshape(-1, 1).to(self.freqs.dtype) * self.freqs
        return torch.cat([torch.cos(a), torch.sin(a)], 1)


class _FourierMLP(nn.Module):
    """An MLP on ``concat(x, e(c))``: ``in_dim`` outputs when the subclass ``denoises``, one otherwise; the
    other keywords are :class:`TimeNetKw`'s."""

    denoises = False

    def __init__(self, in_dim: int = 2, width: int = 512, depth: int = 4, **kw: Unpack[TimeNetKw]):
        super().__init__()
        o = _keywords(self, kw, TIME_NET_DEFAULTS)
        if depth < 1 or width < 1 or in_dim < 1:
            raise OptionError(f"in_dim, width and depth must be >= 1; got {in_dim}, {width}, {depth}")
        self.in_dim = in_dim
        self.embed = FourierEmbedding(o["n_freq"], o["freq_scale"], o["seed"])
        out = in_dim if self.denoises else 1
        self.net = _mlp([in_dim + self.embed.dim] + [width] * (depth - 1) + [out], o["slope"])
        if o["init_std"] > 0:
            _init_weights(self.net.modules(), "normal", o["init_std"])


@register_arch("tmlp_d")
class TimeMLPDiscriminator(_FourierMLP):
    """``f(x [B, in_dim], t [B]) -> [B]``: MLP on ``concat(x, e(t))`` (Discriminator Flow's 2-D Gaussian-mixture network)."""

    def cond(self, t, x):
        return _rows(t, x, "t")

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        c = self.cond(t, x)
        return self.net(torch.cat([x.flatten(1), self.embed(c).to(x.dtype)], 1))[:, 0]


@register_arch("nmlp_d")
class NoiseMLPDiscriminator(TimeMLPDiscriminator):
    """``d(x [B, in_dim], σ [B]) -> [B]``: the ``tmlp_d`` network fed ``log(σ)/4`` instead of ``t``.

    With ``ref_std > 0`` the network ``logit(x, σ)`` is trained against a reference ``N(0, ref_std² I)``
    noised to ``N(0, (ref_std² + σ²) I)``, and ``forward`` adds that reference's log-density back:
    ``d(x, σ) = logit(x, σ) - ||x||²/(2(ref_std² + σ²))``, so ``∇_x d ≈ ∇ log p_data^σ`` (a score, which
    is what noisy annealed Langevin needs). The other keywords are ``tmlp_d``'s, with its defaults."""

    def __init__(self, *, ref_std: float = 0.0, **tmlp_kwargs):
        super().__init__(**tmlp_kwargs)
        if ref_std < 0:
            raise OptionError(f"ref_std must be >= 0; got {ref_std!r}")
        self.ref_std = float(ref_std)

    def cond(self, sigma, x):
        s = _rows(sigma, x, "sigma")
        return torch.log(s.clamp_min(1e-12)) / 4

    def logit(self, x: torch.Tensor, sigma) -> torch.Tensor:
        return super().forward(x, sigma)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        out = self.logit(x, sigma)
        if self.ref_std > 0:
            s = _rows(sigma, x, "sigma")
            out = out - x.flatten(1).pow(2).sum(1) / (2 * (self.ref_std**2 + s**2))
        return out


@register_arch("mlp_den")
class MLPDenoiser(_FourierMLP):
    """EDM-preconditioned denoiser ``den(x̃, σ) = c_skip x̃ + c_out F(c_in x̃, e(log(σ)/4))`` on ``[B, n]``;
    ``score(x̃, σ) = (den - x̃)/σ²`` (Karras et al. 2022; ``σ_data`` 0.5). The other keywords are ``tmlp_d``'s,
    with its defaults but ``init_std`` 0 (PyTorch's default initialisation)."""

    denoises = True

    def __init__(self, *, sigma_data: float = 0.5, init_std: float = 0.0, **tmlp_kwargs):
        super().__init__(init_std=init_std, **tmlp_kwargs)
        self.sigma_data = float(sigma_data)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = _rows(sigma, x, "sigma").reshape(-1, *([1] * (x.dim() - 1)))
        c_skip, c_out, c_in, c_noise = edm_precond(s, self.sigma_data)
        e = self.embed(c_noise.flatten()).to(x.dtype)
        F_x = self.net(torch.cat([(c_in * x).flatten(1), e], 1)).reshape(x.shape)
        return c_skip * x + c_out * F_x

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """``σ``-smoothed score ``(den(x, σ) - x)/σ²``."""
        s = _rows(sigma, x, "sigma").reshape(-1, *([1] * (x.dim() - 1)))
        return (self(x, sigma) - x) / s**2


@register_arch("tconv28_d")
class TimeConv28Discriminator(nn.Module):
    """``f(x [B, C, 28, 28], t [B]) -> [B]``: three strided convs (28 -> 14 -> 7 -> 4), each FiLM-modulated
    before LeakyReLU 0.2 by an affine map from a depth-2 SiLU MLP on the time embedding; no BN. The other
    keywords are :class:`TimeNetKw`'s."""

    def __init__(self, channels: int = 1, ch: int = 32, **kw: Unpack[TimeNetKw]):
        super().__init__()
        o = _keywords(self, kw, TIME_NET_DEFAULTS)
        self.embed = FourierEmbedding(o["n_freq"], o["freq_scale"], o["seed"])
        widths = [ch, 2 * ch, 4 * ch]
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(channels, widths[0], 4, 2, 1),
                nn.Conv2d(widths[0], widths[1], 4, 2, 1),
                nn.Conv2d(widths[1], widths[2], 3, 2, 1),
            ]
        )
        e = self.embed.dim
        self.film = _film(e, 2 * sum(widths))  # starts as the unmodulated network
        self.widths = widths
        self.act = nn.LeakyReLU(o["slope"])
        self.head = nn.Linear(widths[-1] * 4 * 4, 1)
        if o["init_std"] > 0:
            _init_weights([*self.convs, self.head], "normal", o["init_std"])

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        c = _rows(t, x, "t")
        mod = self.film(self.embed(c).to(x.dtype))
        h, o = x, 0
        for conv, w in zip(self.convs, self.widths):
            h = conv(h)
            g, b = mod[:, o : o + w], mod[:, o + w : o + 2 * w]
            o += 2 * w
            h = self.act((1 + g[:, :, None, None]) * h + b[:, :, None, None])
        return self.head(h.flatten(1))[:, 0]
