"""Fully connected G and D for low-dimensional data (the 2-D mixtures of the DOT and DDLS experiments)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._common import _mlp
from .registry import register_arch


@register_arch("mlp_g")
class MLPGenerator(nn.Module):
    """Fully connected generator ``z [B, latent_dim] -> x [B, out_dim]`` (DOT's 2-D G: 3×256, LeakyReLU)."""

    def __init__(
        self, latent_dim: int = 2, hidden: Sequence[int] = (256, 256, 256), out_dim: int = 2, slope: float = 0.2
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = _mlp([latent_dim, *hidden, out_dim], slope)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@register_arch("mlp_d")
class MLPDiscriminator(nn.Module):
    """Fully connected discriminator ``x [B, in_dim] -> [B]`` (DOT's 2-D D: 3×512, LeakyReLU)."""

    def __init__(self, in_dim: int = 2, hidden: Sequence[int] = (512, 512, 512), slope: float = 0.2):
        super().__init__()
        self.net = _mlp([in_dim, *hidden, 1], slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))[:, 0]
