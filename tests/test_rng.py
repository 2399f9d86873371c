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


# -- per-chain counter-based streams ---------------------------------------------------------------

import math  # noqa: E402


def test_mix64_is_splitmix64_in_wrapping_int64():
    ref = rng.splitmix64(12345, 6)
    t = rng.mix64(12345 + torch.arange(1, 7, dtype=torch.int64) * rng._PHI)
    assert [v & rng._M64 for v in t.tolist()] == ref


def test_normals_have_the_moments_and_law_of_n01():
    s = rng.ChainStream(7, torch.arange(2000))
    z = s.normal(3, 0, (50,), torch.float64).flatten()  # 100k draws
    n = z.numel()
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
    assert abs(float((z**4).mean()) - 3) < 5 * math.sqrt(96 / n)  # Var(z^4) = 105 - 9
    # Kolmogorov-Smirnov against N(0, 1): the 0.1 % critical value is 1.95 / sqrt(n)
    zs = torch.sort(z).values
    cdf = 0.5 * (1 + torch.erf(zs / math.sqrt(2)))
    i = torch.arange(1, n + 1, dtype=torch.float64)
    ks = torch.maximum(i / n - cdf, cdf - (i - 1) / n).max()
    assert float(ks) < 1.95 / math.sqrt(n)


def test_uniforms_cover_0_1_with_float32_and_float64_bits():
    s = rng.ChainStream(1, torch.arange(10000))
    for dtype in (torch.float32, torch.float64):
        u = s.uniform(0, 1, (), dtype)
        assert u.dtype == dtype and float(u.min()) >= 0 and float(u.max()) < 1
        assert abs(float(u.mean()) - 0.5) < 5 * math.sqrt(1 / 12 / u.numel())


def test_streams_are_independent_between_chains_steps_and_slots():
    n = 20000
    s = rng.ChainStream(3, torch.arange(n))
    a = s.normal(0, 0, (), torch.float64)
    pairs = {
        "chains": (a[:-1], a[1:]),
        "steps": (a, s.normal(1, 0, (), torch.float64)),
        "slots": (a, s.normal(0, 1, (), torch.float64)),
        "keys": (a, rng.ChainStream(4, torch.arange(n)).normal(0, 0, (), torch.float64)),
    }
    for what, (x, y) in pairs.items():
        r = float(torch.corrcoef(torch.stack([x, y]))[0, 1])
        assert abs(r) < 5 / math.sqrt(x.numel()), what
    v = s.normal(0, 0, (2,), torch.float64)  # the elements within one draw, too
    assert abs(float(torch.corrcoef(v.T)[0, 1])) < 5 / math.sqrt(n)


def test_a_chain_draws_the_same_numbers_whoever_computes_it():
    full = rng.ChainStream(9, torch.arange(100)).normal(5, 0, (3,))
    part = rng.ChainStream(9, torch.arange(40, 60)).normal(5, 0, (3,))
    assert torch.equal(full[40:60], part)
    sub = rng.ChainStream(9, torch.arange(100)).subset(torch.tensor([3, 77]))
    assert torch.equal(sub.normal(5, 0, (3,)), full[[3, 77]])


def test_stream_key_from_int_generator_and_none():
    assert rng.stream_key(5) == rng.stream_key(torch.Generator().manual_seed(5))
    assert rng.stream_key(5) != rng.stream_key(6)
    g = torch.Generator().manual_seed(5)
    assert rng.stream_key(g) != rng.stream_key(g)  # one draw each: the generator advances
    with pytest.raises(OptionError, match="generator must be"):
        rng.stream_key("5")


def test_half_precision_uniforms_stay_below_one():
    u = rng.ChainStream(2, torch.arange(20000)).uniform(0, 1, (), torch.bfloat16)
    assert u.dtype == torch.bfloat16 and float(u.max()) < 1 and float(u.min()) >= 0
