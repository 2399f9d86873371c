import math

import torch

import latentflow as lf


def test_single_level_targets_gaussian_with_exact_ula_variance():
    """d = log N(x; mu, s^2 I): x <- x + (a/2) grad d + sqrt(a) xi has stationary variance s^2/(1 - a/(4 s^2))."""
    mu, s, a, n = 1.5, 0.7, 0.05, 4000
    D = lambda x: -0.5 * ((x - mu) ** 2).sum(1) / s**2
    x0 = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = lf.refine(None, D, x0, method="dg_langevin", steps=400, step_size=a, seed=0, progress=False)
    var = s**2 / (1 - a / (4 * s**2))
    assert torch.all((res.x.mean(0) - mu).abs() < 5 * math.sqrt(var / n))
    assert torch.all((res.x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n))


def test_annealed_noise_conditioned_discriminator():
    """D(x, sigma) = log N(x; mu, (s^2 + sigma^2) I): annealing ends near N(mu, s^2 + sigma_L^2)."""
    mu, s, n = -1.0, 0.5, 3000
    seen = set()

    def D(x, sigma):
        seen.add(round(float(sigma[0]), 6))
        return -0.5 * ((x - mu) ** 2).sum(1) / (s**2 + sigma**2)

    x0 = 3 * torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sig = [2.0, 1.0, 0.5, 0.1]
    res = lf.refine(None, D, x0, method="dg_langevin", sigmas=sig, steps=150, step_size=0.02, seed=0, progress=False)
    assert seen == set(sig)
    a = 0.02
    v = s**2 + sig[-1] ** 2
    var = v / (1 - a / (4 * v))
    assert torch.all((res.x.mean(0) - mu).abs() < 5 * math.sqrt(var / n))
    assert torch.all((res.x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n))


def test_noise_off_is_deterministic_gradient_ascent():
    D = lambda x: -0.5 * (x**2).sum(1)
    x0 = torch.ones(5, 3, dtype=torch.float64)
    res = lf.refine(None, D, x0, method="dg_langevin", steps=10, step_size=0.1, noise=False, progress=False)
    torch.testing.assert_close(res.x, x0 * (1 - 0.05) ** 10)
