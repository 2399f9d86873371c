"""DGflow against closed forms: an exact density ratio between Gaussians, where the KL flow of the paper's
Algorithm 1 transports the generator's law onto the data law, and the JS / log-D velocities integrate in
closed form; plus the sampler contracts."""

import logging
import math

import pytest
import torch
from analytic import Identity, LinearG

import latentflow as lf
from latentflow.errors import DivergenceError, DivergenceWarning, OptionError, ShapeError

N = 4000


def _z(n=N, k=2, seed=1):
    return torch.randn(n, k, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _shift_ratio(m):
    """d(x) = log N(x; m, I) - log N(x; 0, I) = m·x - |m|²/2: the exact logit of N(m, I) against N(0, I)."""
    m = torch.as_tensor(m, dtype=torch.float64)
    half = 0.5 * float(m @ m)
    return lambda x: x @ m.to(x.dtype) - half


class AffineRatioD(torch.nn.Module):
    """The exact logit log p_data(x) - log p_G(x) for G(z) = A z + c, z ~ N(0, I) (p_G = N(c, A Aᵀ)) and
    data N(c + A m, A Aᵀ): the push-forward of N(m, I)."""

    def __init__(self, A, c, m):
        super().__init__()
        self.P = torch.linalg.inv(A @ A.T)
        self.c, self.mu = c, c + A @ m

    def forward(self, x):
        def q(v):
            r = x - v
            return -0.5 * ((r @ self.P) * r).sum(1)

        return q(self.mu) - q(self.c)


def test_kl_flow_transports_generator_onto_data_exactly():
    """KL velocity ∇_z d(G(z)) = m is constant here: η n = 1 moves every latent by exactly m, so G(z_n) has
    the data law N(c + A m, A Aᵀ) (moments within MC error), and z_n - z_0 = m to rounding."""
    A = torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=torch.float64)
    c = torch.tensor([0.2, -0.1], dtype=torch.float64)
    m = torch.tensor([1.5, -0.7], dtype=torch.float64)
    G, D = LinearG(A, c), AffineRatioD(A, c, m)
    z = _z()
    res = lf.refine(G, D, z, method="dgflow", steps=20, step_size=0.05, gamma=0.0, progress=False)
    torch.testing.assert_close(res.z - z, m.expand_as(z), rtol=0, atol=1e-10)
    mu, cov = c + A @ m, A @ A.T
    var = torch.diagonal(cov)
    assert torch.all((res.x.mean(0) - mu).abs() < 5 * torch.sqrt(var / N))
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov**2) / N)
    assert torch.all((torch.cov(res.x.T) - cov).abs() < 5 * se_cov)
    # the generator alone is far from the data: the test can tell
    assert torch.any((G(z).mean(0) - mu).abs() > 5 * torch.sqrt(var / N))


def test_entropy_term_adds_exactly_2_eta_gamma_per_step():
    """With a constant velocity the Euler–Maruyama law is N(z0 + m T, (1 + 2 γ T) I), T = η n."""
    m = [0.8, -0.4]
    eta, n, gamma = 0.1, 15, 0.3
    res = lf.refine(
        Identity(), _shift_ratio(m), _z(), method="dgflow", steps=n, step_size=eta, gamma=gamma, seed=0, progress=False
    )
    T = eta * n
    var = 1 + 2 * gamma * T
    mean = torch.tensor(m, dtype=torch.float64) * T
    assert torch.all((res.x.mean(0) - mean).abs() < 5 * math.sqrt(var / N))
    assert torch.all((res.x.var(0) - var).abs() < 5 * var * math.sqrt(2 / N))
    assert res.info["noise_std"] == pytest.approx(math.sqrt(2 * eta * gamma))


def _solve(F, target, y0):
    """Newton on the increasing F(y) = target, row by row."""
    y = y0.clone()
    for _ in range(60):
        with torch.enable_grad():
            yy = y.detach().requires_grad_(True)
            v = F(yy) - target
            (g,) = torch.autograd.grad(v.sum(), yy)
        y = (yy - v / g).detach()
    return y


@pytest.mark.parametrize("divergence", ["KL", "JS", "logD"])
def test_velocity_per_divergence_matches_the_closed_form_flow(divergence):
    """d = m·x - |m|²/2, so y = d(x) obeys dy/dt = |m|² s(y) with s = 1 (KL), σ(y) (JS), σ(-y) (log D):
    y - e^{-y} (JS) and y + e^{y} (log D) grow linearly in t. Euler with η = 1e-3 is within O(η)."""
    m = torch.tensor([1.0, 0.5], dtype=torch.float64)
    D = _shift_ratio(m)
    z = _z(64)
    eta, n = 1e-3, 1000
    res = lf.refine(
        Identity(), D, z, method="dgflow", steps=n, step_size=eta, gamma=0.0, divergence=divergence, progress=False
    )
    mm = float(m @ m)
    y0 = D(z)
    F = {"KL": lambda y: y, "JS": lambda y: y - torch.exp(-y), "logD": lambda y: y + torch.exp(y)}[divergence]
    yT = _solve(F, F(y0) + mm * eta * n, y0)
    x_exact = z + ((yT - y0) / mm).unsqueeze(1) * m
    torch.testing.assert_close(res.x, x_exact, rtol=0, atol=5e-3 * max(1.0, float((yT - y0).abs().max())))
    # and the three velocities really differ
    if divergence != "KL":
        x_kl = z + eta * n * m
        assert (res.x - x_kl).abs().max() > 0.05


def test_prob_output_and_critic_match_logit():
    m = [0.5, 0.5]
    D = _shift_ratio(m)
    z = _z(64)
    a = lf.refine(Identity(), D, z, method="dgflow", steps=10, divergence="JS", seed=3, progress=False)
    b = lf.refine(
        Identity(),
        lambda x: torch.sigmoid(D(x)),
        z,
        method="dgflow",
        steps=10,
        divergence="JS",
        d_output="prob",
        seed=3,
        progress=False,
    )
    torch.testing.assert_close(a.z, b.z, rtol=1e-7, atol=1e-7)


def test_uniform_prior_stays_in_box():
    z = torch.rand(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    res = lf.refine(
        Identity(),
        _shift_ratio([3.0, 0.0]),
        z,
        method="dgflow",
        prior="uniform",
        steps=30,
        step_size=0.1,
        gamma=0.1,
        seed=0,
        progress=False,
    )
    assert res.z.abs().max() <= 1
    assert (res.z[:, 0] == 1).float().mean() > 0.5


def test_same_seed_same_samples_and_batch_size_invariance():
    D = _shift_ratio([0.5, -0.2])
    z = _z(23)
    kw = dict(method="dgflow", steps=12, gamma=0.5, divergence="JS", progress=False)
    a = lf.refine(Identity(), D, z, seed=11, **kw)
    b = lf.refine(Identity(), D, z, seed=11, **kw)
    assert torch.equal(a.z, b.z) and torch.equal(a.x, b.x)
    for bs in (1, 7):
        c = lf.refine(Identity(), D, z, seed=11, batch_size=bs, **kw)
        torch.testing.assert_close(a.z, c.z, rtol=0, atol=1e-4)
    d = lf.refine(Identity(), D, z, seed=12, **kw)
    assert not torch.equal(a.z, d.z)
    # gamma = 0 draws nothing: no seed needed, the same flow every time
    e1 = lf.refine(Identity(), D, z, method="dgflow", steps=5, gamma=0.0, progress=False)
    e2 = lf.refine(Identity(), D, z, method="dgflow", steps=5, gamma=0.0, progress=False)
    assert torch.equal(e1.z, e2.z)


def test_eval_counts():
    res = lf.refine(Identity(), _shift_ratio([1.0, 0.0]), _z(10), method="dgflow", steps=7, seed=0, progress=False)
    # probe (2 rows) + one evaluation per step + the final G(z_n)
    assert res.info["n_D_forward"] == 10 * 7 + 2
    assert res.info["n_D_backward"] == 10 * 7
    assert res.info["n_G_forward"] == 10 * 7 + 2 + 10


def test_divergence_is_reported_and_chains_frozen(caplog):
    # d = 50 relu(x0)^2: chains with x0 > 0 are pushed out exponentially and blow up; the others do not move
    D = lambda x: 50 * torch.relu(x[:, 0]) ** 2
    z = torch.stack([torch.linspace(-3, 3, 32), torch.zeros(32)], 1).double()
    with caplog.at_level(logging.WARNING, logger="latentflow"), pytest.warns(DivergenceWarning):
        res = lf.refine(
            Identity(), D, z, method="dgflow", steps=200, step_size=0.1, gamma=0.0, progress=False, on_divergence="warn"
        )
    div = res.diverged
    assert div.any() and not div.all()
    assert bool((z[div, 0] > 0).all())
    assert torch.isfinite(res.x).all() and torch.isfinite(res.z).all()
    assert bool((res.info["diverged_step"][div] > 0).all())
    assert "reduce step_size" in caplog.text
    with pytest.raises(DivergenceError, match="dgflow: .* chains diverged"):
        lf.refine(Identity(), D, z[16:], method="dgflow", steps=200, step_size=0.1, gamma=0.0, progress=False)


@pytest.mark.rng_ok
def test_contract_errors():
    D = _shift_ratio([1.0, 0.0])
    with pytest.raises(OptionError, match="divergence must be one of KL, JS, logD; got 'kl'"):
        lf.refine(Identity(), D, _z(4), method="dgflow", divergence="kl", progress=False)
    with pytest.raises(OptionError, match="gamma must be >= 0; got -0.1"):
        lf.refine(Identity(), D, _z(4), method="dgflow", gamma=-0.1, progress=False)
    with pytest.raises(OptionError, match="step_size must be > 0"):
        lf.refine(Identity(), D, _z(4), method="dgflow", step_size=0.0, progress=False)
    with pytest.raises(OptionError, match=r"unknown option\(s\) eta"):
        lf.refine(Identity(), D, _z(4), method="dgflow", eta=0.1)
    with pytest.raises(ShapeError, match=r"z must have shape \[B, d\]"):
        lf.refine(Identity(), D, torch.zeros(4, dtype=torch.float64), method="dgflow", progress=False)
    with pytest.raises(OptionError, match=r"prior='uniform' needs z in \[-1, 1\]"):
        lf.refine(Identity(), D, 3 + _z(4), method="dgflow", prior="uniform", progress=False)
    with pytest.raises(ShapeError, match=r"D\(x\) returned shape \(2, 10\)"):
        lf.refine(Identity(), lambda x: torch.zeros(x.shape[0], 10), _z(4), method="dgflow", progress=False)


@pytest.mark.parametrize(
    "opts",
    [dict(gamma=0.1, divergence="JS"), dict(gamma=0.0, batch_size=7, prior="uniform")],
    ids=["noisy-js", "chunked-uniform"],
)
def test_step_loop_does_no_host_sync(monkeypatch, opts):
    from test_speed import _SyncTrap

    trap = _SyncTrap(monkeypatch).disarm_at_finish(monkeypatch)
    z = _z(20).clamp(-1, 1)
    res = lf.refine(
        Identity(),
        _shift_ratio([0.5, 0.2]),
        z,
        method="dgflow",
        steps=4,
        seed=0,
        progress=False,
        callback=lambda s: setattr(trap, "armed", True),
        **opts,
    )
    assert trap.hits == [] and res.x.shape[0] == 20
