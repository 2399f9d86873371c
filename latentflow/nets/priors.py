"""Starting distributions of generator-free models, as modules whose buffers travel in a safetensors file.

``gaussian_prior``: ``x = mean + L z`` for ``z ~ N(0, I_d)``, reshaped to ``shape``, with ``mean [d]`` and
the lower-triangular ``L [d, d]`` (``L Lᵀ`` the covariance) as buffers. :meth:`GaussianPrior.fit` sets them
to the mean and the Cholesky factor of ``cov + eps I`` of a sample (e.g. the training images): the
maximum-entropy distribution with the data's first two moments, so a Discriminator Flow started there
spends no flow time matching the mean and the covariance (see ``latentflow.train.dflow``).

Pure torch modules; they import nothing of latentflow but its errors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import OptionError, ShapeError
from .registry import register_arch


@register_arch("gaussian_prior")
class GaussianPrior(nn.Module):
    """``z [n, d] -> x [n, *shape]``, ``x = mean + z Lᵀ`` (``d = prod(shape)``); identity ``L`` and zero mean
    until :meth:`fit` or a state dict sets them."""

    mean: torch.Tensor  # buffers (registered in __init__)
    scale_tril: torch.Tensor

    def __init__(self, shape=(1, 28, 28)):
        super().__init__()
        if not (
            isinstance(shape, (list, tuple))
            and shape
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        ):
            raise OptionError(f"shape must be a list of positive ints; got {shape!r}")
        self.shape = tuple(shape)
        self.dim = d = math.prod(self.shape)
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale_tril", torch.eye(d))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ShapeError(f"z must have shape [n, {self.dim}]; got {tuple(z.shape)}")
        L = self.scale_tril.to(z.dtype)
        return (self.mean.to(z.dtype) + z @ L.T).reshape((z.shape[0],) + self.shape)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, eps: float = 1e-3) -> GaussianPrior:
        """Set ``mean`` and ``L`` to the sample mean and ``cholesky(cov + eps I)`` of ``x [n, *shape]``
        (computed in float64); returns ``self``."""
        if x.dim() < 2 or tuple(x.shape[1:]) != self.shape:
            raise ShapeError(f"x must have shape [n, {', '.join(map(str, self.shape))}]; got {tuple(x.shape)}")
        if x.shape[0] < 2:
            raise ShapeError(f"x needs at least 2 samples to fit a covariance; got {x.shape[0]}")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise OptionError(f"eps must be a number > 0; got {eps!r}")
        flat = x.detach().reshape(x.shape[0], -1).to(torch.float64).cpu()
        mu = flat.mean(0)
        c = flat - mu
        cov = c.T @ c / (flat.shape[0] - 1) + float(eps) * torch.eye(self.dim, dtype=torch.float64)
        L = torch.linalg.cholesky(cov)
        self.mean.copy_(mu.to(self.mean))
        self.scale_tril.copy_(L.to(self.scale_tril))
        return self
