"""EDM training maths (Karras et al. 2022, Table 1): the training noise levels and the noised inputs.

Used by the denoiser and guidance-discriminator trainers; sampling maths lives in ``latentflow.scores``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import rng
from ..scores import _col

__all__ = ["sample_sigma_lognormal", "noised"]


def sample_sigma_lognormal(
    n: int, generator: torch.Generator, p_mean: float = -1.2, p_std: float = 1.2, device="cpu", dtype=torch.float32
) -> Tensor:
    """Training noise levels ``ln σ ~ N(P_mean, P_std²)`` (Karras et al. 2022, Table 1), shape ``[n]``."""
    return (p_mean + p_std * rng.randn((n,), generator, device, dtype)).exp()


def noised(y: Tensor, sigma: Tensor, generator: torch.Generator) -> Tensor:
    """``y + σ n`` with ``n ~ N(0, I)`` from ``generator`` (``σ`` of shape ``[B]``)."""
    return y + _col(sigma, y) * rng.randn(tuple(y.shape), generator, y.device, y.dtype)
