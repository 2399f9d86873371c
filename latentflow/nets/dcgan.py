"""DCGAN (Radford et al. 2016): transposed convolutions 4x4 stride 2 with BatchNorm + ReLU in G, strided
convolutions with LeakyReLU(0.2) in D, tanh output, no pooling and no hidden dense layers; plus a small
28x28 pair for Fashion-MNIST."""

from __future__ import annotations

from functools import partialmethod
from typing import TypeVar

import torch
from torch import nn

from ..errors import ManifestError
from ._common import _act, _sn
from .registry import register_arch

_M = TypeVar("_M", bound=nn.Module)


class DCGANGenerator(nn.Module):
    """``z [B, latent_dim] -> x [B, channels, size, size]`` in [-1, 1]; size 32 or 64 (4x4 seed, doubling)."""

    def __init__(self, size: int = 32, latent_dim: int = 100, ch: int = 64, channels: int = 3):
        super().__init__()
        if size not in (32, 64):
            raise ManifestError(f"DCGAN size must be 32 or 64; got {size}")
        self.latent_dim, self.size, self.channels = latent_dim, size, channels
        n_up = {32: 3, 64: 4}[size]
        widths = [ch * 2**i for i in reversed(range(n_up))]  # e.g. 32: [256, 128, 64]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """``x [B, channels, size, size] -> [B]`` logits. ``norm``: "bn" (DCGAN), "sn" (spectral norm) or "none".
    ``sigmoid=True`` ends in a sigmoid (the original DCGAN head): D then returns probabilities
    (``d_output: prob``); the weights are those of the logit head, so a D trained on logits is exported
    with ``sigmoid=True`` unchanged."""

    def __init__(
        self,
        size: int = 32,
        ch: int = 64,
        channels: int = 3,
        norm: str = "bn",
        slope: float = 0.2,
        sigmoid: bool = False,
    ):
        super().__init__()
        self.sigmoid = bool(sigmoid)
        if size not in (32, 64):
            raise ManifestError(f"DCGAN size must be 32 or 64; got {size}")
        if norm not in ("bn", "sn", "none"):
            raise ManifestError(f'norm must be one of bn, sn, none; got "{norm}"')
        n_down = {32: 3, 64: 4}[size]
        widths = [ch * 2**i for i in range(n_down)]  # e.g. 32: [64, 128, 256]
        sn = norm == "sn"
        layers: list[nn.Module] = [_sn(nn.Conv2d(channels, widths[0], 4, 2, 1), sn), _act(slope)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers.append(_sn(nn.Conv2d(a, b, 4, 2, 1, bias=norm != "bn"), sn))
            if norm == "bn":
                layers.append(nn.BatchNorm2d(b))
            layers.append(_act(slope))
        layers.append(_sn(nn.Conv2d(widths[-1], 1, 4, 1, 0), sn))  # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x).flatten(1)[:, 0]
        return torch.sigmoid(out) if self.sigmoid else out


def _sized(base: type[_M], size: int, arch: str) -> type[_M]:
    """``base`` with its ``size`` fixed (the other arguments and their defaults are ``base``'s), registered
    as ``arch``."""
    name = f"DCGAN{size}{base.__name__.removeprefix('DCGAN')}"
    body = {"__init__": partialmethod(base.__init__, size), "__module__": __name__, "__qualname__": name}
    body["__doc__"] = f":class:`{base.__name__}` of size {size}x{size} (``{arch}``)."
    return register_arch(arch)(type(name, (base,), body))


DCGAN32Generator = _sized(DCGANGenerator, 32, "dcgan32_g")
DCGAN32Discriminator = _sized(DCGANDiscriminator, 32, "dcgan32_d")
DCGAN64Generator = _sized(DCGANGenerator, 64, "dcgan64_g")
DCGAN64Discriminator = _sized(DCGANDiscriminator, 64, "dcgan64_d")


@register_arch("dcgan28_g")
class DCGAN28Generator(nn.Module):
    """Small 28x28 generator for Fashion-MNIST: ``z [B, 64] -> dense 7x7x2ch -> 14x14xch -> [B, 1, 28, 28]``
    in [-1, 1] (tanh). About 0.2 M parameters with ``ch=32``, so it trains on 2 CPU cores."""

    def __init__(self, latent_dim: int = 64, ch: int = 32, channels: int = 1):
        super().__init__()
        self.latent_dim, self.ch, self.channels = latent_dim, ch, channels
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 2 * ch * 7 * 7, bias=False), nn.BatchNorm1d(2 * ch * 7 * 7), nn.ReLU()
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(),
            nn.ConvTranspose2d(ch, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], 2 * self.ch, 7, 7))


@register_arch("dcgan28_d")
class DCGAN28Discriminator(nn.Module):
    """28x28 discriminator without BatchNorm (so D(x) of one sample never depends on the batch):
    two 4x4 stride-2 convolutions with LeakyReLU, a dense layer to one logit; ``[B]`` logits."""

    def __init__(self, ch: int = 32, channels: int = 1, sn: bool = True, slope: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(
            _sn(nn.Conv2d(channels, ch, 4, 2, 1), sn), _act(slope), _sn(nn.Conv2d(ch, 2 * ch, 4, 2, 1), sn), _act(slope)
        )
        self.fc = _sn(nn.Linear(2 * ch * 7 * 7, 1), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x).flatten(1))[:, 0]
