"""DDLS against closed-form Gaussian targets (linear G, quadratic D), plus its contracts."""

import logging
import math

import pytest
import torch
from analytic import Identity, gaussian_problem, ula_stationary_cov

import latentflow as lf
from latentflow.errors import OptionError, ShapeError

N = 4000


def _z(n=N, seed=1):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _mc_tolerances(cov, n, k=5.0):
    """k standard errors of the sample mean and sample covariance of n independent Gaussian draws."""
    var = torch.diagonal(cov)
    se_mean = torch.sqrt(var / n)
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov**2) / n)
    return k * se_mean, k * se_cov


def test_mala_matches_gaussian_target():
    G, D, mu, cov, _ = gaussian_problem()
    res = lf.refine(G, D, _z(), method="ddls", steps=250, step_size=0.1, mala=True, seed=0, progress=False)
    tol_m, tol_c = _mc_tolerances(cov, N)
    assert torch.all((res.z.mean(0) - mu).abs() < tol_m)
    assert torch.all((torch.cov(res.z.T) - cov).abs() < tol_c)
    acc = res.info["accept_rate"]
    assert acc.shape == (N,) and 0.5 < float(acc.mean()) <= 1.0
    assert not res.diverged.any()


def test_ula_has_its_exact_O_step_bias():
    """ULA's stationary law on a Gaussian is N(mu, (Lam (I - eps Lam / 4))^-1): biased by O(eps)."""
    G, D, mu, cov, Lam = gaussian_problem()
    eps = 0.3
    res = lf.refine(G, D, _z(), method="ddls", steps=300, step_size=eps, seed=0, progress=False)
    cov_ula = ula_stationary_cov(Lam, eps)
    tol_m, tol_c = _mc_tolerances(cov_ula, N)
    emp = torch.cov(res.z.T)
    assert torch.all((res.z.mean(0) - mu).abs() < tol_m)  # ULA's mean is exact for linear drift
    assert torch.all((emp - cov_ula).abs() < tol_c)
    # and the bias is really there at this step size: the true covariance is rejected
    assert torch.any((emp - cov).abs() > tol_c)
    # MALA at the same step size removes it
    res_m = lf.refine(G, D, _z(), method="ddls", steps=300, step_size=eps, mala=True, seed=0, progress=False)
    assert torch.all((torch.cov(res_m.z.T) - cov).abs() < _mc_tolerances(cov, N)[1])


def test_noise_scale_sets_langevin_temperature():
    """x <- x - (eps/2) grad E + tau xi targets exp(-E / T), T = tau^2 / eps (spec §0.3)."""
    G, D, mu, cov, Lam = gaussian_problem()
    eps, tau = 0.02, 0.1  # T = 0.5
    res = lf.refine(
        G, D, _z(), method="ddls", steps=600, step_size=eps, noise_scale=tau, mala=True, seed=0, progress=False
    )
    T = tau**2 / eps
    assert res.info["langevin_temperature"] == pytest.approx(T)
    tol_m, tol_c = _mc_tolerances(T * cov, N)
    assert torch.all((torch.cov(res.z.T) - T * cov).abs() < tol_c)


def test_uniform_prior_stays_in_box_and_is_exact():
    """With d = 0 the target is the prior itself: uniform on [-1, 1]^2 (mean 0, var 1/3)."""
    zero_d = lambda x: torch.zeros(x.shape[0], dtype=x.dtype)
    z = torch.rand(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    res = lf.refine(
        Identity(),
        zero_d,
        z,
        method="ddls",
        prior="uniform",
        steps=100,
        step_size=0.2,
        mala=True,
        seed=0,
        progress=False,
    )
    assert res.z.abs().max() <= 1
    var = 1 / 3
    assert torch.all(res.z.mean(0).abs() < 5 * math.sqrt(var / N))
    # variance of a uniform sample variance: (mu4 - var^2)/n with mu4 = 1/5
    assert torch.all((res.z.var(0) - var).abs() < 5 * math.sqrt((1 / 5 - var**2) / N))


def test_prob_output_is_converted_to_logit():
    G, D, *_ = gaussian_problem()
    Dp = lambda x: torch.sigmoid(D(x))
    a = lf.refine(G, D, _z(64), method="ddls", steps=20, seed=5, progress=False)
    b = lf.refine(G, Dp, _z(64), method="ddls", steps=20, seed=5, progress=False, d_output="prob")
    torch.testing.assert_close(a.z, b.z, rtol=1e-7, atol=1e-7)


def test_output_noise_extension_samples_joint_state():
    G, D, *_ = gaussian_problem()
    res = lf.refine(G, D, _z(256), method="ddls", steps=30, output_noise=0.1, seed=0, progress=False)
    zp = res.info["output_noise_z"]
    assert zp.shape == (256, 2)
    torch.testing.assert_close(res.x, G(res.z) + 0.1 * zp)


def test_same_seed_same_samples_and_batch_size_invariance():
    G, D, *_ = gaussian_problem()
    z = _z(64)
    a = lf.refine(G, D, z, method="ddls", steps=40, seed=11, progress=False)
    b = lf.refine(G, D, z, method="ddls", steps=40, seed=11, progress=False)
    c = lf.refine(G, D, z, method="ddls", steps=40, seed=11, progress=False, batch_size=7)
    assert torch.equal(a.z, b.z) and torch.equal(a.x, b.x)
    torch.testing.assert_close(a.z, c.z, rtol=1e-12, atol=1e-12)
    d = lf.refine(G, D, z, method="ddls", steps=40, seed=12, progress=False)
    assert not torch.equal(a.z, d.z)


def test_generator_leaves_global_rng_and_models_untouched():
    G, D, *_ = gaussian_problem()
    G.train()
    D.eval()
    before = [p.detach().clone() for p in list(G.parameters()) + list(D.parameters())]
    state = torch.get_rng_state()
    lf.refine(G, D, _z(32), method="ddls", steps=5, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(state, torch.get_rng_state())
    after = list(G.parameters()) + list(D.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(p.grad is None for p in after)
    assert all(p.requires_grad for p in after)
    assert G.training and not D.training


def test_eval_counts():
    G, D, *_ = gaussian_problem()
    res = lf.refine(G, D, _z(10), method="ddls", steps=7, seed=0, progress=False)
    # probe (2 rows) + initial evaluation + one evaluation per step
    assert res.info["n_G_backward"] == 10 * 8
    assert res.info["n_G_forward"] == 10 * 8 + 2
    assert res.info["n_D_backward"] == 10 * 8


def test_divergence_is_reported_and_chains_frozen(caplog):
    # d = 50 relu(x0)^2 pushes chains with x0 > 0 outwards exponentially: they blow up; others do not
    D = lambda x: 50 * torch.relu(x[:, 0]) ** 2
    z = torch.stack([torch.linspace(-3, 3, 32), torch.zeros(32)], 1).double()
    with caplog.at_level(logging.WARNING, logger="latentflow"):
        res = lf.refine(Identity(), D, z, method="ddls", steps=200, step_size=0.1, seed=0, progress=False)
    div = res.diverged
    assert div.any() and not div.all()
    assert torch.isfinite(res.x).all() and torch.isfinite(res.z).all()
    assert bool((res.info["diverged_step"][div] > 0).all())
    assert (res.info["diverged_step"][~div] == -1).all()
    assert "reduce step_size" in caplog.text
    first = int(torch.nonzero(div)[0])
    assert f"chains {first} (step" in caplog.text
    assert res.to_dict()["n_diverged"] == int(div.sum())


@pytest.mark.rng_ok
def test_contract_errors():
    G, D, *_ = gaussian_problem()
    with pytest.raises(ShapeError, match=r"z must have shape \[B, d\]; got shape \(4,\)"):
        lf.refine(G, D, torch.zeros(4, dtype=torch.float64), method="ddls", progress=False)
    bad_D = lambda x: torch.zeros(x.shape[0], 10)
    with pytest.raises(ShapeError, match=r"D\(x\) returned shape \(2, 10\); expected \(2,\) or \(2, 1\)"):
        lf.refine(G, bad_D, _z(64), method="ddls", progress=False)
    with pytest.raises(
        OptionError,
        match=r'Unknown method "ddsl". Available: ddls, dflow, dg_langevin, dg_score, dgflow, dot, drs, ex2mcmc, mh',
    ):
        lf.refine(G, D, _z(4), method="ddsl")
    with pytest.raises(OptionError, match=r"unknown option\(s\) stepsize. Valid options: .*step_size"):
        lf.refine(G, D, _z(4), method="ddls", stepsize=0.1)
    with pytest.raises(OptionError, match="step_size must be > 0"):
        lf.refine(G, D, _z(4), method="ddls", step_size=-1.0, progress=False)
    with pytest.raises(OptionError, match="adapt_steps needs mala=True"):
        lf.refine(G, D, _z(4), method="ddls", adapt_steps=5, progress=False)
    with pytest.raises(ShapeError, match="non-finite"):
        lf.refine(G, D, torch.full((4, 2), float("nan"), dtype=torch.float64), method="ddls", progress=False)
    with pytest.raises(ShapeError, match=r"G\(z\) failed on z of shape \(2, 3\)"):
        lf.refine(G, D, torch.zeros(4, 3, dtype=torch.float64), method="ddls", progress=False)
    with pytest.raises(OptionError, match="d_output must be one of"):
        lf.refine(G, D, _z(4), method="ddls", d_output="score", progress=False)


def test_step_size_adaptation_reaches_target():
    G, D, *_ = gaussian_problem()
    res = lf.refine(
        G,
        D,
        _z(500),
        method="ddls",
        steps=400,
        step_size=2.0,
        mala=True,
        adapt_steps=200,
        target_accept=0.6,
        seed=0,
        progress=False,
    )
    acc = float(res.info["accept_rate"].mean())
    # per-chain Robbins-Monro; the post-adaptation acceptance of 500 chains x 200 steps lands near 0.6
    assert abs(acc - 0.6) < 0.1
    assert float(res.info["step_size_final"].mean()) < 2.0


def test_callback_sees_every_step():
    G, D, *_ = gaussian_problem()
    seen = []
    lf.refine(
        G,
        D,
        _z(8),
        method="ddls",
        steps=5,
        seed=0,
        progress=False,
        callback=lambda s: seen.append((s.i, s.state.shape, s.energy.shape)),
    )
    assert [s[0] for s in seen] == list(range(5))
    assert seen[0][1] == (8, 2) and seen[0][2] == (8,)


# -- step-size / noise schedules (StudioGAN's lgv_decay) ---------------------------------------------------


def _ula_moments(Lam, mu, schedule):
    """Exact mean and covariance of ULA z <- z - (eps_i/2) Lam (z - mu) + tau_i xi from z0 ~ N(0, I)."""
    I = torch.eye(2, dtype=torch.float64)
    m, S = torch.zeros(2, dtype=torch.float64), I.clone()
    for eps, tau in schedule:
        M = I - 0.5 * eps * Lam
        m = mu + M @ (m - mu)
        S = M @ S @ M.T + tau**2 * I
    return m, S


def _studiogan_schedule(rate, std, decay, decay_steps, steps):
    """(rate_i, noise std_i) of PyTorch-StudioGAN's langevin_sampling, written as StudioGAN does: the noise is
    sqrt(rate) * N(0, std I) * scaler, and rate and scaler are both multiplied by decay every decay_steps."""
    out, scaler = [], 1.0
    for i in range(steps):
        out.append((rate, math.sqrt(rate) * math.sqrt(std) * scaler))
        if decay > 0 and decay_steps > 0 and (i + 1) % decay_steps == 0:
            rate *= decay
            scaler *= decay
    return out


def test_studiogan_schedule_matches_exact_ula_moments():
    from latentflow.samplers.ddls import studiogan_options

    G, D, mu, cov, Lam = gaussian_problem()
    sg = dict(lgv_rate=0.3, lgv_std=0.5, lgv_decay=0.6, lgv_decay_steps=8, lgv_steps=30)
    opts = studiogan_options(**sg)
    assert opts["decay_every"] == 8 and opts["noise_decay"] == pytest.approx(0.6**1.5)
    res = lf.refine(G, D, _z(), method="ddls", seed=0, progress=False, **opts)
    m_ref, S_ref = _ula_moments(
        Lam,
        mu,
        _studiogan_schedule(sg["lgv_rate"], sg["lgv_std"], sg["lgv_decay"], sg["lgv_decay_steps"], sg["lgv_steps"]),
    )
    tol_m, tol_c = _mc_tolerances(S_ref, N)
    assert torch.all((res.z.mean(0) - m_ref).abs() < tol_m)
    assert torch.all((torch.cov(res.z.T) - S_ref).abs() < tol_c)
    assert float(res.info["step_size_final"][0]) == pytest.approx(0.3 * 0.6**3)
    assert float(res.info["noise_scale_final"][0]) == pytest.approx(math.sqrt(0.3 * 0.5) * 0.6**4.5)
    # the decay is really there: the same run without it has a measurably different covariance
    _, S_flat = _ula_moments(Lam, mu, _studiogan_schedule(0.3, 0.5, -1, -1, 30))
    assert torch.any((torch.cov(res.z.T) - S_flat).abs() > tol_c)
    # no decay options when StudioGAN applies none
    assert "decay_every" not in studiogan_options(0.1, 1.0)


def test_default_noise_decay_keeps_temperature_and_mala_stays_exact():
    G, D, mu, cov, _ = gaussian_problem()
    res = lf.refine(
        G,
        D,
        _z(),
        method="ddls",
        steps=200,
        step_size=0.4,
        mala=True,
        decay_every=50,
        step_decay=0.5,
        seed=0,
        progress=False,
    )
    assert float(res.info["step_size_final"][0]) == pytest.approx(0.4 * 0.5**4)
    T = res.info["noise_scale_final"][0] ** 2 / res.info["step_size_final"][0]
    assert float(T) == pytest.approx(1.0)
    tol_m, tol_c = _mc_tolerances(cov, N)
    assert torch.all((res.z.mean(0) - mu).abs() < tol_m)
    assert torch.all((torch.cov(res.z.T) - cov).abs() < tol_c)


def test_schedule_option_errors():
    G, D, *_ = gaussian_problem()
    with pytest.raises(OptionError, match=r"noise_decay must be None or sqrt\(step_decay\)"):
        lf.refine(G, D, _z(4), method="ddls", mala=True, decay_every=5, step_decay=0.5, noise_decay=0.5, progress=False)
    with pytest.raises(OptionError, match="decay_every must be >= 0"):
        lf.refine(G, D, _z(4), method="ddls", decay_every=-1, progress=False)
    with pytest.raises(OptionError, match="step_decay must be > 0"):
        lf.refine(G, D, _z(4), method="ddls", step_decay=0.0, progress=False)


# -- scale-free step-size adaptation ------------------------------------------------------------------------


def _isotropic(sigma, k=10, n=500):
    """Target N(0, sigma^2 I_k): Identity G and d(x) = -(1/sigma^2 - 1)|x|^2 / 2; chains start in it."""
    from analytic import QuadraticD

    D = QuadraticD(torch.zeros(k, dtype=torch.float64), (1 / sigma**2 - 1) * torch.eye(k, dtype=torch.float64))
    z = sigma * torch.randn(n, k, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return D, z


def test_step_size_adaptation_is_scale_free():
    """From eps0 four decades apart the adapted step lands at one value, which is the target's scale: MALA's
    acceptance on N(0, s^2 I) depends on eps / s^2 only, so the adapted eps moves with s^2."""
    adapted = {}
    for sigma in (0.3, 1.0):
        D, z = _isotropic(sigma)
        for eps0 in (1e-4, 1e-2, 1.0):
            res = lf.refine(
                Identity(),
                D,
                z,
                method="ddls",
                steps=150,
                step_size=eps0,
                mala=True,
                adapt_steps=50,
                seed=0,
                progress=False,
            )
            adapted[sigma, eps0] = float(res.info["step_size_final"].median())
            acc = res.info["accept_rate"]
            # acceptance after adaptation: 500 chains x 100 steps have an MC error of ~0.003 (sd of a chain's
            # rate ~0.07 / sqrt(500)); the averaged eps of each chain keeps a spread of ~+-15 %, which biases
            # the mean acceptance by ~0.01 (acceptance is not linear in eps): 0.02 covers both
            assert abs(float(acc.mean()) - 0.574) < 0.02, (sigma, eps0, float(acc.mean()))
        eps = [adapted[sigma, e] for e in (1e-4, 1e-2, 1.0)]
        assert max(eps) / min(eps) < 1.5, eps
    # the scale: eps ∝ sigma^2 (0.3^2 = 0.09), to the factor 1.2 the chains' spread allows
    assert 0.09 / 1.2 < adapted[0.3, 1e-2] / adapted[1.0, 1e-2] < 0.09 * 1.2
    # and it is the step that hits the target: MALA at that fixed eps accepts 0.574 +- its bias above
    D, z = _isotropic(0.3)
    fixed = lf.refine(
        Identity(), D, z, method="ddls", steps=100, step_size=adapted[0.3, 1e-2], mala=True, seed=1, progress=False
    )
    assert abs(float(fixed.info["accept_rate"].mean()) - 0.574) < 0.02


def test_step_size_adaptation_is_deterministic_per_chain():
    """Per-chain adaptation: a chain's adapted eps does not depend on the other chains (chunking or a split)."""
    D, z = _isotropic(0.5, n=40)
    kw = dict(method="ddls", steps=30, step_size=0.01, mala=True, adapt_steps=20, seed=3, progress=False)
    full = lf.refine(Identity(), D, z, **kw)
    part = lf.refine(Identity(), D, z[10:25], chain_offset=10, **kw)
    chunked = lf.refine(Identity(), D, z, batch_size=7, **kw)
    torch.testing.assert_close(part.info["step_size_final"], full.info["step_size_final"][10:25])
    torch.testing.assert_close(chunked.info["step_size_final"], full.info["step_size_final"])
    torch.testing.assert_close(part.x, full.x[10:25])
