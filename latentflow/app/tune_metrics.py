"""Metrics of ``tune``: Fréchet distance and KID on feature rows, exact W1 on 2-D points, default features.

``frechet``: ``||μ_a - μ_b||² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^{1/2})`` between Gaussians fitted to the rows;
``kid``: unbiased MMD² with the kernel ``k(a, b) = (a·b / F + 1)³``, averaged over random subsets.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ShapeError

EMD_MAX_N = 2000  # exact W1 is cubic in n


def frechet(fa: Tensor, fb: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the feature rows ``fa`` and ``fb``."""
    import numpy as np
    from scipy import linalg

    a, b = fa.double().cpu().numpy(), fb.double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(ca @ cb)
    if not np.isfinite(covmean).all():
        off = np.eye(ca.shape[0]) * 1e-6
        covmean = linalg.sqrtm((ca + off) @ (cb + off))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * np.real(covmean)))


def kid(fa: Tensor, fb: Tensor, *, subsets: int = 10, size: int = 1000, generator: int = 0) -> float:
    """Unbiased MMD² with the cubic polynomial kernel, averaged over random subsets (KID)."""
    a, b = fa.double(), fb.double()
    m = min(size, a.shape[0], b.shape[0])
    gen = torch.Generator().manual_seed(generator)
    d, vals = a.shape[1], []
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=gen)[:m]]
        y = b[torch.randperm(b.shape[0], generator=gen)[:m]]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        vals.append(float(off - 2 * kxy.mean()))
    return sum(vals) / len(vals)


def default_features(x: Tensor) -> Callable[[Tensor], Tensor] | None:
    """Raw coordinates for low-dimensional data; the Fashion-MNIST classifier's features for 1x28x28
    images in [-1, 1]; otherwise None (pass ``features``)."""
    if x.dim() == 2 and x.shape[1] <= 16:
        return lambda t: t.flatten(1)
    if x.dim() == 4 and tuple(x.shape[1:]) == (1, 28, 28):
        from ..metrics import fmnist_classifier as fc
        from ..metrics import to_uint8

        net = fc.load_classifier()

        def feats(t):
            with torch.no_grad():
                return torch.cat(
                    [net.features(fc.preprocess(to_uint8(t[i : i + 1000].cpu()))) for i in range(0, t.shape[0], 1000)]
                )

        return feats
    return None


def scorer(metric: str, features, real_val: Tensor, seed: int) -> Callable[[Tensor], float]:
    if metric == "emd":
        from ..metrics import emd

        if real_val.dim() != 2 or real_val.shape[1] != 2:
            raise ShapeError(f'metric "emd" needs 2-D points [N, 2]; real has shape {tuple(real_val.shape)}')
        return lambda x: emd(x, real_val, n=min(x.shape[0], EMD_MAX_N), generator=seed)
    fr = features(real_val)
    return (lambda x: frechet(features(x), fr)) if metric == "fid" else (lambda x: kid(features(x), fr, generator=seed))
