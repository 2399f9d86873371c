"""DRS and MH-GAN with an exact density-ratio D recover the data distribution."""

import math
import warnings

import pytest
import torch
from analytic import Identity, RatioD

import latentflow as lf
from latentflow.errors import OptionError

N = 4000
MEAN, STD = [0.5, -0.3], 0.8  # p_data = N(MEAN, STD^2 I), p_g = N(0, I), d = log p_data / p_g exactly


def _z(n=N, seed=1):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _check_recovers_data(x):
    n = x.shape[0]
    mean = torch.tensor(MEAN, dtype=x.dtype)
    var = STD**2
    assert torch.all((x.mean(0) - mean).abs() < 5 * math.sqrt(var / n))
    # standard error of a Gaussian sample variance: var * sqrt(2 / n)
    assert torch.all((x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n))
    # and the generator's own law (var 1) is rejected by the same test
    assert (1.0 - var) > 5 * var * math.sqrt(2 / n)


def test_drs_exact_rejection_recovers_data():
    res = lf.refine(
        Identity(), RatioD(MEAN, STD), _z(), method="drs", gamma_percentile=None, gamma=0.0, seed=0, progress=False
    )
    assert res.x.shape == (N, 2)
    _check_recovers_data(res.x)
    # acceptance of exact rejection sampling is E_pg[exp(d - max d)] = 1 / max(p_data / p_g)
    d = RatioD(MEAN, STD)
    xs = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    grid = torch.cartesian_prod(xs, xs)
    bound = math.exp(float(d(grid).max()))
    assert res.info["accept_rate"] == pytest.approx(1 / bound, rel=0.1)


def test_drs_returns_exact_count_and_reports_acceptance():
    res = lf.refine(Identity(), RatioD(MEAN, STD), _z(333), method="drs", seed=0, progress=False)
    assert res.x.shape == (333, 2) and res.z.shape == (333, 2)
    assert 0 < res.info["accept_rate"] < 1
    assert res.info["n_proposals"] >= 333


def test_drs_gives_up_with_a_clear_error():
    with pytest.raises(OptionError, match="lower gamma_percentile or raise max_proposals"):
        lf.refine(
            Identity(),
            RatioD(MEAN, STD),
            _z(100),
            method="drs",
            gamma_percentile=99.9,
            max_proposals=150,
            seed=0,
            progress=False,
        )


def test_mh_recovers_data():
    res = lf.refine(Identity(), RatioD(MEAN, STD), _z(), method="mh", k=60, seed=0, progress=False)
    _check_recovers_data(res.x)
    acc = res.info["accept_rate"]
    assert acc.shape == (N,) and 0.3 < float(acc.mean()) < 0.95
    assert res.info["n_G_forward"] == N * 61 + 2


def test_mh_from_real_start_returns_generated_samples():
    x_init = torch.full((50, 2), 100.0, dtype=torch.float64)  # "real" starts the chains will leave
    res = lf.refine(Identity(), RatioD(MEAN, STD), _z(50), method="mh", k=20, x_init=x_init, seed=0, progress=False)
    assert (res.x.abs() < 50).all()


def test_rejection_determinism():
    a = lf.refine(Identity(), RatioD(MEAN, STD), _z(200), method="mh", k=10, seed=3, progress=False)
    b = lf.refine(Identity(), RatioD(MEAN, STD), _z(200), method="mh", k=10, seed=3, progress=False, batch_size=16)
    assert torch.equal(a.x, b.x)
    c = lf.refine(Identity(), RatioD(MEAN, STD), _z(200), method="drs", seed=3, progress=False)
    d = lf.refine(Identity(), RatioD(MEAN, STD), _z(200), method="drs", seed=3, progress=False)
    assert torch.equal(c.x, d.x)


# -- non-finite D values ---------------------------------------------------------------------------


def _odd_d(base):
    """``base`` except NaN where x0 > 1.5 and +inf where x0 < -2.5."""

    def D(x):
        d = base(x)
        d = torch.where(x[:, 0] > 1.5, torch.full_like(d, float("nan")), d)
        return torch.where(x[:, 0] < -2.5, torch.full_like(d, float("inf")), d)

    return D


def test_drs_never_accepts_nan_and_always_accepts_plus_inf():
    D = _odd_d(RatioD(MEAN, STD))
    z = _z(400)
    res = lf.refine(Identity(), D, z, method="drs", gamma_percentile=None, pilot=2000, seed=0, progress=False)
    assert res.x.shape == (400, 2) and torch.isfinite(res.x).all()
    assert not (res.x[:, 0] > 1.5).any()  # a NaN row is never accepted
    first_inf = z[:, 0] < -2.5  # +inf on the first proposal: accepted at once
    assert first_inf.any() and torch.equal(res.x[first_inf], z[first_inf])
    nf = res.info["nonfinite_d"]
    assert nf.shape == (400,) and res.info["n_nonfinite_d"] == int(nf.sum()) > 0
    assert bool((nf[z[:, 0] > 1.5] >= 1).all())  # rows whose first proposal was NaN are counted


def test_mh_never_moves_to_nan_and_always_to_plus_inf():
    D = _odd_d(RatioD(MEAN, STD))
    res = lf.refine(Identity(), D, _z(500), method="mh", k=30, seed=0, progress=False)
    assert not (res.x[:, 0] > 1.5).any() or bool(torch.isnan(res.info["d"][res.x[:, 0] > 1.5]).all())
    at_inf = res.x[:, 0] < -2.5
    assert at_inf.any() and bool((res.info["d"][at_inf] == float("inf")).all())  # once there, kept
    assert res.info["n_nonfinite_d"] == int(res.info["nonfinite_d"].sum()) > 0
    assert not res.diverged[~(res.x[:, 0] > 1.5)].any()


def test_nonfinite_d_is_defined_and_reported_in_drs_mh_and_dot():
    # D is NaN for x0 > 1 and +inf for x0 < -1.5 (a +inf logit means "accept")
    def D(x):
        d = -(x**2).sum(1)
        d = torch.where(x[:, 0] > 1, torch.full_like(d, float("nan")), d)
        return torch.where(x[:, 0] < -1.5, torch.full_like(d, float("inf")), d)

    G = lambda z: z  # noqa: E731
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    drs = lf.refine(G, D, z, "drs", gamma_percentile=None, pilot=500, seed=0, progress=False)
    assert drs.x.shape == (200, 2) and not (drs.x[:, 0] > 1).any()  # exactly B rows, none where D is NaN
    assert drs.info["n_nonfinite_d"] > 0
    first_inf = z[:, 0] < -1.5
    assert torch.equal(drs.x[first_inf], z[first_inf])  # +inf on the first proposal: kept
    mh = lf.refine(G, D, z, "mh", k=20, seed=0, progress=False)
    assert mh.info["n_nonfinite_d"] > 0 and not (mh.x[:, 0] > 1).any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the critic -x0 moves every chain away from the NaN region x0 > 1
        dot = lf.refine(
            None,
            lambda x: torch.where(x[:, 0] > 1, torch.full_like(x[:, 0], float("nan")), -x[:, 0]),
            z,
            "dot",
            space="target",
            steps=5,
            lr=0.1,
            seed=0,
            progress=False,
        )
    nan_rows = z[:, 0] > 1
    assert torch.equal(dot.diverged, nan_rows) and (dot.info["diverged_step"][nan_rows] == 0).all()  # per row
    assert bool((dot.x[~nan_rows, 0] < z[~nan_rows, 0]).all())  # the other chains are not frozen
