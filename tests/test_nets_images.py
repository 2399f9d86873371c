"""``tconv28_den`` (latentflow/train/nets_images.py): the small conv denoiser for 28x28 images."""

from __future__ import annotations

import pytest
import torch

from latentflow.errors import OptionError
from latentflow.nets import ARCHITECTURES, build


def _net(**kw):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build("tconv28_den", **kw)


def test_registered_with_the_zoo():
    assert "tconv28_den" in ARCHITECTURES
    with pytest.raises(OptionError):
        build("tconv28_den", ch=0)


def test_untrained_network_is_the_skip_term(gen):
    den = _net(ch=4, n_freq=4)
    x = torch.randn(3, 1, 28, 28, generator=gen)
    s = torch.tensor([0.1, 1.0, 10.0])
    c_skip = 0.25 / (s**2 + 0.25)
    assert torch.allclose(den(x, s), c_skip[:, None, None, None] * x, atol=1e-6)


def test_shapes_score_and_no_batch_coupling(gen):
    den = _net(ch=4, n_freq=4)
    with torch.no_grad():  # make F non-zero
        den.out.weight.normal_(0, 0.1, generator=gen)
        den.film[-1].weight.normal_(0, 0.1, generator=gen)
    x = torch.randn(5, 1, 28, 28, generator=gen)
    s = torch.rand(5, generator=gen) + 0.2
    y = den(x, s)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # each sample is denoised on its own (GroupNorm, no BatchNorm)
    assert torch.allclose(den(x[2:3], s[2:3]), y[2:3], atol=1e-5)
    assert torch.allclose(den.score(x, s), (y - x) / s[:, None, None, None] ** 2, atol=1e-5)
    assert den(x, 0.5).shape == x.shape  # a scalar σ broadcasts


def test_trains_as_score_gan_generated_score_net(tmp_path):
    import latentflow
    from latentflow.train.score_gan import ScoreGANConfig, mixture_score, train_score_gan

    with torch.random.fork_rng():
        imgs = torch.rand(8, 784, generator=torch.Generator().manual_seed(0)) * 2 - 1
        s = mixture_score(imgs, 0.0)
        cfg = ScoreGANConfig(
            data="grid25",
            arch_g="dcgan28_g",
            arch_g_kwargs={"latent_dim": 8, "ch": 4},
            latent_dim=8,
            arch_s="tconv28_den",
            arch_s_kwargs={"ch": 4, "n_freq": 4},
            sigma_min=1.0,
            sigma_max=10.0,
            k=1,
            batch_size=4,
            steps=3,
        )
        G, S = train_score_gan(
            cfg, tmp_path, data_score=lambda x, sg: s(x.flatten(1), sg).reshape(x.shape), progress=False
        )
        pair = latentflow.load(str(tmp_path))
    assert pair.extra["S"](torch.zeros(2, 1, 28, 28), torch.ones(2)).shape == (2, 1, 28, 28)
    assert torch.equal(pair.extra["S"].out.weight, S.out.weight)
