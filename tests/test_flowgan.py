"""FloWGAN kernels and push-pull field, MMD flow, and the noise-conditioned D for discriminator-guided Langevin."""

import json

import pytest
import torch

import latentflow
from latentflow.nets.time_cond import NoiseMLPDiscriminator
from latentflow.train.flowgan import (
    FloWGANConfig,
    NoiseDConfig,
    geometric_sigmas,
    kernel_grad,
    kernel_value,
    mmd2,
    push_pull,
    train_flowgan,
    train_noise_d,
)

CASES = [
    ("gaussian", {"bandwidth": 0.7}),
    ("imq", {"bandwidth": 1.0, "beta": 0.5}),
    ("polyharmonic", {"eps": 0.1}),
    ("polyharmonic", {"order": 2, "eps": 0.1}),
    ("polyharmonic", {"order": 3, "eps": 0.1}),
]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("kind,kw", CASES)
def test_kernel_grad_matches_autograd(kind, kw, dim):
    u = torch.randn(20, dim, generator=torch.Generator().manual_seed(dim), dtype=torch.float64).requires_grad_(True)
    (g,) = torch.autograd.grad(kernel_value(kind, u, **kw).sum(), u)
    assert torch.allclose(kernel_grad(kind, u.detach(), **kw), g, atol=1e-10)


def test_polyharmonic_default_is_minus_log_r_in_2d_and_minus_r_in_3d():
    u2 = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    assert torch.allclose(
        kernel_value("polyharmonic", u2, eps=0.0), -torch.log(torch.tensor([5.0], dtype=torch.float64))
    )
    u3 = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(kernel_value("polyharmonic", u3, eps=0.0), torch.tensor([-3.0], dtype=torch.float64))
    assert torch.count_nonzero(kernel_grad("polyharmonic", torch.zeros(1, 2), eps=0.01)) == 0  # self-term


@pytest.mark.parametrize("kind,kw", CASES[:3])
def test_push_pull_signs(kind, kw):
    x = torch.zeros(1, 2)
    y = torch.tensor([[1.0, 0.0]])
    v = push_pull(x, y, torch.tensor([[-1.0, 0.0]]), kind, **kw)
    assert v[0, 0] > 0 and abs(float(v[0, 1])) < 1e-6  # pulled to +x by data, pushed to +x from the particle


def test_mmd_flow_decreases_mmd2_monotonically():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(200, 2, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([1.0, -0.5], dtype=torch.float64)
    x = torch.randn(200, 2, generator=g, dtype=torch.float64)
    kw = {"bandwidth": 0.5}
    vals = [float(mmd2(x, y, "gaussian", **kw))]
    for _ in range(60):
        x = x + 0.5 * push_pull(x, y, x, "gaussian", **kw)
        vals.append(float(mmd2(x, y, "gaussian", **kw)))
    assert all(b < a for a, b in zip(vals, vals[1:]))
    assert vals[-1] < 0.2 * vals[0]


def test_noise_d_reference_correction():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        D = NoiseMLPDiscriminator(width=16, depth=3, ref_std=2.0)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x, 0.5).sum(), x)
    (gl,) = torch.autograd.grad(D.logit(x, 0.5).sum(), x)
    assert torch.allclose(g, gl - x.detach() / (4.0 + 0.25), atol=1e-6)
    assert geometric_sigmas(3.0, 0.05, 4)[0] == pytest.approx(3.0) and geometric_sigmas(3.0, 0.05, 4)[
        -1
    ] == pytest.approx(0.05)


@pytest.mark.rng_ok
def test_train_flowgan_and_noise_d_tiny(tmp_path):
    G = train_flowgan(
        FloWGANConfig(steps=5, batch_size=32, n_data=32, arch_g_kwargs={"latent_dim": 2, "hidden": [16], "out_dim": 2}),
        tmp_path / "f",
        progress=False,
    )
    assert G(torch.zeros(4, 2)).shape == (4, 2) and (tmp_path / "f" / "G.safetensors").exists()
    cfg = NoiseDConfig(
        steps=5,
        batch_size=32,
        arch_kwargs={"in_dim": 2, "width": 16, "depth": 3, "ref_std": 3.0},
        n_levels=3,
        langevin_steps=2,
    )
    D = train_noise_d(cfg, tmp_path / "d", progress=False)
    spec = json.loads((tmp_path / "d" / "latentflow.json").read_text())
    opts = spec["sampling"]["dg_langevin"]
    res = latentflow.refine(
        None,
        D,
        torch.randn(10, 2, generator=torch.Generator().manual_seed(0)),
        method="dg_langevin",
        seed=0,
        progress=False,
        **opts,
    )
    assert res.x.shape == (10, 2) and torch.isfinite(res.x).all()


@pytest.mark.slow
@pytest.mark.rng_ok
def test_flowgan_ring8_learns(tmp_path):
    from latentflow.metrics.toy2d import toy_metrics

    cfg = FloWGANConfig(data="ring8", steps=3000)
    G = train_flowgan(cfg, tmp_path, progress=False)
    with torch.no_grad():
        m = toy_metrics(G(torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))), "ring8")
    assert m["modes"] == 8 and m["emd"] < 0.3
