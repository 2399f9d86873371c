"""The 2-D metrics of Che et al. 2020, §5.1.

* mode metrics (DRS protocol): each sample goes to its nearest mode centre; it is *high quality* if it
  lies within 4 standard deviations of that centre; a mode is *recovered* if it has at least one
  high-quality sample. ``hq_std`` is the per-coordinate std of high-quality samples around their
  centres (ground truth: the mode std).
* ``emd``: exact optimal transport (W1, Euclidean cost, uniform weights) between two equal-size sets,
  solved as an assignment problem; averaged over ``repeats`` random subsets of ``n`` points when the
  sets are larger, since the exact problem is cubic in ``n``.
* ``precision``, ``recall``, ``density``, ``coverage`` (:func:`latentflow.metrics.manifold.prdc`, k = 5) on
  the raw coordinates against the same reference set as the EMD.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import rng
from ..data import Toy2D, toy
from ..errors import ShapeError
from .manifold import DEFAULT_K, prdc

#: metric keys, as they appear in JSON reports
MODES = "modes"
HQ_PCT = "high_quality_pct"
HQ_STD = "hq_std"
EMD = "emd"


def _check(x: Tensor, name: str = "samples") -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"{name} must be a tensor of shape [N, 2]; got {got}")
    return x.detach().double().cpu()


def mode_metrics(samples: Tensor, centers: Tensor, std: float, n_std: float = 4.0) -> dict:
    """``{modes, high_quality_pct, hq_std}`` of ``samples [N, 2]`` for a mixture with ``centers [K, 2]``."""
    x = _check(samples)
    c = centers.double().cpu()
    finite = torch.isfinite(x).all(1)
    d = torch.cdist(x[finite], c)
    dist, idx = d.min(1)
    hq = dist <= n_std * std
    modes = int(torch.unique(idx[hq]).numel())
    pct = 100.0 * float(hq.sum()) / max(x.shape[0], 1)
    if hq.sum() > 1:
        resid = x[finite][hq] - c[idx[hq]]
        hq_std = float(resid.std(0).mean())
    else:
        hq_std = float("nan")
    return {MODES: modes, HQ_PCT: pct, HQ_STD: hq_std}


def emd(a: Tensor, b: Tensor, *, n: int = 1000, repeats: int = 3, generator: rng.GeneratorLike = 0) -> float:
    """W1 between the empirical sets ``a`` and ``b`` (exact assignment on equal-size subsets of ``n``)."""
    from scipy.optimize import linear_sum_assignment

    a, b = _check(a, "a"), _check(b, "b")
    a = a[torch.isfinite(a).all(1)]
    b = b[torch.isfinite(b).all(1)]
    m = min(n, a.shape[0], b.shape[0])
    if m < 1:
        return float("nan")
    gen = rng.resolve(generator)
    vals = []
    for _ in range(repeats if max(a.shape[0], b.shape[0]) > m else 1):
        ia = torch.randperm(a.shape[0], generator=gen)[:m]
        ib = torch.randperm(b.shape[0], generator=gen)[:m]
        cost = torch.cdist(a[ia], b[ib]).numpy()
        r, c = linear_sum_assignment(cost)
        vals.append(float(cost[r, c].mean()))
    return float(np.mean(vals))


def toy_metrics(
    samples: Tensor,
    dataset: str | Toy2D,
    *,
    reference: Tensor | None = None,
    n_emd: int = 1000,
    generator: rng.GeneratorLike = 0,
    k: int = DEFAULT_K,
) -> dict:
    """All 2-D metrics of ``samples`` for ``dataset``: mode metrics (mixtures only), EMD and precision /
    recall / density / coverage (k-th neighbour ``k``; skipped for ``k`` or fewer finite samples) against
    ``reference`` (default: a fresh draw of the same size from the dataset, fixed seed)."""
    ds = toy(dataset) if isinstance(dataset, str) else dataset
    x = _check(samples)
    out: dict = {}
    if ds.centers is not None:
        out.update(mode_metrics(x, ds.centers, ds.std))
    if reference is None:
        reference = ds.sample(x.shape[0], generator=12345)
    out[EMD] = emd(x, reference, n=n_emd, generator=generator)
    fin, ref = x[torch.isfinite(x).all(1)], _check(reference, "reference")
    if min(fin.shape[0], ref.shape[0]) > k:
        out.update(prdc(ref, fin, k))
    return out
