"""Discriminator calibration (Che et al. 2020 §5.2, the "(cal)" rows; DRS and MH-GAN do the same).

Fits ``d_cal(x) = a · s(x) + b`` by logistic regression (binary cross-entropy, real = 1, generated = 0)
on held-out real and generated samples, where ``s(x)`` is D's raw output turned into a logit (or the
critic as it is). The result is a callable returning calibrated logits, to be used with
``d_output="logit"`` by DDLS, DRS and MH-GAN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .energy import check_d_output, chunk_slices, d_values, frozen, to_logit
from .errors import OptionError, ShapeError


class CalibratedD(nn.Module):
    """``x -> a · s(x) + b``: a calibrated logit head over a frozen discriminator."""

    d_output = "logit"
    a: Tensor  # buffers (registered in __init__)
    b: Tensor
    fit_info: dict[str, Any]  # set by calibrate()

    def __init__(self, D: Callable, a: float, b: float, d_output: str = "logit"):
        super().__init__()
        self.D = D
        self.d_kind = check_d_output(d_output)
        self.register_buffer("a", torch.tensor(float(a)))
        self.register_buffer("b", torch.tensor(float(b)))

    def forward(self, x: Tensor, *cond) -> Tensor:
        s = to_logit(d_values(self.D(x, *cond), x.shape[0]), self.d_kind)
        return self.a.to(s.dtype) * s + self.b.to(s.dtype)


def _scores(D, x: Tensor, d_output: str, batch_size: int, y: Tensor | None = None) -> Tensor:
    out = []
    with torch.no_grad(), frozen(D):
        for sl in chunk_slices(x.shape[0], batch_size):
            cond = () if y is None else (y[sl],)
            out.append(to_logit(d_values(D(x[sl], *cond), sl.stop - sl.start), d_output))
    return torch.cat(out).double()


def calibrate(
    D: Callable,
    real: Tensor,
    fake: Tensor,
    *,
    d_output: str = "logit",
    iters: int = 100,
    l2: float = 1e-6,
    batch_size: int = 1024,
    real_labels: Tensor | None = None,
    fake_labels: Tensor | None = None,
) -> CalibratedD:
    """Platt-scale D on held-out ``real`` and generated ``fake`` samples (Newton's method, exact).

    Returns a ``CalibratedD`` whose output is a logit ``log p_data(x)/p_g(x)`` estimate (up to the
    class prior ``log(n_real/n_fake)``, which is removed so that the logit is a density-ratio logit).
    ``info`` about the fit (``bce_before``, ``bce_after``, ``a``, ``b``) is kept in ``.fit_info``.
    A class-conditional D is called as ``D(x, y)`` with ``real_labels`` / ``fake_labels`` (``[N]`` each).
    """
    check_d_output(d_output)
    for name, arg in (("real", real), ("fake", fake)):
        if not isinstance(arg, Tensor) or arg.dim() < 2 or arg.shape[0] < 2:
            raise ShapeError(
                f"{name} must be a tensor [N, *X] with N >= 2; got "
                f"{tuple(arg.shape) if isinstance(arg, Tensor) else type(arg).__name__}"
            )
    if real.shape[1:] != fake.shape[1:]:
        raise ShapeError(
            f"real and fake must have the same sample shape; got {tuple(real.shape[1:])} and {tuple(fake.shape[1:])}"
        )
    for name, rows, lab in (("real_labels", real, real_labels), ("fake_labels", fake, fake_labels)):
        if lab is not None and (not isinstance(lab, Tensor) or tuple(lab.shape) != (rows.shape[0],)):
            raise ShapeError(f"{name} must be labels [{rows.shape[0]}], one per sample")
    s = torch.cat(
        [_scores(D, real, d_output, batch_size, real_labels), _scores(D, fake, d_output, batch_size, fake_labels)]
    )
    if not torch.isfinite(s).all():
        raise OptionError("calibrate: D returned non-finite values on the calibration samples")
    y = torch.cat([torch.ones(real.shape[0]), torch.zeros(fake.shape[0])]).double()
    w = torch.cat(
        [torch.full((real.shape[0],), 0.5 / real.shape[0]), torch.full((fake.shape[0],), 0.5 / fake.shape[0])]
    ).double()  # balanced classes
    X = torch.stack([s, torch.ones_like(s)], 1)
    theta = torch.tensor([1.0, 0.0], dtype=torch.float64)

    def bce(th):
        logit = X @ th
        return float((w * (torch.nn.functional.softplus(logit) - y * logit)).sum())

    before = bce(theta)
    for _ in range(iters):
        p = torch.sigmoid(X @ theta)
        grad = X.T @ (w * (p - y)) + l2 * theta
        H = (X * (w * p * (1 - p)).unsqueeze(1)).T @ X + l2 * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(H, grad)
        # damped Newton: halve the step until the loss does not increase (Newton alone can overshoot
        # from a poor start, e.g. a critic whose scale is far from a logit's)
        cur, t = bce(theta), 1.0
        while t > 1e-8 and bce(theta - t * step) > cur:
            t *= 0.5
        theta = theta - t * step
        if (t * step).abs().max() < 1e-10:
            break
    cal = CalibratedD(D, float(theta[0]), float(theta[1]), d_output)
    cal.fit_info = dict(
        bce_before=before,
        bce_after=bce(theta),
        a=float(theta[0]),
        b=float(theta[1]),
        n_real=int(real.shape[0]),
        n_fake=int(fake.shape[0]),
    )
    return cal
