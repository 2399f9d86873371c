"""The SimpleCNN DCGAN-style generator and discriminator of xyfJASON/GANs-Implementations (``models/simple_cnn.py``),
laid out so that that repository's CIFAR-10 checkpoints (``gan_cifar10``, ``sngan_cifar10``, ``sngan_hinge_cifar10``,
``wgan_gp_cifar10``: ``torch.save(dict(G=G.state_dict(), D=D.state_dict()))``) load with ``strict=True``.

Generator, for ``dim_mults = [m_0, ..., m_{L-1}]`` and channel counts ``c_i = dim * m_i``::

    h_0 = ConvT_{4,1,0}(z viewed as [B, z_dim, 1, 1])                       -> [B, c_0, 4, 4]
    h_i = ConvT_{4,2,1}(ReLU(BN(h_{i-1})))            i = 1..L-1            -> [B, c_i, 2^(i+2), 2^(i+2)]
    x   = tanh(ConvT_{4,2,1}(ReLU(BN(h_{L-1}))))                            -> [B, out_dim, 2^(L+2), 2^(L+2)]

Discriminator (``with_sn``: every convolution's weight is ``W / sigma(W)``, ``sigma(W) = u^T W v`` with the stored
singular vector estimates ``u``, ``v`` of ``W`` reshaped to ``(out, -1)``, Miyato et al. 2018)::

    h_0 = Conv_{4,2,1}(x)
    h_i = Conv_{4,2,1}(LeakyReLU_0.2(N_i(h_{i-1})))   i = 1..L-1,  N_1 = identity, N_i = BN otherwise
    D(x) = Conv_{4,1,0}(LeakyReLU_0.2(BN(h_{L-1})))                         -> [B]

(``BN`` is the identity when ``with_bn=False``.) Module names follow the upstream ones (``first_conv``,
``layers.<i>.<0 norm | 1 act | 2 conv>``, ``last_conv.<0 norm | 1 act | 2 conv>``), and spectral norm is
``torch.nn.utils.parametrizations.spectral_norm`` (keys ``...parametrizations.weight.original``, ``...0._u``,
``...0._v``). In eval mode that parametrization runs no power iteration: it divides by ``u^T W v`` with the
stored ``u``, ``v``; in train mode it updates them by one power iteration per forward, as upstream trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import IntegrityError, ShapeError
from .registry import register_arch

__all__ = ["SimpleCNNGenerator", "SimpleCNNDiscriminator", "read_xyfjason_checkpoint"]


def _dims(dim: int, dim_mults: Sequence[int], name: str) -> list[int]:
    mults = [int(m) for m in dim_mults]
    if int(dim) < 1 or not mults or min(mults) < 1:
        raise ShapeError(
            f"{name}: expected dim >= 1 and a non-empty dim_mults of positive integers, "
            f"got dim={dim!r}, dim_mults={list(dim_mults)!r}"
        )
    return [int(dim) * m for m in mults]


@register_arch("xyfjason_simple_cnn_g")
class SimpleCNNGenerator(nn.Module):
    """``G(z)``: ``z [B, z_dim]`` (or ``[B, z_dim, 1, 1]``) to images ``[B, out_dim, 4*2^L, 4*2^L]`` (32x32 for the
    default three ``dim_mults``), in [-1, 1] when ``with_tanh``. The defaults are the CIFAR-10 runs' ``z_dim=100,
    dim=256, dim_mults=(4, 2, 1), out_dim=3, with_bn=True, with_tanh=True``."""

    def __init__(
        self,
        z_dim: int = 100,
        dim: int = 256,
        dim_mults: Sequence[int] = (4, 2, 1),
        out_dim: int = 3,
        with_bn: bool = True,
        with_tanh: bool = True,
    ):
        super().__init__()
        chans = _dims(dim, dim_mults, "SimpleCNNGenerator")
        self.z_dim = self.latent_dim = int(z_dim)
        self.out_dim, self.with_tanh = int(out_dim), bool(with_tanh)
        self.first_conv = nn.ConvTranspose2d(self.z_dim, chans[0], 4, 1, 0)
        self.layers = nn.ModuleList(
            [
                nn.Sequential(
                    nn.BatchNorm2d(cin) if with_bn else nn.Identity(), nn.ReLU(), nn.ConvTranspose2d(cin, cout, 4, 2, 1)
                )
                for cin, cout in zip(chans[:-1], chans[1:])
            ]
        )
        self.last_conv = nn.Sequential(
            nn.BatchNorm2d(chans[-1]) if with_bn else nn.Identity(),
            nn.ReLU(),
            nn.ConvTranspose2d(chans[-1], self.out_dim, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        if z.dim() != 4 or tuple(z.shape[1:]) != (self.z_dim, 1, 1):
            raise ShapeError(f"z: expected [B, {self.z_dim}] or [B, {self.z_dim}, 1, 1], got {list(z.shape)}")
        h = self.first_conv(z)
        for layer in self.layers:
            h = layer(h)
        h = self.last_conv(h)
        return torch.tanh(h) if self.with_tanh else h


@register_arch("xyfjason_simple_cnn_d")
class SimpleCNNDiscriminator(nn.Module):
    """``D(x)``: images ``[B, in_dim, 4*2^L, 4*2^L]`` to one raw output per sample, ``[B]`` (a logit for the
    vanilla-loss runs, a critic value for the WGAN-GP / hinge runs). Upstream returns ``x.squeeze()``, which for a
    batch of one is a 0-d tensor; this module always returns ``[B]``. The CIFAR-10 runs use ``in_dim=3, dim=256,
    dim_mults=(1, 2, 4), with_bn=True``, with ``with_sn=True`` for ``sngan_cifar10`` / ``sngan_hinge_cifar10`` and
    ``with_sn=False`` for ``gan_cifar10`` / ``wgan_gp_cifar10``."""

    def __init__(
        self,
        in_dim: int = 3,
        dim: int = 256,
        dim_mults: Sequence[int] = (1, 2, 4),
        with_bn: bool = True,
        with_sn: bool = False,
    ):
        super().__init__()
        chans = _dims(dim, dim_mults, "SimpleCNNDiscriminator")
        self.in_dim = int(in_dim)
        sn = spectral_norm if with_sn else (lambda m: m)
        self.first_conv = sn(nn.Conv2d(self.in_dim, chans[0], 4, 2, 1))
        self.layers = nn.ModuleList(
            [
                nn.Sequential(
                    nn.BatchNorm2d(cin) if with_bn and i > 0 else nn.Identity(),
                    nn.LeakyReLU(0.2),
                    sn(nn.Conv2d(cin, cout, 4, 2, 1)),
                )
                for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:]))
            ]
        )
        self.last_conv = nn.Sequential(
            nn.BatchNorm2d(chans[-1]) if with_bn else nn.Identity(),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(chans[-1], 1, 4, 1, 0)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_dim:
            raise ShapeError(f"x: expected images [B, {self.in_dim}, H, W], got {list(x.shape)}")
        h = self.first_conv(x)
        for layer in self.layers:
            h = layer(h)
        h = self.last_conv(h).flatten(1)
        if h.shape[1] != 1:
            raise ShapeError(
                f"x: expected images whose size the last 4x4 convolution maps to 1x1 "
                f"(32x32 for three dim_mults), got {list(x.shape)} giving {h.shape[1]} outputs each"
            )
        return h[:, 0]


def read_xyfjason_checkpoint(obj) -> tuple[dict, dict]:
    """``(G_state, D_state)`` from a loaded xyfJASON/GANs-Implementations checkpoint, the
    ``dict(G=G.state_dict(), D=D.state_dict())`` layout of its ``ckpt/*/model.pt`` files."""
    if not isinstance(obj, dict) or not isinstance(obj.get("G"), dict) or not isinstance(obj.get("D"), dict):
        got = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else type(obj).__name__
        raise IntegrityError(
            f"checkpoint: expected an xyfJASON dict(G=state_dict, D=state_dict), got {got}",
            expected="dict with G and D state dicts",
            got=got,
        )
    return obj["G"], obj["D"]
