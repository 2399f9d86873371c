"""dg_score: discriminator-guided EDM Heun / annealed Langevin sampling of a score model, against closed
forms (Gaussian mixtures whose scores and density ratios are exact) and the pure functions of
latentflow.scores."""

import json
import math

import pytest
import torch
from test_scores import STD, W_TRUE, C, _moments, exact_score, mix_logpdf

import latentflow as lf
from latentflow.errors import DivergenceError, DivergenceWarning, OptionError, ShapeError
from latentflow.scores import as_score, edm_heun_sample, edm_sigmas, guided_score

W_WRONG = [0.3, 0.7]


def _wrong_model_and_exact_ratio():
    """q: the mixture of the data's components with the wrong weights; the logit log p_σ - log q_σ."""
    s_q = exact_score(C, STD, W_WRONG)
    logit = lambda x, s: mix_logpdf(x, C, STD, W_TRUE, s) - mix_logpdf(x, C, STD, W_WRONG, s)
    return s_q, logit


def _z(n, *shape, seed=1, dtype=torch.float64):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_heun_with_the_exact_ratio_turns_a_wrong_model_into_the_data():
    # p = 0.8 N((-2, 0), 0.25 I) + 0.2 N((2, 0), 0.25 I); the score model follows q (weights 0.3 / 0.7). With
    # the exact log ratio as D and w = 1 the guided score is p_σ's, so the Heun ODE samples p. The ratio is exact
    # at every noise level, so it guides every level (guide_range=None; the default guides σ <= 1 only).
    s_q, logit = _wrong_model_and_exact_ratio()
    n = 2000
    z = _z(n, 2)
    res = lf.refine(
        None, logit, z, method="dg_score", score=s_q, steps=18, sigma_max=40.0, guide_range=None, progress=False
    )
    left, mean0, var1 = _moments(res.x)
    # MC errors at n = 2000: P(left) 0.8 ± 0.009; E[x0] = -1.2 ± 0.037 (Var x0 = 2.81); Var x1 = 0.25 ± 0.008
    assert abs(left - 0.8) < 0.04, left
    assert abs(mean0 + 1.2) < 0.15, mean0
    assert abs(var1 - 0.25) < 0.035, var1
    # unguided, the same sampler follows q: P(left) near 0.3
    res0 = lf.refine(None, logit, z, method="dg_score", score=s_q, w=0.0, steps=18, sigma_max=40.0, progress=False)
    assert abs(_moments(res0.x)[0] - 0.3) < 0.04
    assert res0.info["n_D_forward"] == 0 and res0.info["n_D_backward"] == 0
    assert res.info["nfe"] == res0.info["nfe"] == 2 * 18 - 1
    # counters: every score evaluation counted (+ the 2-row shape probe), D forward/backward at each of them
    assert res.info["n_score_forward"] == 35 * n + 2
    assert res.info["n_D_backward"] == 35 * n and res.info["n_D_forward"] == 35 * n + 2


@pytest.mark.rng_ok  # nn.Linear initialises from the global RNG
def test_equals_the_pure_edm_heun_sampler_with_and_without_guidance():
    from latentflow.nets.score_nets import build_score_net

    torch.manual_seed(0)
    den = build_score_net("den_mlp", in_dim=2, width=16, depth=2).double().eval()
    D = build_score_net("dg_mlp", in_dim=2, width=16, depth=2).double().eval()
    z = _z(40, 2)
    N, smax = 6, 20.0
    sig = edm_sigmas(N, 0.002, smax, 7.0)
    ref0 = edm_heun_sample(as_score(den, "denoised"), smax * z, sig)
    for d in (None, D):  # w = 0: D is never called, so it may be None
        got = lf.refine(
            None,
            d,
            z,
            method="dg_score",
            score=den,
            score_output="denoised",
            w=0.0,
            steps=N,
            sigma_max=smax,
            progress=False,
        )
        torch.testing.assert_close(got.x, ref0, rtol=0, atol=1e-12)
    # guided on σ ∈ [0.01, 2]: the same as the Heun sampler on latentflow.scores.guided_score
    ref = edm_heun_sample(guided_score(as_score(den, "denoised"), D, 1.5, sigma_range=(0.01, 2.0)), smax * z, sig)
    got = lf.refine(
        None,
        D,
        z,
        method="dg_score",
        score=den,
        score_output="denoised",
        w=1.5,
        steps=N,
        sigma_max=smax,
        guide_range=(0.01, 2.0),
        progress=False,
    )
    torch.testing.assert_close(got.x, ref, rtol=0, atol=1e-10)
    assert not torch.allclose(got.x, ref0)
    # explicit grid = the EDM grid; "prob" D gives the same correction as its logit
    got2 = lf.refine(
        None,
        lambda x, s: torch.sigmoid(D(x, s)),
        z,
        method="dg_score",
        score=den,
        score_output="denoised",
        w=1.5,
        sigmas=sig.tolist(),
        d_output="prob",
        guide_range=(0.01, 2.0),
        progress=False,
    )
    torch.testing.assert_close(got2.x, ref, rtol=1e-6, atol=1e-6)


def test_eps_and_denoised_outputs_agree_with_the_score():
    s_q, _ = _wrong_model_and_exact_ratio()
    den = lambda x, s: x + s[:, None] ** 2 * s_q(x, s)  # Tweedie
    eps = lambda x, s: -s[:, None] * s_q(x, s)
    z = _z(64, 2)
    kw = dict(method="dg_score", w=0.0, steps=8, sigma_max=10.0, progress=False)
    ref = lf.refine(None, None, z, score=s_q, **kw).x
    for out, m in (("denoised", den), ("eps", eps)):
        torch.testing.assert_close(
            lf.refine(None, None, z, score=m, score_output=out, **kw).x, ref, rtol=1e-9, atol=1e-9
        )


def test_langevin_single_level_has_the_exact_ula_stationary_law():
    # data N(μ, s² I); the model q = N(0, 4 I) is wrong; D = log p_σ - log q_σ is exact. At one level σ the
    # guided score is -(x - μ)/v, v = s² + σ², and x <- x + (α/2) s̃ + sqrt(α) ξ has stationary variance
    # v / (1 - α/(4 v)) (ULA on a Gaussian); here σ_L = σ so α = ε.
    mu, s, sq, sigma, a, n = 1.5, 0.6, 2.0, 0.3, 0.05, 4000
    v, vq = s**2 + sigma**2, sq**2 + sigma**2
    score_q = lambda x, sg: -x / (sq**2 + sg[:, None] ** 2)
    D = lambda x, sg: (
        -0.5 * ((x - mu) ** 2).sum(1) / (s**2 + sg**2)
        + 0.5 * (x**2).sum(1) / (sq**2 + sg**2)
        - math.log(s**2 + sg[0] ** 2)
        + math.log(sq**2 + sg[0] ** 2)
    )
    z = _z(n, 2, seed=0)
    res = lf.refine(
        None,
        D,
        z,
        method="dg_score",
        score=score_q,
        solver="langevin",
        sigmas=[sigma],
        langevin_steps=300,
        step_size=a,
        seed=0,
        progress=False,
    )
    var = v / (1 - a / (4 * v))
    assert torch.all((res.x.mean(0) - mu).abs() < 5 * math.sqrt(var / n))
    assert torch.all((res.x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n))
    assert res.info["nfe"] == 300
    # unguided it samples q at that level
    r0 = lf.refine(
        None,
        None,
        z,
        method="dg_score",
        score=score_q,
        w=0.0,
        solver="langevin",
        sigmas=[sigma],
        langevin_steps=300,
        step_size=a,
        seed=0,
        progress=False,
    )
    assert float(r0.x.mean(0).abs().max()) < 0.2 and abs(float(r0.x.var(0).mean()) - vq) < 0.3


def test_annealed_langevin_with_the_exact_ratio_recovers_the_mixture_weights():
    s_q, logit = _wrong_model_and_exact_ratio()
    z = _z(2000, 2)
    kw = dict(
        method="dg_score",
        score=s_q,
        solver="langevin",
        steps=10,
        sigma_max=10.0,
        sigma_min=0.1,
        langevin_steps=20,
        step_size=0.01,
        guide_range=None,  # the exact ratio: every level
        seed=0,
        progress=False,
    )
    left, mean0, var1 = _moments(lf.refine(None, logit, z, **kw).x)
    # p_{σ_L} has Var x1 = 0.25 + 0.01. At this budget (T = 20, ε/σ_L² = 1) annealed Langevin is not converged:
    # measured P(left) 0.77 and Var x1 0.28 (MC errors 0.009, 0.009); the bounds are loose on purpose, the exact
    # check of the Langevin step is the single-level test above. Unguided, P(left) stays near q's 0.3.
    assert abs(left - 0.8) < 0.06, left
    assert abs(var1 - 0.26) < 0.04, var1
    left0 = _moments(lf.refine(None, None, z, **{**kw, "w": 0.0}).x)[0]
    assert abs(left0 - 0.3) < 0.06, left0


def _heun_churn_variance(v, sig, s_churn, s_tmin, s_tmax):
    """Output variance of Alg. 2 on data N(0, v) (exact score -x/(v + σ²)), from x_T ~ N(0, σ_0²): each step
    is linear, x_next = c (x + sqrt(σ̂² - σ²) ξ), so Var_{i+1} = c² (Var_i + σ̂² - σ²)."""
    N = len(sig) - 1
    var = sig[0] ** 2
    for s, s_n in zip(sig, sig[1:]):
        gam = min(s_churn / N, math.sqrt(2) - 1) if s_tmin <= s <= s_tmax else 0.0
        sh = s * (1 + gam)
        h, a = s_n - sh, sh / (v + sh**2)
        c = 1 + h * a if s_n == 0 else 1 + h / 2 * (a + s_n / (v + s_n**2) * (1 + h * a))
        var = c**2 * (var + sh**2 - s**2)
    return var


def test_churn_matches_alg2_on_a_gaussian_and_uses_the_seed():
    v, n = 0.5, 4000
    score = lambda x, s: -x / (v + s[:, None] ** 2)
    z = _z(n, 1)
    kw = dict(
        method="dg_score",
        score=score,
        w=0.0,
        steps=18,
        sigma_max=20.0,
        s_churn=20.0,
        s_tmin=0.05,
        s_tmax=10.0,
        progress=False,
    )
    a = lf.refine(None, None, z, seed=0, **kw)
    want = _heun_churn_variance(v, edm_sigmas(18, 0.002, 20.0).tolist(), 20.0, 0.05, 10.0)
    assert abs(want - v) > 0.05  # Heun + churn at N = 18 is visibly off v (Karras et al. 2022, §4) ...
    assert abs(float(a.x.var()) - want) < 4 * want * math.sqrt(2 / n), (float(a.x.var()), want)
    # ... and the churned sampler converges to the target as N grows
    assert abs(_heun_churn_variance(v, edm_sigmas(400, 0.002, 20.0).tolist(), 20.0, 0.05, 10.0) - v) < 0.005
    b = lf.refine(None, None, z, seed=0, **kw)
    c = lf.refine(None, None, z, seed=1, **kw)
    assert torch.equal(a.x, b.x) and not torch.allclose(a.x, c.x)
    plain = lf.refine(None, None, z, **{**kw, "s_churn": 0.0})
    # without churn the sampler is the linear map x = c σ_max z: its variance is the recursion's times Var(z)
    want0 = _heun_churn_variance(v, edm_sigmas(18, 0.002, 20.0).tolist(), 0.0, 0.0, 1.0) * float(z.var())
    assert abs(float(plain.x.var()) - want0) < 1e-9
    # deterministic Heun draws nothing: the seed does not matter
    torch.testing.assert_close(lf.refine(None, None, z, seed=5, **{**kw, "s_churn": 0.0}).x, plain.x, rtol=0, atol=0)


@pytest.mark.rng_ok  # nn.Linear initialises from the global RNG
@pytest.mark.parametrize("solver", ["heun", "langevin"])
def test_batch_size_and_chain_offset_invariance(solver):
    from latentflow.nets.score_nets import build_score_net

    torch.manual_seed(0)
    den = build_score_net("den_mlp", in_dim=2, width=16, depth=2).eval()
    D = build_score_net("dg_mlp", in_dim=2, width=16, depth=2).eval()
    n = 23
    z = _z(n, 2, dtype=torch.float32)
    kw = dict(
        method="dg_score",
        score=den,
        score_output="denoised",
        w=1.0,
        steps=6,
        sigma_max=10.0,
        solver=solver,
        seed=3,
        progress=False,
    )
    kw.update(dict(s_churn=5.0) if solver == "heun" else dict(langevin_steps=3, step_size=1e-3, sigma_min=0.05))
    full = lf.refine(None, D, z, **kw)
    for bs in (1, 7):
        got = lf.refine(None, D, z, batch_size=bs, **kw)
        torch.testing.assert_close(got.x, full.x, rtol=0, atol=1e-4)
        assert got.info["n_score_forward"] == full.info["n_score_forward"]
    parts = [lf.refine(None, D, z[a:b], chain_offset=a, **kw).x for a, b in ((0, 5), (5, n))]
    torch.testing.assert_close(torch.cat(parts), full.x, rtol=0, atol=1e-4)


def test_divergence_is_reported_per_chain():
    def score(x, s):  # chains far right blow up once σ < 5
        out = -x / (1 + s[:, None] ** 2)
        bad = (x[:, 0] > 2.0) & (s < 5)
        return torch.where(bad[:, None], torch.full_like(out, float("nan")), out)

    z = torch.zeros(8, 2, dtype=torch.float64)
    z[:2, 0] = 1.0  # x_T = 20 z: rows 0 and 1 start at 20, x(σ) = 20 sqrt((1 + σ²)/401) > 2 at σ < 5
    with pytest.warns(DivergenceWarning, match=r"2 of 8 chains diverged.*chains 0 \(step \d+\), 1"):
        res = lf.refine(None, None, z, method="dg_score", score=score, w=0.0, steps=10, sigma_max=20.0, progress=False)
    assert res.info["diverged"].tolist() == [True, True] + [False] * 6
    assert torch.isfinite(res.x).all()  # frozen at their last finite state
    assert (res.info["diverged_step"][:2] > 0).all()
    # a score that is non-finite at the start is the model's fault
    with pytest.raises(DivergenceError, match="initial state"):
        lf.refine(None, None, z, method="dg_score", score=lambda x, s: x * float("nan"), w=0.0, steps=4, progress=False)


def test_clear_errors():
    s_q, logit = _wrong_model_and_exact_ratio()
    z = _z(4, 2)
    kw = dict(method="dg_score", progress=False)
    with pytest.raises(OptionError, match="needs score=S"):
        lf.refine(None, logit, z, **kw)
    with pytest.raises(OptionError, match="score must be Callable"):
        lf.refine(None, logit, z, score="unet.pt", **kw)
    with pytest.raises(OptionError, match="takes no generator: pass G=None"):
        lf.refine(lambda t: t, logit, z, score=s_q, **kw)
    with pytest.raises(OptionError, match=r"w=1.0 needs a noise-conditioned discriminator D\(x, sigma\)"):
        lf.refine(None, None, z, score=s_q, **kw)
    with pytest.raises(ShapeError, match=r"must return a torch.float64 tensor of shape \(2, 2\)"):
        lf.refine(None, logit, z, score=lambda x, s: x[:, :1], **kw)
    with pytest.raises(ShapeError, match=r"score model S\(x, sigma\) failed on x of shape \(2, 2\)"):
        lf.refine(None, logit, z, score=lambda x: x, **kw)
    with pytest.raises(ShapeError, match=r"D\(x, t\) returned shape \(2, 2\)"):
        lf.refine(None, lambda x, s: x, z, score=s_q, **kw)
    with pytest.raises(ShapeError, match=r"z must have shape \[B, \*X\]"):
        lf.refine(None, logit, torch.zeros(4, dtype=torch.float64), score=s_q, **kw)
    bad = [
        (dict(solver="langevin", s_churn=1.0), "s_churn is a Heun option"),
        (dict(sigmas=[1.0, 2.0, 0.0]), "decrease strictly"),
        (dict(solver="langevin", sigmas=[1.0, 0.0]), "positive and non-increasing"),
        (dict(guide_range=(2.0, 1.0)), "guide_range must be"),
        (dict(score_output="raw"), "needs sigma_data"),
        (dict(score_output="velocity"), "score_output must be one of"),
        (dict(sigma_min=100.0), "sigma_min must be < sigma_max"),
        (dict(steps=1), "steps must be >= 2"),
    ]
    for opts, msg in bad:
        with pytest.raises(OptionError, match=msg):
            lf.refine(None, logit, z, score=s_q, **kw, **opts)


def test_methods_declare_the_score_role_and_results_serialise():
    info = lf.methods()["dg_score"]
    assert info.needs.score and info.needs.discriminator == ("D(x, sigma)",) and info.needs.discriminator_optional
    assert info.options["score"] is None and info.options["solver"] == "heun"
    json.dumps(info.to_dict())
    s_q, logit = _wrong_model_and_exact_ratio()
    res = lf.refine(None, logit, _z(6, 2), method="dg_score", score=s_q, steps=3, progress=False)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["options"]["score"].startswith("<function") and d["nfe"] == 5 and "d_mean" in d


@pytest.mark.rng_ok  # the conv layers initialise from the global RNG
def test_image_shaped_state_with_a_conv_discriminator():
    from latentflow.nets.score_nets import build_score_net

    torch.manual_seed(0)
    D = build_score_net("dg_conv28", channels=1, ch=4).eval()
    score = lambda x, s: -x / (0.25 + s[:, None, None, None] ** 2)  # data N(0, 0.25 I) in [1, 28, 28]
    z = _z(5, 1, 28, 28, dtype=torch.float32)
    kw = dict(method="dg_score", score=score, w=2.0, steps=4, sigma_max=10.0, guide_range=(0.002, 5.0), progress=False)
    res = lf.refine(None, D, z, **kw)
    assert res.x.shape == z.shape and torch.isfinite(res.x).all()
    # 7 score evaluations per sample (σ_0..σ_3 and the Heun corrections at σ_1..σ_3); D at the 6 with σ <= 5
    sig = edm_sigmas(4, 0.002, 10.0).tolist()
    guided = sum(0.002 <= s <= 5.0 for s in sig[:-1] + sig[1:-1])
    assert guided == 6
    assert res.info["n_D_backward"] == guided * 5 and res.info["n_score_forward"] == 7 * 5 + 2
    torch.testing.assert_close(lf.refine(None, D, z, batch_size=2, **kw).x, res.x, rtol=0, atol=1e-4)
    plain = lf.refine(None, D, z, **{**kw, "w": 0.0})
    assert not torch.allclose(plain.x, res.x)


def test_model_folders_do_not_claim_to_fit_dg_score():
    from latentflow.app.fit import fitting_methods, misfit

    meta = {"name": "dgd", "roles": ["D"], "d_conditioning": "sigma"}
    assert "score model" in misfit("dg_score", meta) and "dg_score" not in fitting_methods(meta)
