"""EDM denoiser trainer: it learns (the EDM-weighted loss falls below the untrained c_skip x), resumes
bit-exactly, writes a folder load_denoiser reads back, and validates its config."""

import json

import pytest
import torch

from latentflow.errors import LatentflowError, OptionError
from latentflow.nets.score_nets import EDMDenoiserMLP
from latentflow.scores import as_score
from latentflow.train import get_trainer
from latentflow.train.denoiser import DenoiserConfig, load_denoiser, train_denoiser

pytestmark = pytest.mark.rng_ok  # the trainer seeds the global RNG for the initial weights

TINY = dict(data="grid25", steps=8, batch_size=16, arch_kwargs={"in_dim": 2, "width": 16, "depth": 3}, ema=0.9)


def test_registered_in_the_trainer_table():
    Config, fn = get_trainer("denoiser")
    assert Config is DenoiserConfig and fn is train_denoiser


def test_untrained_denoiser_is_c_skip_x_and_its_score_is_gaussian():
    # the zero-initialised last layer makes D = c_skip x: the score -x/(σ² + σ_d²) of N(0, σ_d² I) smoothed
    net = EDMDenoiserMLP(in_dim=2, width=8, depth=2, sigma_data=0.7).double()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sig = torch.tensor([0.01, 0.1, 1.0, 10.0, 80.0], dtype=torch.float64)
    torch.testing.assert_close(as_score(net, "denoised")(x, sig), -x / (sig[:, None] ** 2 + 0.49))


def _denoising_error(net, sigma: float) -> float:
    from latentflow.data import toy

    g = torch.Generator().manual_seed(7)
    y = toy("grid25").sample(4000, g)
    x = y + sigma * torch.randn(y.shape, generator=g)
    with torch.no_grad():
        return float((net(x, sigma) - y).pow(2).sum(1).mean())


def test_training_beats_the_untrained_denoiser(tmp_path):
    # at σ = 0.2 the untrained D = c_skip x (σ_d = 1) has error 0.04²·E||y||² + 0.96²·2σ² ≈ 0.080; the Bayes
    # denoiser, which finds the mode (0.5 away: 2.2 noise stds) and shrinks within it, about 0.02.
    # (800 steps of a small MLP with input Fourier features reach about 0.042.)
    kw = {"in_dim": 2, "width": 64, "depth": 3, "x_freq": 32, "x_scale": 1.0}
    cfg = DenoiserConfig(data="grid25", steps=800, batch_size=128, lr=2e-3, ema=0.0, arch_kwargs=kw)
    net = train_denoiser(cfg, tmp_path, progress=False, log_every=100)
    untrained = EDMDenoiserMLP(**kw, sigma_data=1.0)
    e0, e1 = _denoising_error(untrained, 0.2), _denoising_error(net, 0.2)
    assert abs(e0 - 0.080) < 0.006, e0
    assert e1 < 0.7 * e0, (e0, e1)


def test_resume_is_bit_identical_and_the_folder_loads_back(tmp_path):
    full = train_denoiser(DenoiserConfig(**TINY), tmp_path / "a", progress=False)
    train_denoiser(DenoiserConfig(**TINY), tmp_path / "b", progress=False, stop_after=3)
    assert not (tmp_path / "b" / "latentflow.json").exists()
    torch.manual_seed(123)
    resumed = train_denoiser(DenoiserConfig(**TINY), tmp_path / "b", progress=False)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    spec = json.loads((tmp_path / "a" / "latentflow.json").read_text())
    assert spec["score_output"] == "denoised" and spec["arch"]["score"]["name"] == "den_mlp"
    assert spec["sigma_data"] == 1.0 and spec["output"]["shape"] == [2]
    loaded = load_denoiser(tmp_path / "a")
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 0.3), full(x, 0.3))
    with pytest.raises(LatentflowError, match="latentflow.json"):
        load_denoiser(tmp_path / "missing")


def test_fashion_mnist_uses_the_conv_unet(tmp_path, fashion_mnist):
    cfg = DenoiserConfig(data="fashion-mnist", steps=2, batch_size=4, arch_kwargs={"channels": 1, "ch": 4})
    net = train_denoiser(cfg, tmp_path, progress=False)
    spec = json.loads((tmp_path / "latentflow.json").read_text())
    assert spec["arch"]["score"]["name"] == "tconv28_den" and spec["sigma_data"] == 0.5
    assert net(torch.zeros(2, 1, 28, 28), 1.0).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(p_std=0.0), "p_std"),
        (dict(steps=0), "steps"),
        (dict(ema=1.0), "ema"),
        (dict(sigma_data=-1.0), "sigma_data"),
        (dict(data="cifar"), "Unknown dataset"),
        (dict(grad_clip=-1), "grad_clip"),
    ],
)
def test_config_errors(bad, match):
    with pytest.raises(OptionError, match=match):
        DenoiserConfig(**bad).validate()
