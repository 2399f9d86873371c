"""Ex2MCMC against exact targets: a Gaussian (linear G, quadratic D) and a four-mode mixture whose density
ratio to the prior is exact (G = identity), where DDLS started in one mode stays there and Ex2MCMC's
i-SIR moves reach every mode; plus the sampler contracts."""

import math

import pytest
import torch
from analytic import Identity, gaussian_problem, log_normal

import latentflow as lf
from latentflow.errors import DivergenceWarning, OptionError, ShapeError

MEANS = torch.tensor([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]], dtype=torch.float64)
S = 0.3


def _z(n, seed=1):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _log_mixture(x):
    lp = torch.stack([log_normal(x, mu.to(x.dtype), S * S) for mu in MEANS], 1)
    return torch.logsumexp(lp, 1) - math.log(len(MEANS))


def mixture_ratio_d(x):
    """The exact logit log p_data(x) - log N(x; 0, I): with G = identity the latent target is the mixture."""
    return _log_mixture(x) - log_normal(x, torch.zeros(2, dtype=x.dtype), 1.0)


def _mode_fractions(x):
    q = (x[:, 0] < 0).long() * 2 + (x[:, 1] < 0).long()  # the index of MEANS whose quadrant x is in
    return torch.bincount(q, minlength=4).double() / x.shape[0]


def test_matches_gaussian_target():
    G, D, mu, cov, _ = gaussian_problem()
    n = 3000
    res = lf.refine(
        G, D, 2 + _z(n), method="ex2mcmc", steps=40, n_particles=5, mala_steps=2, step_size=0.2, seed=0, progress=False
    )
    var = torch.diagonal(cov)
    assert torch.all((res.z.mean(0) - mu).abs() < 5 * torch.sqrt(var / n))
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov**2) / n)
    assert torch.all((torch.cov(res.z.T) - cov).abs() < 5 * se_cov)
    assert 0.2 < float(res.info["global_accept_rate"].mean()) < 1
    assert 0.5 < float(res.info["accept_rate"].mean()) <= 1


def test_reaches_every_mode_that_ddls_misses_from_a_bad_start():
    """All chains start in mode 0 (13 standard deviations from the others). Measured: DDLS (MALA) keeps
    every chain there; Ex2MCMC puts a quarter of them in each mode (5 standard errors) and matches the
    mixture's mean and covariance within MC error."""
    n = 400
    z0 = MEANS[0] + S * _z(n)
    ddls = lf.refine(
        Identity(), mixture_ratio_d, z0, method="ddls", steps=100, step_size=0.02, mala=True, seed=0, progress=False
    )
    frac_ddls = _mode_fractions(ddls.x)
    assert float(frac_ddls[0]) == 1.0 and float(frac_ddls[1:].sum()) == 0.0
    ex2 = lf.refine(
        Identity(),
        mixture_ratio_d,
        z0,
        method="ex2mcmc",
        steps=40,
        n_particles=20,
        mala_steps=1,
        step_size=0.02,
        seed=0,
        progress=False,
    )
    frac = _mode_fractions(ex2.x)
    se = math.sqrt(0.25 * 0.75 / n)
    assert torch.all((frac - 0.25).abs() < 5 * se), frac
    # mixture moments: mean 0, covariance (4 + S²) I (modes at ±2 per coordinate)
    var = 4 + S * S
    mu4 = 16 + 6 * 4 * S**2 + 3 * S**4  # E x⁴ per coordinate
    assert torch.all(ex2.x.mean(0).abs() < 5 * math.sqrt(var / n))
    assert torch.all((ex2.x.var(0) - var).abs() < 5 * math.sqrt((mu4 - var**2) / n))
    # i-SIR alone (no MALA) reaches them too
    isir = lf.refine(
        Identity(),
        mixture_ratio_d,
        z0,
        method="ex2mcmc",
        steps=40,
        n_particles=20,
        mala_steps=0,
        seed=0,
        progress=False,
    )
    assert torch.all((_mode_fractions(isir.x) - 0.25).abs() < 5 * se)


def test_uniform_prior_stays_in_box_and_is_exact():
    """d = 0: the target is the prior itself, U[-1, 1]^2 (mean 0, var 1/3)."""
    zero_d = lambda x: torch.zeros(x.shape[0], dtype=x.dtype)
    n = 2000
    z = torch.rand(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    res = lf.refine(
        Identity(),
        zero_d,
        z,
        method="ex2mcmc",
        prior="uniform",
        steps=10,
        n_particles=4,
        mala_steps=2,
        step_size=0.2,
        seed=0,
        progress=False,
    )
    assert res.z.abs().max() <= 1
    var = 1 / 3
    assert torch.all(res.z.mean(0).abs() < 5 * math.sqrt(var / n))
    assert torch.all((res.z.var(0) - var).abs() < 5 * math.sqrt((1 / 5 - var**2) / n))


def test_same_seed_same_samples_and_batch_size_invariance():
    G, D, *_ = gaussian_problem()
    z = _z(23)
    kw = dict(method="ex2mcmc", steps=6, n_particles=4, mala_steps=2, step_size=0.1, progress=False)
    a = lf.refine(G, D, z, seed=11, **kw)
    b = lf.refine(G, D, z, seed=11, **kw)
    assert torch.equal(a.z, b.z) and torch.equal(a.x, b.x)
    for bs in (1, 7):
        c = lf.refine(G, D, z, seed=11, batch_size=bs, **kw)
        torch.testing.assert_close(a.z, c.z, rtol=0, atol=1e-4)
    # rows [5, 23) of the run, given alone with chain_offset=5, draw the same numbers
    part = lf.refine(G, D, z[5:], seed=11, chain_offset=5, **kw)
    torch.testing.assert_close(part.z, a.z[5:], rtol=0, atol=1e-10)
    d = lf.refine(G, D, z, seed=12, **kw)
    assert not torch.equal(a.z, d.z)


def test_eval_counts():
    G, D, *_ = gaussian_problem()
    B, steps, N, L = 10, 3, 4, 2
    res = lf.refine(G, D, _z(B), method="ex2mcmc", steps=steps, n_particles=N, mala_steps=L, seed=0, progress=False)
    # probe (2) + initial evaluation + per step (N - 1 candidates, L + 1 energy evaluations)
    assert res.info["n_D_forward"] == 2 + B + steps * B * (N - 1 + L + 1)
    assert res.info["n_D_backward"] == B + steps * B * (L + 1)
    assert res.info["n_G_forward"] == res.info["n_D_forward"] + B  # and the final G(z)


def test_nonfinite_d_candidates_get_zero_weight_and_divergence_is_reported():
    """D is NaN where x0 > 1.5: candidates there are never picked (counted); a chain whose initial state is
    there is reported as diverged at step 0."""
    D = lambda x: torch.where(x[:, 0] > 1.5, torch.full_like(x[:, 0], float("nan")), -0.5 * (x**2).sum(1))
    z = _z(40) * 0.3
    z[:3, 0] = 2.0
    with pytest.warns(DivergenceWarning, match="non-finite values on the initial state of 3 chain"):
        res = lf.refine(
            Identity(),
            D,
            z,
            method="ex2mcmc",
            steps=5,
            n_particles=10,
            mala_steps=0,
            seed=0,
            progress=False,
            on_divergence="warn",
        )
    assert res.diverged[:3].all() and not res.diverged[3:].any()
    assert (res.info["diverged_step"][:3] == 0).all()
    assert res.info["n_nonfinite_d"] > 0
    assert bool((res.x[3:, 0] <= 1.5).all())


@pytest.mark.rng_ok
def test_contract_errors():
    G, D, *_ = gaussian_problem()
    with pytest.raises(OptionError, match="n_particles must be >= 2; got 1"):
        lf.refine(G, D, _z(4), method="ex2mcmc", n_particles=1, progress=False)
    with pytest.raises(OptionError, match="mala_steps must be >= 0"):
        lf.refine(G, D, _z(4), method="ex2mcmc", mala_steps=-1, progress=False)
    with pytest.raises(OptionError, match=r"unknown option\(s\) N\b"):
        lf.refine(G, D, _z(4), method="ex2mcmc", N=5)
    with pytest.raises(ShapeError, match=r"z must have shape \[B, d\]"):
        lf.refine(G, D, torch.zeros(4, dtype=torch.float64), method="ex2mcmc", progress=False)
    with pytest.raises(OptionError, match="d_output must be one of"):
        lf.refine(G, D, _z(4), method="ex2mcmc", d_output="score", progress=False)
    with pytest.raises(OptionError, match="prior='uniform' needs z in"):
        lf.refine(G, D, 3 + _z(4), method="ex2mcmc", prior="uniform", progress=False)


def test_image_benchmark_rows_spend_the_ddls_budget():
    """The bench's dgflow and ex2mcmc rows, at budget 50, evaluate D (forward) per sample no more often than
    the DDLS row, and ex2mcmc within one of its iterations (9 evaluations) of it."""
    from latentflow.app.bench.images_rows import VARIANTS, budget_options
    from latentflow.samplers.ex2mcmc import Ex2MCMC

    G, D, *_ = gaussian_problem()
    B, budget = 6, 50

    def per_sample(key):
        v = VARIANTS[key]
        opts = {**budget_options(v.method, budget, v.options), **v.options}
        res = lf.refine(G, D, _z(B), method=v.method, seed=0, progress=False, **opts)
        return (res.info["n_D_forward"] - 2) / B  # less the two-row probe

    ddls, dg, ex2 = per_sample("ddls"), per_sample("dgflow"), per_sample("ex2mcmc")
    assert ddls == budget + 1 and dg == budget
    assert ddls - Ex2MCMC.per_step(VARIANTS["ex2mcmc"].options)[0] <= ex2 <= ddls


@pytest.mark.parametrize("opts", [dict(mala_steps=2), dict(mala_steps=0, batch_size=7)], ids=["mala", "isir-chunked"])
def test_step_loop_does_no_host_sync(monkeypatch, opts):
    """Armed from the first step's callback until the kernel's ``finish`` (which counts the non-finite
    candidates on the host, once, as MH does)."""
    from test_speed import _SyncTrap

    from latentflow.samplers.ex2mcmc import Ex2MCMC

    G, D, *_ = gaussian_problem()
    trap = _SyncTrap(monkeypatch).disarm_at_finish(monkeypatch, Ex2MCMC)
    res = lf.refine(
        G,
        D,
        _z(20),
        method="ex2mcmc",
        steps=4,
        n_particles=4,
        seed=0,
        progress=False,
        callback=lambda s: setattr(trap, "armed", True),
        **opts,
    )
    assert trap.hits == [] and res.x.shape[0] == 20
