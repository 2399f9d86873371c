"""Precision, recall, density and coverage: k-nearest-neighbour estimates of how much of the real
distribution the samples cover and how much of the samples lies on the real manifold.

On feature rows ``X`` (real, N rows) and ``Y`` (generated, M rows) — the same features as FID: Inception
pool3 rows for images, the ``fmnist-classifier`` rows for Fashion-MNIST, raw coordinates for 2-D points —
with ``r_i`` the distance of ``X_i`` to its k-th nearest neighbour among the other real rows and ``s_j``
that of ``Y_j`` among the other generated rows, and ``B(c, r)`` the *closed* ball ``{v : ||v - c||₂ ≤ r}``:

* precision = (1/M) Σ_j 1[∃ i : Y_j ∈ B(X_i, r_i)]  (Kynkäänniemi et al. 2019), in [0, 1];
* recall    = (1/N) Σ_i 1[∃ j : X_i ∈ B(Y_j, s_j)]  (Kynkäänniemi et al. 2019), in [0, 1];
* density   = (1/(kM)) Σ_j Σ_i 1[Y_j ∈ B(X_i, r_i)]  (Naeem et al. 2020), in [0, N/k]: it exceeds 1 where
  the samples crowd into dense real regions (its expectation is 1 when Y follows the real law);
* coverage  = (1/N) Σ_i 1[∃ j : Y_j ∈ B(X_i, r_i)]  (Naeem et al. 2020), in [0, 1].

k = 5 is Naeem et al.'s setting (Kynkäänniemi et al. use 3; torch-fidelity's ``prc_neighborhood`` default is
3). Balls are closed as in Kynkäänniemi et al. and torch-fidelity (the ``prdc`` package uses open balls): a
sample on a ball's boundary, or equal to a real row, counts as inside. "The k-th nearest neighbour among
the other rows" is the k-th smallest of the N - 1 distances to the other rows, duplicates included.

Distances are computed in float64 on the rows' device in chunks (a 10k × 10k problem never holds more than
a block of about 2^23 distances). The blocks use ``|a|² + |b|² - 2 a·b`` (a matrix product), and every
comparison that this expansion's rounding could decide wrongly — a squared distance within
``4 (D + 4) 2^-53 (|a|² + |b|²)`` of its threshold, or a k-th-neighbour candidate near the cut — is
recomputed as ``Σ (a - b)²``: the result is that of the direct formula (ties and duplicates exact), at the
speed of a matrix product.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import OptionError, ShapeError

__all__ = ["prdc", "recall_margin", "keeps_recall", "PRDC_KEYS", "DEFAULT_K"]

PRDC_KEYS = ("precision", "recall", "density", "coverage")
DEFAULT_K = 5
_BLOCK = 1 << 23  # distances per block (64 MiB in float64)
_U = 2.0**-53  # float64 unit round-off
_EXTRA = 8  # k-th-neighbour candidates beyond k recomputed exactly per row


def _rows(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise ShapeError(
                f"{name}: expected feature rows [N, D] (a tensor or an array); got {type(x).__name__}"
            ) from None
    if x.dim() != 2 or x.shape[1] < 1:
        raise ShapeError(f"{name}: expected feature rows [N, D]; got shape {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise ShapeError(f"{name}: expected real-valued features; got dtype {x.dtype}")
    x = x.detach().to(torch.float64)
    bad = ~torch.isfinite(x).all(1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten()
        raise ShapeError(
            f"{name}: expected finite feature rows; rows {idx[:10].tolist()}"
            f"{' and more' if idx.numel() > 10 else ''} hold NaN or inf"
        )
    return x


def _sq(x: Tensor) -> Tensor:
    return (x * x).sum(1)


def _gram_d2(a: Tensor, b: Tensor, sa: Tensor, sb: Tensor) -> Tensor:
    """Squared distances ``[len(a), len(b)]`` by the Gram expansion (clamped at 0)."""
    return (sa[:, None] + sb[None, :] - 2.0 * (a @ b.T)).clamp_min_(0.0)


def _tol(dim: int, sa: Tensor, sb: Tensor) -> Tensor:
    """A bound on the Gram expansion's error per pair (first order, with a factor 4 to spare)."""
    return (4.0 * (dim + 4) * _U) * (sa[:, None] + sb[None, :])


def _direct(a: Tensor, b: Tensor, ia: Tensor, ib: Tensor) -> Tensor:
    """``Σ (a[ia] - b[ib])²`` for index pairs, in pieces of at most ~2^22 numbers."""
    out = torch.empty(ia.numel(), dtype=a.dtype, device=a.device)
    step = max(1, (1 << 22) // a.shape[1])
    for s in range(0, ia.numel(), step):
        out[s : s + step] = (a[ia[s : s + step]] - b[ib[s : s + step]]).pow(2).sum(1)
    return out


def _inside(d2: Tensor, thr: Tensor, tol: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``d2 ≤ thr`` with the pairs the Gram rounding could misjudge decided by the direct formula
    (``d2``, ``thr`` and ``tol`` broadcast to ``[len(a), len(b)]``)."""
    inside = d2 <= thr
    unsure = (d2 - thr).abs() <= tol
    if bool(unsure.any()):
        i, j = torch.nonzero(unsure, as_tuple=True)
        exact = _direct(a, b, i, j)
        inside[i, j] = exact <= thr.expand_as(d2)[i, j]
    return inside


def _kth_radius2(x: Tensor, k: int, rows: int) -> Tensor:
    """Squared distance of each row of ``x`` to its k-th nearest other row (self excluded by index)."""
    n, dim = x.shape
    sq = _sq(x)
    m = min(k + _EXTRA, n - 1)
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    for s in range(0, n, rows):
        idx = torch.arange(s, min(s + rows, n), device=x.device)
        d2 = _gram_d2(x[idx], x, sq[idx], sq)
        d2[torch.arange(idx.numel(), device=x.device), idx] = math.inf
        vals, nb = d2.topk(m, dim=1, largest=False, sorted=True)
        exact = _direct(x, x, idx.repeat_interleave(m), nb.reshape(-1)).reshape(-1, m)
        kth = exact.sort(dim=1).values[:, k - 1]
        if m < n - 1:  # a row outside the candidates could only come closer than the cut by rounding
            tol = (4.0 * (dim + 4) * _U) * (sq[idx] + sq.max())
            redo = torch.nonzero(kth > vals[:, m - 1] - tol).flatten()
            for r in redo.tolist():  # rare: many ties at the cut; the whole row, exactly
                i = int(idx[r])
                others = torch.cat([torch.arange(i, device=x.device), torch.arange(i + 1, n, device=x.device)])
                full = _direct(x, x, torch.full_like(others, i), others)
                kth[r] = full.kthvalue(k).values
        out[idx] = kth
    return out


def prdc(real_features, fake_features, k: int = DEFAULT_K, *, block: int | None = None) -> dict:
    """Precision, recall, density and coverage of ``fake_features`` [M, D] against ``real_features`` [N, D].

    ``precision = (1/M) Σ_j 1[∃i: ||Y_j - X_i|| ≤ r_i]``, ``recall = (1/N) Σ_i 1[∃j: ||X_i - Y_j|| ≤ s_j]``,
    ``density = (1/(kM)) Σ_j Σ_i 1[||Y_j - X_i|| ≤ r_i]``, ``coverage = (1/N) Σ_i 1[∃j: ||Y_j - X_i|| ≤ r_i]``,
    with ``r_i`` (``s_j``) the distance of a real (generated) row to its k-th nearest neighbour among the other
    real (generated) rows (Kynkäänniemi et al. 2019; Naeem et al. 2020; closed balls). Precision, recall and
    coverage lie in [0, 1]; density lies in [0, N/k] and exceeds 1 where samples crowd dense real regions.

    Args:
        real_features: ``[N, D]`` real feature rows (tensor or array; any float dtype, computed in float64).
        fake_features: ``[M, D]`` generated feature rows, same ``D``.
        k: the neighbour index, ``1 <= k <= min(N, M) - 1`` (5: Naeem et al.'s setting).
        block: distances per block (default 2^23, 64 MiB); results do not depend on it.

    Returns ``{"precision", "recall", "density", "coverage"}`` as Python floats. Raises ``ShapeError`` for
    rows that are not ``[N, D]`` or not finite, ``OptionError`` for a ``k`` the sizes cannot serve."""
    X, Y = _rows(real_features, "real_features"), _rows(fake_features, "fake_features")
    Y = Y.to(X.device)
    if X.shape[1] != Y.shape[1]:
        raise ShapeError(
            f"fake_features: expected rows of the real features' width {X.shape[1]}; got shape {tuple(Y.shape)}"
        )
    n, m = X.shape[0], Y.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise OptionError(f"k: expected an int >= 1 (the neighbour index); got {k!r}")
    if k >= min(n, m):
        raise OptionError(
            f"k: expected k < the number of rows of each set (the k-th neighbour among the other rows); "
            f"got k={k} with {n} real and {m} generated rows"
        )
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise OptionError(f"block: expected a positive int (distances per block) or None; got {block!r}")
    cap = _BLOCK if block is None else block
    r2 = _kth_radius2(X, k, max(1, cap // n))
    s2 = _kth_radius2(Y, k, max(1, cap // m))
    sx, sy = _sq(X), _sq(Y)
    dim = X.shape[1]
    in_real = torch.zeros(m, dtype=torch.float64, device=X.device)  # per fake row: real balls holding it
    covered = torch.zeros(n, dtype=torch.bool, device=X.device)
    recalled = torch.zeros(n, dtype=torch.bool, device=X.device)
    rows = max(1, cap // n)
    for s in range(0, m, rows):
        e = min(s + rows, m)
        yb = Y[s:e]
        d2 = _gram_d2(yb, X, sy[s:e], sx)  # [b, N]: fake rows × real rows
        tol = _tol(dim, sy[s:e], sx)
        a = _inside(d2, r2[None, :], tol, yb, X)  # Y_j in B(X_i, r_i)
        b = _inside(d2, s2[s:e, None], tol, yb, X)  # X_i in B(Y_j, s_j)
        in_real[s:e] = a.sum(1, dtype=torch.float64)
        covered |= a.any(0)
        recalled |= b.any(0)
    return {
        "precision": float((in_real > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(in_real.sum() / (k * m)),
        "coverage": float(covered.double().mean()),
    }


def recall_margin(recall: float, num_real: int, z: float = 2.0) -> float:
    """``z`` binomial standard errors of a recall measured on ``num_real`` real rows:
    ``z · sqrt(p̃ (1 - p̃) / N)`` with ``p̃ = (recall · N + 1) / (N + 2)`` (a recall of exactly 0 or 1 still
    has an error). Recall is a mean of N indicators, one per real row; this treats them as independent,
    which they nearly are when each ball holds few rows."""
    n = _count(num_real)
    if not 0.0 <= recall <= 1.0:
        raise OptionError(f"recall: expected a value in [0, 1]; got {recall!r}")
    p = (recall * n + 1.0) / (n + 2.0)
    return float(z) * math.sqrt(p * (1.0 - p) / n)


def keeps_recall(reference: dict, candidate: dict, num_real: int, *, z: float = 2.0) -> bool:
    """Whether ``candidate`` (a :func:`prdc` dict) keeps the recall of ``reference`` (the generator's) within
    noise: ``recall_c ≥ recall_ref - z · sqrt(se_ref² + se_c²)`` with the binomial standard errors of
    :func:`recall_margin` (``z = 2``: a candidate with the same true recall passes ≈ 98 % of the time).
    Both recalls are measured on the same ``num_real`` real rows, so their errors are positively correlated
    and the test is conservative: it drops a candidate only for a real loss of diversity."""
    for name, d in (("reference", reference), ("candidate", candidate)):
        if not isinstance(d, dict) or "recall" not in d:
            raise OptionError(f"{name}: expected a prdc() dict with a 'recall' entry; got {d!r}")
    rr, rc = float(reference["recall"]), float(candidate["recall"])
    margin = math.hypot(recall_margin(rr, num_real, 1.0), recall_margin(rc, num_real, 1.0)) * float(z)
    return rc >= rr - margin


def _count(num_real) -> int:
    if isinstance(num_real, bool) or not isinstance(num_real, int) or num_real < 1:
        raise OptionError(f"num_real: expected a positive int (real rows recall was measured on); got {num_real!r}")
    return num_real
