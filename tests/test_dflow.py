"""Discriminator Flow steppers on closed-form fields."""

import pytest
import torch

import latentflow as lf
from latentflow.errors import OptionError, ShapeError
from latentflow.samplers.dflow import time_grid


def quad_f(x, t):
    """IPM critic f = |x|^2 / 2, so v = -eta grad f = -x: dx/dt = -x, x(1) = x0 / e."""
    return 0.5 * (x**2).sum(1)


def _err(solver, n):
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    res = lf.refine(None, quad_f, x0, method="dflow", steps=n, eta=1.0, loss="ipm", solver=solver, progress=False)
    return float((res.x - x0 * torch.exp(torch.tensor(-1.0, dtype=torch.float64))).abs().max()), res


def test_euler_first_order_heun_second_order():
    e1, _ = _err("euler", 32)
    e2, _ = _err("euler", 64)
    h1, r = _err("heun", 32)
    h2, _ = _err("heun", 64)
    assert 1.8 < e1 / e2 < 2.2  # global error O(h)
    assert 3.5 < h1 / h2 < 4.5  # global error O(h^2), last step Euler included
    assert h1 < e1 / 10
    assert r.info["nfe"] == 2 * 32 - 1


def test_velocity_signs_per_loss():
    """Particles move up f for ns/hinge (f high on real), down f for ipm (spec §0.2)."""
    f = lambda x, t: x[:, 0]
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    for loss, sign in (("ns", 1), ("hinge", 1), ("ipm", -1)):
        res = lf.refine(None, f, x0, method="dflow", steps=4, eta=1.0, loss=loss, progress=False)
        assert torch.all(torch.sign(res.x[:, 0]) == sign)
    # ns velocity is eta * sigmoid(-f) * grad f: at f = 0 that is eta / 2 per unit time
    res = lf.refine(None, f, x0, method="dflow", steps=1, eta=1.0, loss="ns", progress=False)
    torch.testing.assert_close(res.x[:, 0], torch.full((4,), 0.5, dtype=torch.float64))


def test_time_conditioning_and_early_stop():
    seen = []

    def f(x, t):
        seen.append(float(t[0]))
        return 0.5 * (x**2).sum(1)

    x0 = torch.ones(3, 2, dtype=torch.float64)
    res = lf.refine(None, f, x0, method="dflow", steps=8, stop_step=3, eta=1.0, loss="ipm", progress=False)
    assert seen[1:] == [0.0, 0.125, 0.25]  # seen[0] is the shape probe
    assert res.info["t_end"] == pytest.approx(0.375)
    assert time_grid(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_dflow_errors():
    with pytest.raises(OptionError, match='solver must be "euler" or "heun"'):
        lf.refine(None, quad_f, torch.zeros(2, 2), method="dflow", solver="rk4")
    with pytest.raises(OptionError, match="loss must be one of"):
        lf.refine(None, quad_f, torch.zeros(2, 2), method="dflow", loss="wgan")
    with pytest.raises(ShapeError, match=r"D\(x, t\) returned shape \(2, 3\)"):
        lf.refine(None, lambda x, t: torch.zeros(x.shape[0], 3), torch.zeros(2, 2), method="dflow", progress=False)
