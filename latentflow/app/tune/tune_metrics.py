"""Metrics of ``tune``: Fréchet distance and KID on feature rows, exact W1 on 2-D points, and the scorer.

``frechet``: ``||μ_a - μ_b||² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^{1/2})`` between Gaussians fitted to the rows;
``kid``: unbiased MMD² with the kernel ``k(a, b) = (a·b / F + 1)³``, averaged over random subsets.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from ...errors import LatentflowError, ShapeError

EMD_MAX_N = 2000  # exact W1 is cubic in n


def frechet(fa: Tensor, fb: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the feature rows ``fa`` and ``fb``."""
    import numpy as np
    from scipy import linalg

    a, b = fa.detach().double().cpu().numpy(), fb.detach().double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(ca @ cb)
    if not np.isfinite(covmean).all():
        off = np.eye(ca.shape[0]) * 1e-6
        covmean = linalg.sqrtm((ca + off) @ (cb + off))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * np.real(covmean)))


def kid(fa: Tensor, fb: Tensor, *, subsets: int = 10, size: int = 1000, generator: int = 0) -> float:
    """Unbiased MMD² with the cubic polynomial kernel, averaged over random subsets (KID)."""
    a, b = fa.detach().double().cpu(), fb.detach().double().cpu()
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


class FrechetRef:
    """The Fréchet distance to fixed reference rows ``R`` (n_r of them), fast for many candidates and many
    features: ``tr (Σ_r Σ_x)^{1/2}`` is the sum of the square roots of the eigenvalues of ``C Cᵀ`` with
    ``C = A R̄ᵀ / √((n_x - 1)(n_r - 1))`` (``A``, ``R̄``: the centred rows), which has the non-zero eigenvalues
    of ``Σ_x^{1/2} Σ_r Σ_x^{1/2}``; no F×F matrix is formed."""

    def __init__(self, fr: Tensor):
        r = fr.detach().double().cpu()
        self.mu = r.mean(0)
        self.r = (r - self.mu) / math.sqrt(max(r.shape[0] - 1, 1))
        self.tr = float((self.r * self.r).sum())

    def __call__(self, fx: Tensor) -> float:
        x = fx.detach().double().cpu()
        mu = x.mean(0)
        a = (x - mu) / math.sqrt(max(x.shape[0] - 1, 1))
        c = a @ self.r.T
        m = c @ c.T if c.shape[0] <= c.shape[1] else c.T @ c
        ev = torch.linalg.eigvalsh((m + m.T) / 2)
        ev = torch.where(ev > 1e-12 * ev.abs().max(), ev, torch.zeros_like(ev))  # rounding noise of zero
        return float(((mu - self.mu) ** 2).sum()) + self.tr + float((a * a).sum()) - 2 * float(ev.sqrt().sum())


class Scorer:
    """Scores samples against the validation rows: KID on early rungs (unbiased at small n), FID on the final
    rung and the confirmation (``metric="fid"`` / ``"fid_recall"``, the latter with PRDC recall on the same
    features), KID or EMD throughout for ``metric="kid"`` / ``"emd"``. Real feature rows are computed once
    (and cached on disk, see :class:`~latentflow.app.tune.tune_features.Features`)."""

    def __init__(self, metric: str, features, real_val: Tensor, seed: int):
        self.metric, self.features, self.seed = metric, features, seed
        if metric == "emd":
            if real_val.dim() != 2 or real_val.shape[1] != 2:
                raise ShapeError(f'metric "emd" needs 2-D points [N, 2]; real has shape {tuple(real_val.shape)}')
            self.real = real_val
            self._t3: float | None = None  # seconds per n³ of one exact W1, timed on first use
            return
        self.fr = features.cached(real_val)
        if not torch.isfinite(self.fr).all():
            raise LatentflowError("features returned non-finite values (NaN or inf) on the real samples")
        self._fid: FrechetRef | None = None

    def key(self, final: bool) -> str:
        return self.metric if self.metric in ("emd", "kid") else ("fid" if final else "kid")

    def seconds(self, n: int) -> float:
        """CPU seconds of one metric value on ``n`` rows, features not counted: exact W1 is cubic in ``n`` (timed
        once at 256 points, repeated on subsets as :func:`~latentflow.metrics.emd` does where a set is
        larger); FID and KID on feature rows are small beside the features themselves (0 here)."""
        if self.metric != "emd":
            return 0.0
        from ...metrics import emd

        if self._t3 is None:
            m = min(256, self.real.shape[0])
            emd(self.real[:m], self.real[-m:], n=m)  # warm-up: scipy's import is not the metric's cost
            t0 = time.process_time()
            emd(self.real[:m], self.real[-m:], n=m)
            self._t3 = (time.process_time() - t0) / m**3
        m = min(n, EMD_MAX_N, self.real.shape[0])
        return self._t3 * m**3 * (3 if max(n, self.real.shape[0]) > m else 1)

    def rows(self, x: Tensor) -> Tensor:
        """What the final metric compares: the feature rows of ``x`` (the points themselves for EMD)."""
        return x if self.metric == "emd" else self.features(x)

    def value(self, f: Tensor) -> float:
        """The final metric of the rows ``f`` (from :meth:`rows`) against the validation set."""
        key = self.key(True)
        if key == "emd":
            from ...metrics import emd

            return emd(f, self.real, n=min(f.shape[0], EMD_MAX_N), generator=self.seed)
        if not torch.isfinite(f).all():
            return math.nan
        if key == "kid":
            return kid(f, self.fr, generator=self.seed)
        if self._fid is None:
            self._fid = FrechetRef(self.fr)
        return self._fid(f)

    def recall(self, f: Tensor) -> float:
        from ...metrics.manifold import prdc

        n = min(self.fr.shape[0], f.shape[0])
        return float(prdc(self.fr[:n], f[:n])["recall"])

    def __call__(self, x: Tensor, final: bool = False) -> dict:
        """``{key: value}`` (and ``recall`` for ``fid_recall`` on the final rung); ``{}`` when the features of
        ``x`` are not finite."""
        key = self.key(final)
        if key == "emd":
            from ...metrics import emd

            return {key: emd(x, self.real, n=min(x.shape[0], EMD_MAX_N), generator=self.seed)}
        f = self.features(x)
        if not torch.isfinite(f).all():
            return {}
        if key == "kid":
            return {key: kid(f, self.fr, generator=self.seed)}
        if self._fid is None:
            self._fid = FrechetRef(self.fr)
        out = {key: self._fid(f)}
        if self.metric == "fid_recall":
            from ...metrics.manifold import prdc

            n = min(self.fr.shape[0], f.shape[0])
            out["recall"] = float(prdc(self.fr[:n], f[:n])["recall"])
            out["n_recall"] = n
        return out
