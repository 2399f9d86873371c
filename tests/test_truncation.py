"""The truncation trick (``method="truncation"``): the exact truncated-normal and box-uniform laws (KS tests
with the Kolmogorov distribution's quantile), the inverse CDF on known values, kept coordinates, determinism,
batch-size and split invariance, labels of a conditional G, no D, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import latentflow as lf
from latentflow.errors import OptionError
from latentflow.samplers.truncation import truncate

#: P(sqrt(n) · D_n > 1.949) = 0.001 under the null (Kolmogorov distribution): a fixed-seed KS test that fails
#: only for a wrong law (or with probability 1e-3 for this one seed)
KS_999 = 1.949


def _phi(t: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(t)


def ks(samples: torch.Tensor, cdf) -> float:
    """sqrt(n) · sup |F_n - F| of 1-D ``samples`` (float64)."""
    x, _ = samples.double().flatten().sort()
    n = x.numel()
    f = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return math.sqrt(n) * float(torch.maximum(i / n - f, f - (i - 1) / n).max())


class Linear(nn.Module):
    """G(z) = 2 z + 1 (so x tells what z was)."""

    def forward(self, z):
        return 2 * z + 1


def _run(z, **kw):
    return lf.refine(Linear(), None, z, method="truncation", progress=False, **{"seed": 3, **kw})


@pytest.mark.parametrize("psi", [0.3, 0.7, 1.5, 2.5])
def test_normal_prior_gives_the_truncated_normal_law(psi):
    z = lf.sample_latents(10_000, 3, generator=1, dtype=torch.float64)
    res = _run(z, psi=psi)
    assert float(res.z.abs().max()) <= psi
    Z = 2 * _phi(torch.tensor(psi, dtype=torch.float64)) - 1
    stat = ks(res.z, lambda t: (_phi(t) - _phi(torch.tensor(-psi, dtype=torch.float64))) / Z)
    assert stat < KS_999
    assert torch.equal(res.x, 2 * res.z + 1)
    # the test has power: clamping instead of redrawing puts the cut-off mass 2Φ(-ψ) on ±ψ, a KS distance of
    # about Φ(-ψ) · sqrt(30000) (≥ 11.6 for ψ ≤ 1.5; at ψ = 2.5 only 1.07, below what 30000 draws resolve)
    if psi <= 1.5:
        assert ks(z.clamp(-psi, psi), lambda t: (_phi(t) - _phi(torch.tensor(-psi, dtype=torch.float64))) / Z) > KS_999


@pytest.mark.parametrize("psi", [0.25, 0.6])
def test_uniform_prior_gives_the_uniform_law_on_the_box(psi):
    z = lf.sample_latents(10_000, 2, "uniform", generator=2, dtype=torch.float64)
    res = _run(z, psi=psi, prior="uniform")
    assert float(res.z.abs().max()) <= psi
    assert ks(res.z, lambda t: ((t + psi) / (2 * psi)).clamp(0, 1)) < KS_999


def test_uniform_prior_with_psi_at_least_one_changes_nothing():
    z = lf.sample_latents(500, 4, "uniform", generator=2)
    for psi in (1.0, 3.0):
        res = _run(z, psi=psi, prior="uniform")
        assert torch.equal(res.z, z) and res.info["redrawn_fraction"] == 0.0


def test_inverse_cdf_on_known_values():
    # |z| = -Φ⁻¹(Φ(-ψ) + u (1/2 - Φ(-ψ))) solves F_|Z|(|z|) = 1 - u for |Z| ~ N(0, 1) | |Z| ≤ ψ,
    # F_|Z|(a) = (2Φ(a) - 1) / (2Φ(ψ) - 1); u = 0 gives ψ itself; the sign comes from the second uniform
    psi = 1.2
    u = torch.tensor([[0.0, 0.1, 0.5, 0.9, 0.999999]], dtype=torch.float64)
    z = torch.full_like(u, 5.0)  # every coordinate outside: all redrawn
    for sign_u, sign in ((0.25, -1.0), (0.75, 1.0)):
        out, mask = truncate(z, psi, "normal", u, torch.full_like(u, sign_u))
        assert mask.all() and torch.all(torch.sign(out) == sign)
        F = (2 * _phi(out.abs()) - 1) / (2 * _phi(torch.tensor(psi, dtype=torch.float64)) - 1)
        torch.testing.assert_close(F, 1 - u, rtol=0, atol=1e-12)
    assert float(truncate(z, psi, "normal", torch.zeros_like(u), torch.ones_like(u))[0][0, 0]) == psi
    # uniform: (2u - 1) b, and coordinates inside are kept as they are
    inside = torch.tensor([[0.1, -0.2, 5.0]], dtype=torch.float64)
    uu = torch.tensor([[0.9, 0.9, 0.75]], dtype=torch.float64)
    out, mask = truncate(inside, 0.5, "uniform", uu, uu)
    assert out.tolist() == [[0.1, -0.2, 0.25]] and mask.tolist() == [[False, False, True]]


def test_coordinates_inside_are_kept_and_a_larger_psi_redraws_fewer():
    z = lf.sample_latents(2000, 4, generator=5)
    a, b = _run(z, psi=0.5), _run(z, psi=1.5)
    inside = z.abs() <= 0.5
    assert torch.equal(a.z[inside], z[inside])
    frac = float((z.abs() > 0.5).double().mean())
    assert a.info["redrawn_fraction"] == pytest.approx(frac)
    assert b.info["redrawn_fraction"] < a.info["redrawn_fraction"]
    assert torch.equal(_run(z, psi=1e9).z, z)  # ψ = ∞ is the generator itself


def test_deterministic_batch_size_and_split_invariant():
    z = lf.sample_latents(37, 3, generator=9)
    ref = _run(z, psi=0.7)
    assert torch.equal(_run(z, psi=0.7).z, ref.z)
    for bs in (1, 5):
        assert torch.equal(_run(z, psi=0.7, batch_size=bs).z, ref.z)
    a, b = _run(z[:20], psi=0.7), _run(z[20:], psi=0.7, chain_offset=20)
    assert torch.equal(torch.cat([a.z, b.z]), ref.z)
    assert not torch.equal(_run(z, psi=0.7, seed=4).z, ref.z)
    assert ref.info["n_G_forward"] >= 37 and ref.info["n_D_forward"] == 0 and ref.info["n_G_backward"] == 0


def test_d_is_not_needed_and_not_called():
    calls = []
    D = lambda x: calls.append(1) or x[:, 0]  # noqa: E731
    z = lf.sample_latents(10, 2, generator=0)
    res = lf.refine(Linear(), D, z, method="truncation", psi=0.5, seed=0, progress=False)
    assert not calls and torch.equal(res.x, _run(z, psi=0.5, seed=0).x)
    info = lf.methods()["truncation"]
    assert info.needs.generator == "required" and info.needs.discriminator == () and not info.needs.needs_discriminator
    assert info.needs.describe().startswith("a generator, no discriminator")
    assert info.options["psi"] == 1.0 and info.options["prior"] == "normal"


class CondG(nn.Module):
    """G(z, y) = z + 10 y: the label is readable from x."""

    num_classes = 4

    def forward(self, z, y):
        assert y.dtype == torch.long and y.shape == (z.shape[0],)
        return z + 10 * y[:, None].to(z.dtype)


def test_labels_of_a_conditional_generator():
    z = lf.sample_latents(40, 2, generator=1)
    y = torch.arange(40) % 4
    res = lf.refine(CondG(), None, z, method="truncation", psi=0.5, y=y, seed=0, progress=False, batch_size=7)
    assert torch.equal(res.y, y) and torch.equal(res.x, res.z + 10 * y[:, None].float())
    drawn = lf.refine(CondG(), None, z, method="truncation", psi=0.5, seed=0, progress=False)
    assert drawn.y is not None and drawn.y.shape == (40,) and int(drawn.y.max()) < 4
    torch.testing.assert_close(drawn.x, drawn.z + 10 * drawn.y[:, None].float())
    assert torch.equal(drawn.y, lf.refine(CondG(), None, z, method="truncation", psi=0.5, seed=0, progress=False).y)


@pytest.mark.parametrize("psi", [0, -1.0, math.nan])
def test_psi_must_be_positive(psi):
    z = torch.zeros(3, 2)
    with pytest.raises(OptionError, match=r"psi must be"):
        lf.refine(Linear(), None, z, method="truncation", psi=psi, seed=0, progress=False)


def test_other_errors_are_clear():
    z = torch.zeros(3, 2)
    with pytest.raises(OptionError, match='method "truncation" needs a generator G'):
        lf.refine(None, None, z, method="truncation", seed=0, progress=False)
    with pytest.raises(OptionError, match='prior must be "normal" or "uniform"'):
        lf.refine(Linear(), None, z, method="truncation", prior="laplace", seed=0, progress=False)
    with pytest.raises(OptionError, match="unknown option"):
        lf.refine(Linear(), None, z, method="truncation", steps=3, seed=0, progress=False)
