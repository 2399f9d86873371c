import pytest
import torch
from analytic import gaussian_problem

import latentflow as lf
from latentflow.errors import OptionError


def _z(n=256, seed=1):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_dot_latent_raises_critic_and_keeps_norm():
    G, D, *_ = gaussian_problem()
    z = _z()
    res = lf.refine(G, D, z, method="dot", steps=50, lr=0.01, d_output="logit", seed=0, progress=False)
    with torch.no_grad():
        assert D(res.x).mean() > D(G(z)).mean()
    # the normal-prior projection removes the radial gradient: ||z|| only drifts at second order
    assert torch.allclose(res.z.norm(dim=1), z.norm(dim=1), rtol=0.05)
    assert res.info["k_eff"] > 0


def test_dot_target_space_keff_bounds_and_clip():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)  # linear critic: Lipschitz constant ||w|| = 5
    D = lambda x: x @ w
    x0 = _z()
    res = lf.refine(None, D, x0, method="dot", space="target", steps=20, lr=0.1, clip=2.0, seed=0, progress=False)
    k = float(res.info["k_eff"])
    assert 0 < k <= 5.0 + 1e-9  # a max of |w.(a-b)| / ||a-b|| can never exceed ||w||
    assert res.x.abs().max() <= 2.0
    assert (res.x @ w).mean() > (x0 @ w).mean()


def test_dot_given_keff_is_deterministic_and_needs_G_for_latent():
    G, D, *_ = gaussian_problem()
    a = lf.refine(G, D, _z(), method="dot", k_eff=2.0, steps=10, seed=0, progress=False, d_output="logit")
    b = lf.refine(
        G, D, _z(), method="dot", k_eff=2.0, steps=10, seed=99, progress=False, d_output="logit", batch_size=17
    )
    torch.testing.assert_close(a.z, b.z, rtol=1e-12, atol=1e-12)
    with pytest.raises(OptionError, match='space="latent" needs a generator'):
        lf.refine(None, D, _z(), method="dot", progress=False)
    c = lf.refine(G, D, _z(), method="dot", k_eff=2.0, steps=10, optimizer="adam", seed=0, progress=False)
    assert torch.isfinite(c.x).all()


def test_a_nan_row_does_not_freeze_the_other_chains_through_k_eff():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    D = lambda x: torch.where(x[:, 0] < -2.0, torch.full_like(x[:, 0], float("nan")), x @ w)
    x0 = _z()
    bad = x0[:, 0] < -2.0  # chains move up w, away from the NaN region
    assert bad.any()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = lf.refine(None, D, x0, method="dot", space="target", steps=10, lr=0.1, seed=0, progress=False)
    assert 0 < float(res.info["k_eff"]) <= 5.0 + 1e-9  # K_eff over the finite pairs only
    assert torch.equal(res.diverged, bad) and (res.info["diverged_step"][bad] == 0).all()
    assert torch.equal(res.x[bad], x0[bad])
    assert bool(((res.x[~bad] @ w) > (x0[~bad] @ w)).all())  # every other chain moved up the critic
