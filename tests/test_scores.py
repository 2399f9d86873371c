"""latentflow.scores against closed forms: Gaussian-mixture scores, the EDM grid, Heun's order, and
discriminator guidance with the exact log density ratio."""

import math

import pytest
import torch

from latentflow.errors import OptionError, ShapeError
from latentflow.scores import as_score, dg_correction, edm_heun_sample, edm_precond, edm_sigmas, guided_score, heun_step


def mix_logpdf(x, centers, std, weights, sigma):
    """log of ``Σ_k w_k N(x; μ_k, (std² + σ²) I)`` (``σ`` a [B] tensor), differentiable in ``x``."""
    v = std**2 + sigma.reshape(-1, 1) ** 2  # [B, 1]
    n = x.shape[1]
    d2 = ((x[:, None, :] - centers[None]) ** 2).sum(-1)  # [B, K]
    logw = torch.log(torch.as_tensor(weights, dtype=x.dtype))
    return torch.logsumexp(logw - d2 / (2 * v), 1) - 0.5 * n * torch.log(2 * math.pi * v[:, 0])


def exact_score(centers, std, weights):
    def s(x, sigma):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(mix_logpdf(xg, centers, std, weights, sigma).sum(), xg)
        return g

    return s


C = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
STD = 0.5
W_TRUE = [0.8, 0.2]


def test_conversions_agree_with_the_analytic_score():
    s = exact_score(C, STD, W_TRUE)
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(64, 2, generator=g, dtype=torch.float64)
    sig = torch.exp(torch.randn(64, generator=g, dtype=torch.float64))
    ref = s(x, sig)
    sc = sig[:, None]
    den = lambda x_, s_: x_ + s_[:, None] ** 2 * s(x_, s_)  # Tweedie: E[y | x]
    eps = lambda x_, s_: -s_[:, None] * s(x_, s_)
    sd = 0.5

    def raw(xin, c_noise):  # F with D = c_skip x + c_out F
        s_ = torch.exp(4 * c_noise)
        c_skip, c_out, c_in, _ = edm_precond(s_[:, None], sd)
        x_ = xin / c_in
        return (den(x_, s_) - c_skip * x_) / c_out

    for out, m in (("score", s), ("denoised", den), ("eps", eps), ("raw", raw)):
        got = as_score(m, out, sigma_data=sd)(x, sig)
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9, msg=out)
    # a scalar sigma broadcasts to every sample
    torch.testing.assert_close(as_score(den, "denoised")(x, 0.7), s(x, torch.full((64,), 0.7, dtype=torch.float64)))
    assert sc.shape == (64, 1)


def test_as_score_checks_shapes_and_options():
    den = lambda x, s: x
    sc = as_score(den, "denoised")
    x = torch.zeros(4, 2)
    with pytest.raises(ShapeError, match=r"sigma must be .* shape \(4,\)"):
        sc(x, torch.ones(3))
    with pytest.raises(ShapeError, match="must return a torch.float32 tensor of shape"):
        as_score(lambda x, s: x[:, :1], "denoised")(x, 1.0)
    with pytest.raises(ShapeError, match="must return a torch.float32"):
        as_score(lambda x, s: x.double(), "eps")(x, 1.0)
    with pytest.raises(ShapeError, match="floating tensor"):
        sc(torch.zeros(4, 2, dtype=torch.long), 1.0)
    with pytest.raises(OptionError, match="output must be one of"):
        as_score(den, "velocity")
    with pytest.raises(OptionError, match="sigma_data"):
        as_score(den, "raw")


def test_edm_sigmas_formula():
    s = edm_sigmas(5, 0.002, 80.0, 7.0)
    assert s.shape == (6,) and s[-1] == 0
    torch.testing.assert_close(s[0], torch.tensor(80.0, dtype=torch.float64))
    torch.testing.assert_close(s[4], torch.tensor(0.002, dtype=torch.float64))
    a, b = 80 ** (1 / 7), 0.002 ** (1 / 7)
    torch.testing.assert_close(s[2], torch.tensor((a + 0.5 * (b - a)) ** 7, dtype=torch.float64))
    assert (s[1:] < s[:-1]).all()
    with pytest.raises(OptionError):
        edm_sigmas(1)
    with pytest.raises(OptionError):
        edm_sigmas(4, 1.0, 0.5)


def test_heun_is_second_order_on_a_gaussian():
    # data N(0, v I): s(x, σ) = -x/(v + σ²); the ODE's flow is x(σ) = x(σ0) sqrt((v + σ²)/(v + σ0²)).
    v = 0.3
    score = lambda x, s: -x / (v + s[:, None] ** 2)
    x0 = torch.linspace(-5, 5, 11, dtype=torch.float64)[:, None]
    s0, s1 = 5.0, 0.1
    exact = x0 * math.sqrt((v + s1**2) / (v + s0**2))
    errs = []
    for n in (8, 16, 32):
        sig = torch.linspace(s0, s1, n + 1, dtype=torch.float64)
        x = x0
        for a, b in zip(sig[:-1].tolist(), sig[1:].tolist()):
            x, nfe = heun_step(score, x, a, b)
            assert nfe == 2
        errs.append(float((x - exact).abs().max()))
    assert errs[0] / errs[1] > 3.5 and errs[1] / errs[2] > 3.5, errs  # halving h divides the error by ~4
    # the last step to σ = 0 is one Euler step (one evaluation)
    _, nfe = heun_step(score, x0, 0.5, 0.0)
    assert nfe == 1


def _moments(x):
    near_left = float((x[:, 0] < 0).double().mean())
    return near_left, float(x[:, 0].mean()), float(x[:, 1].var())


@pytest.mark.parametrize("wrong", ["weights", "wide"])
def test_exact_log_ratio_guidance_recovers_the_data_distribution(wrong):
    # p: 0.8 N((-2, 0), 0.25 I) + 0.2 N((2, 0), 0.25 I). The model q is wrong: the mixture with weights
    # (0.3, 0.7), or a single wide Gaussian N(0, 9 I). With the exact log ratio log p_σ - log q_σ as a logit
    # D and w = 1 the guided score is the score of p_σ, so Heun sampling gives p (up to discretisation).
    if wrong == "weights":
        cq, sq, wq = C, STD, [0.3, 0.7]
    else:
        cq, sq, wq = torch.zeros(1, 2, dtype=torch.float64), 3.0, [1.0]
    s_q = exact_score(cq, sq, wq)
    logit = lambda x, s: mix_logpdf(x, C, STD, W_TRUE, s) - mix_logpdf(x, cq, sq, wq, s)
    n = 4000
    g = torch.Generator().manual_seed(1)
    sig = edm_sigmas(24, 0.002, 40.0, 7.0)
    x0 = 40.0 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = edm_heun_sample(guided_score(s_q, logit, 1.0), x0, sig)
    left, mean0, var1 = _moments(x)
    # MC errors at n = 4000: P(left) 0.8 ± 0.0063; E[x0] = -1.2 ± 0.027 (Var x0 = 4.25 - 1.44); Var x1 = 0.25 ± 0.0056
    assert abs(left - 0.8) < 0.03, left
    assert abs(mean0 + 1.2) < 0.11, mean0
    assert abs(var1 - 0.25) < 0.025, var1
    # without the correction the sampler follows q, visibly not p
    xq = edm_heun_sample(s_q, x0, sig)
    lq, mq, vq = _moments(xq)
    assert abs(lq - 0.8) > 0.15 or abs(vq - 0.25) > 0.5


def test_dg_correction_logit_prob_and_weight():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    a = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    logit = lambda x_, s_: (x_ * a).sum(1) * s_ + (x_**2).sum(1)
    prob = lambda x_, s_: torch.sigmoid(logit(x_, s_))
    sig = torch.full((16,), 0.5, dtype=torch.float64)
    exact = 0.5 * a + 2 * x  # ∇x of the logit at σ = 0.5
    torch.testing.assert_close(dg_correction(logit, x, sig), exact)
    torch.testing.assert_close(dg_correction(prob, x, sig, d_output="prob"), exact, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dg_correction(logit, x, 0.5, w=3.0), 3 * exact)
    assert not dg_correction(logit, x.requires_grad_(True), sig).requires_grad
    with pytest.raises(ShapeError, match="one value per sample"):
        dg_correction(lambda x_, s_: x_, x, sig)
    with pytest.raises(OptionError, match="d_output"):
        dg_correction(logit, x, sig, d_output="critic")
    base = lambda x_, s_: torch.zeros_like(x_)
    assert guided_score(base, None) is base
    torch.testing.assert_close(guided_score(base, logit, 2.0)(x.detach(), sig), 2 * exact)


def test_edm_heun_sample_batches_and_checks_the_grid():
    score = lambda x, s: -x / (1 + s[:, None] ** 2)
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 10
    sig = edm_sigmas(6, 0.01, 10.0)
    torch.testing.assert_close(edm_heun_sample(score, x0, sig, batch_size=3), edm_heun_sample(score, x0, sig))
    with pytest.raises(OptionError, match="decrease"):
        edm_heun_sample(score, x0, torch.tensor([1.0, 2.0, 0.0]))


@pytest.mark.rng_ok  # the UNet's initial weights come from the global RNG
def test_diffusers_score_with_a_tiny_unet():
    dmod = pytest.importorskip("diffusers")
    from latentflow.scores import diffusers_score

    torch.manual_seed(0)
    unet = dmod.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()
    sched = dmod.DDPMScheduler(num_train_timesteps=100)
    S = diffusers_score(unet, sched)
    ac = sched.alphas_cumprod.double()
    t = torch.tensor([3, 40, 97])
    sig = ((1 - ac[t]) / ac[t]).sqrt().float()
    g = torch.Generator().manual_seed(4)
    y = torch.randn(3, 1, 8, 8, generator=g)
    n = torch.randn(3, 1, 8, 8, generator=g)
    x = y + sig[:, None, None, None] * n  # VE state
    xt = ac[t].sqrt().float()[:, None, None, None] * y + (1 - ac[t]).sqrt().float()[:, None, None, None] * n
    torch.testing.assert_close(x / (1 + sig[:, None, None, None] ** 2).sqrt(), xt, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        eps = S(x, sig)
        ref = unet(xt, t).sample
        torch.testing.assert_close(eps, ref, rtol=1e-4, atol=1e-4)  # σ mapped back to the timestep t
        torch.testing.assert_close(as_score(S, "eps")(x, sig), -ref / sig[:, None, None, None], rtol=1e-4, atol=1e-4)
    assert S.sigma_min < float(sig.min()) and S.sigma_max >= float(sig.max()) * 0.999


def test_guided_score_sigma_range():
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    base = lambda x_, s_: torch.zeros_like(x_)
    logit = lambda x_, s_: x_.sum(1)  # ∇x = (1, 1)
    sig = torch.tensor([0.1, 1.0, 5.0, 50.0], dtype=torch.float64)
    got = guided_score(base, logit, 1.0, sigma_range=(0.5, 10.0))(x, sig)
    torch.testing.assert_close(got[:, 0], torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    with pytest.raises(OptionError, match="sigma_range"):
        guided_score(base, logit, 1.0, sigma_range=(2.0, 1.0))


@pytest.mark.rng_ok  # nn.Linear initialises from the global RNG
def test_score_nets_shapes_and_errors():
    from latentflow.nets.score_nets import SCORE_NETS, build_score_net

    assert set(SCORE_NETS) == {"den_mlp", "dg_mlp", "dg_conv28"}
    x2 = torch.randn(3, 2, generator=torch.Generator().manual_seed(6))
    den = build_score_net("den_mlp", in_dim=2, width=8, depth=2, x_freq=4)
    assert den(x2, torch.tensor([0.1, 1.0, 10.0])).shape == (3, 2)
    assert build_score_net("dg_mlp", in_dim=2, width=8, depth=2)(x2, 0.5).shape == (3,)
    d28 = build_score_net("dg_conv28", channels=1, ch=4)
    assert d28(torch.zeros(2, 1, 28, 28), torch.tensor([0.5, 5.0])).shape == (2,)
    with pytest.raises(ShapeError, match=r"sigma must be .* shape \(3,\)"):
        den(x2, torch.ones(2))
    with pytest.raises(ShapeError, match=r"\[B, C, 28, 28\]"):
        d28(torch.zeros(2, 1, 32, 32), 1.0)
    with pytest.raises(OptionError, match="Unknown score network"):
        build_score_net("unet9000")
    with pytest.raises(OptionError, match="x_freq"):
        build_score_net("den_mlp", x_freq=-1)
