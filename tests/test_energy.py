import math

import torch

from latentflow.energy import latent_from_u, to_logit, u_from_latent


def test_prob_to_logit_is_stable_and_exact():
    d = torch.tensor([-30.0, -2.0, 0.0, 3.0, 30.0], dtype=torch.float64)
    back = to_logit(torch.sigmoid(d), "prob")
    torch.testing.assert_close(back[1:4], d[1:4])
    assert torch.isfinite(to_logit(torch.tensor([0.0, 1.0]), "prob")).all()


def test_uniform_map_round_trip_and_pushes_normal_to_uniform():
    z = torch.rand(1000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.98 - 0.99
    torch.testing.assert_close(latent_from_u(u_from_latent(z, "uniform"), "uniform"), z)
    u = torch.randn(20000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    zz = latent_from_u(u, "uniform")
    # a U[-1, 1] sample of size n: mean 0 +- 5 sqrt(1/3/n)
    assert abs(float(zz.mean())) < 5 * math.sqrt(1 / 3 / 20000)
    assert abs(float((zz <= 0.5).double().mean()) - 0.75) < 5 * math.sqrt(0.75 * 0.25 / 20000)
