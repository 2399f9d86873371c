import math

import torch
from analytic import Identity, RatioD

import latentflow as lf


def test_platt_scaling_recovers_the_density_ratio_logit():
    """D = 3 d* + 2 with d* the true log-ratio: calibration must find a = 1/3, b = -2/3."""
    d_star = RatioD([0.5, -0.3], 0.8)
    D = lambda x: 3 * d_star(x) + 2
    g = torch.Generator().manual_seed(0)
    n = 20000
    real = torch.tensor([0.5, -0.3], dtype=torch.float64) + 0.8 * torch.randn(n, 2, dtype=torch.float64, generator=g)
    fake = torch.randn(n, 2, dtype=torch.float64, generator=g)
    cal = lf.calibrate(D, real, fake)
    a, b = cal.fit_info["a"], cal.fit_info["b"]
    # standard errors from the Fisher information of the 2-parameter logistic model
    s = torch.cat([D(real), D(fake)])
    X = torch.stack([s, torch.ones_like(s)], 1)
    p = torch.sigmoid(X @ torch.tensor([a, b], dtype=torch.float64))
    cov = torch.linalg.inv((X * (p * (1 - p)).unsqueeze(1)).T @ X)
    se = cov.diagonal().sqrt()
    assert abs(a - 1 / 3) < 5 * float(se[0])
    assert abs(b + 2 / 3) < 5 * float(se[1])
    assert cal.fit_info["bce_after"] <= cal.fit_info["bce_before"]
    # the calibrated D drives MH-GAN to the data distribution
    z = torch.randn(3000, 2, dtype=torch.float64, generator=g)
    res = lf.refine(Identity(), cal, z, method="mh", k=40, seed=0, progress=False)
    assert torch.all(
        (res.x.mean(0) - torch.tensor([0.5, -0.3], dtype=torch.float64)).abs() < 5 * math.sqrt(0.64 / 3000)
    )
