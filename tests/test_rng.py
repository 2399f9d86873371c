import pytest
import torch

from latentflow import rng, sample_latents
from latentflow.errors import OptionError


def test_seed_and_generator_give_the_same_draw():
    a = sample_latents(5, 3, generator=7)
    b = sample_latents(5, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_uniform_prior_in_box():
    z = sample_latents(1000, 4, "uniform", generator=0)
    assert z.min() >= -1 and z.max() <= 1


@pytest.mark.rng_ok
def test_none_draws_once_from_global_rng():
    torch.manual_seed(0)
    g1 = rng.resolve(None)
    torch.manual_seed(0)
    g2 = rng.resolve(None)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))


def test_bad_generator_and_prior():
    with pytest.raises(OptionError, match="generator must be"):
        rng.resolve("seed")
    with pytest.raises(OptionError, match='prior must be "normal" or "uniform"'):
        sample_latents(2, 2, "laplace", generator=0)
