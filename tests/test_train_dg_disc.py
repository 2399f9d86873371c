"""Time-conditioned discriminator trainer (Kim et al. 2023): the pool it draws has the score model's
distribution, the discriminator separates noised data from it, resume is bit-exact, the folder loads back."""

import json

import pytest
import torch
from safetensors.torch import load_file

from latentflow.errors import OptionError
from latentflow.nets.score_nets import EDMDenoiserMLP
from latentflow.scores import dg_correction, edm_heun_sample, edm_sigmas
from latentflow.train import get_trainer
from latentflow.train.dg_disc import DGDiscConfig, load_dg_disc, train_dg_disc

pytestmark = pytest.mark.rng_ok  # the trainer seeds the global RNG for the initial weights

# an untrained den_mlp is D = c_skip x, the exact denoiser of N(0, σ_d² I): its samples are N(0, σ_d² I)
SD = 1.0


def _model():
    return EDMDenoiserMLP(in_dim=2, width=8, depth=2, sigma_data=SD).eval()


TINY = dict(
    data="grid25", n_fake=64, heun_steps=4, steps=8, batch_size=16, arch_kwargs={"in_dim": 2, "width": 16, "depth": 3}
)


def test_registered_in_the_trainer_table():
    Config, fn = get_trainer("dgdisc")
    assert Config is DGDiscConfig and fn is train_dg_disc


def test_pool_follows_the_score_model_and_d_separates_it(tmp_path):
    cfg = DGDiscConfig(
        data="grid25",
        n_fake=4000,
        heun_steps=12,
        steps=500,
        batch_size=128,
        lr=2e-3,
        arch_kwargs={"in_dim": 2, "width": 64, "depth": 3, "x_freq": 32, "sigma_data": SD},
    )
    D = train_dg_disc(cfg, tmp_path, score_model=_model(), progress=False)
    fake = load_file(str(tmp_path / "fake.safetensors"))["fake"]
    assert fake.shape == (4000, 2)
    # the ODE of N(0, σ_d² I) is linear, so Heun maps σ_max n to k σ_max n (k σ_max = 1.114 at N = 12, against
    # the exact 1.0: the discretisation error); the pool is N(0, (k σ_max)² I): mean ± 0.018, std ± 0.012 (MC)
    k_smax = float(
        edm_heun_sample(
            lambda x, s: -x / (SD**2 + s[:, None] ** 2), torch.full((1, 1), 80.0), edm_sigmas(12, 0.002, 80.0)
        )
    )
    assert 1.08 < k_smax < 1.15
    assert fake.mean(0).abs().max() < 0.07, fake.mean(0)
    assert (fake.std(0) / k_smax - 1).abs().max() < 0.04, (fake.std(0), k_smax)
    # fresh data and fresh model samples at σ = 0.1: grid25 (std 0.1 modes) vs N(0, I) is easy to tell apart
    from latentflow.data import toy

    g = torch.Generator().manual_seed(11)
    real = toy("grid25").sample(2000, g) + 0.1 * torch.randn(2000, 2, generator=g)
    fk = k_smax * torch.randn(2000, 2, generator=g) + 0.1 * torch.randn(2000, 2, generator=g)
    with torch.no_grad():
        acc = 0.5 * (float((D(real, 0.1) > 0).float().mean()) + float((D(fk, 0.1) < 0).float().mean()))
    assert acc > 0.75, acc
    # at σ = 3 (inside the trained range) the noised distributions nearly agree (variances 2 + 9 and 1.24 + 9):
    # the logit must be small there
    far = 3.0 * torch.randn(2000, 2, generator=g)
    with torch.no_grad():
        assert float(D(far, 3.0).abs().median()) < 0.5
    assert dg_correction(D, real[:8], 0.1).shape == (8, 2)


def test_resume_is_bit_identical_and_the_pool_is_kept(tmp_path):
    full = train_dg_disc(DGDiscConfig(**TINY), tmp_path / "a", score_model=_model(), progress=False)
    train_dg_disc(DGDiscConfig(**TINY), tmp_path / "b", score_model=_model(), progress=False, stop_after=3)
    pool = load_file(str(tmp_path / "b" / "fake.safetensors"))["fake"]
    torch.manual_seed(5)
    resumed = train_dg_disc(DGDiscConfig(**TINY), tmp_path / "b", progress=False)  # no score model needed now
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    assert torch.equal(pool, load_file(str(tmp_path / "b" / "fake.safetensors"))["fake"])
    spec = json.loads((tmp_path / "a" / "latentflow.json").read_text())
    assert spec["d_output"] == "logit" and spec["d_conditioning"] == "sigma" and spec["arch"]["D"]["name"] == "dg_mlp"
    loaded = load_dg_disc(tmp_path / "a")
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 0.5), full(x, 0.5))


def test_needs_a_score_model(tmp_path):
    with pytest.raises(OptionError, match="needs a score model"):
        train_dg_disc(DGDiscConfig(**TINY), tmp_path, progress=False)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(heun_steps=1), "heun_steps"),
        (dict(n_fake=0), "n_fake"),
        (dict(sigma_min=100.0), "sigma_min"),
        (dict(lr=0), "lr"),
        (dict(data="nope"), "Unknown dataset"),
    ],
)
def test_config_errors(bad, match):
    with pytest.raises(OptionError, match=match):
        DGDiscConfig(**bad).validate()
