"""Architectures by name: a plain dict registry, ``ARCHITECTURES[name](**kwargs) -> nn.Module``.

The manifest names an architecture and its kwargs; ``build(name, **kwargs)`` makes the module.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import ManifestError

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_arch(name: str):
    def deco(cls):
        if name in ARCHITECTURES:
            raise ManifestError(f'architecture "{name}" is already registered')
        ARCHITECTURES[name] = cls
        return cls
    return deco


def build(name: str, **kwargs) -> nn.Module:
    if name not in ARCHITECTURES:
        raise ManifestError(f'Unknown architecture "{name}". Available: {", ".join(sorted(ARCHITECTURES))}.')
    try:
        return ARCHITECTURES[name](**kwargs)
    except TypeError as e:
        raise ManifestError(f'architecture "{name}" cannot be built with {kwargs}: {e}') from e


def _mlp(sizes: Sequence[int], slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope) if slope > 0 else nn.ReLU())
    return nn.Sequential(*layers)


@register_arch("mlp_g")
class MLPGenerator(nn.Module):
    """Fully connected generator ``z [B, latent_dim] -> x [B, out_dim]`` (DOT's 2-D G: 3×256, LeakyReLU)."""

    def __init__(self, latent_dim: int = 2, hidden: Sequence[int] = (256, 256, 256), out_dim: int = 2,
                 slope: float = 0.2):
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
