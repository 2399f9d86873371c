"""The one driver: per-chain random streams (chunking and row splits do not change samples), the
divergence rules, and the loop's contracts."""

import logging
import warnings

import pytest
import torch
from analytic import Identity, RatioD, gaussian_problem
from tiny_pair import tiny_modules

import latentflow as lf
from latentflow.errors import DivergenceError, DivergenceWarning

N = 23


def _z(n=N, seed=1):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _tf(x, t):
    return -0.5 * ((x - 1) ** 2).sum(1) * (1 + t)


CASES = {
    "ddls": ("gauss", dict(steps=6, step_size=0.1)),
    "ddls-mala": ("gauss", dict(steps=6, step_size=0.3, mala=True, adapt_steps=2)),
    "ddls-noise": ("gauss", dict(steps=4, output_noise=0.1)),
    "dot": ("gauss", dict(steps=5, d_output="logit")),
    "dg_langevin": ("data", dict(steps=5, step_size=0.05)),
    "dflow": ("flow", dict(steps=4, eta=1.0, entropy_reg=0.1)),
    "drs": ("ratio", dict(pilot=200, gamma_percentile=None)),
    "mh": ("ratio", dict(k=6)),
    "dgflow": ("gauss", dict(steps=5, step_size=0.1, gamma=0.05)),
    "ex2mcmc": ("gauss", dict(steps=3, n_particles=4, mala_steps=2, step_size=0.1)),
    "dg_score": ("score", dict(steps=4, w=0.5, sigma_max=2.0, s_churn=1.0)),
    "truncation": ("gauss", dict(psi=0.7)),
    "dg_score-langevin": (
        "score",
        dict(steps=3, w=0.5, sigma_max=2.0, sigma_min=0.5, solver="langevin", langevin_steps=2, step_size=0.05),
    ),
    "none": ("gauss", dict()),
}


def _score(x, sigma):  # the exact score of N(0, (1 + σ²) I)
    return -x / (1 + sigma.reshape(-1, *([1] * (x.dim() - 1))) ** 2)


def _sigma_d(x, sigma):  # a noise-conditioned logit
    return -0.5 * ((x - 1) ** 2).sum(1) / (1 + sigma**2)


def _problem(kind):
    if kind == "gauss":
        G, D, *_ = gaussian_problem()
        return G, D
    if kind == "data":
        return None, lambda x: -0.5 * ((x - 1) ** 2).sum(1)
    if kind == "flow":
        return None, _tf
    if kind == "score":
        return None, _sigma_d
    return Identity(), RatioD([0.5, -0.3], 0.8)


def _run(case, z, **kw):
    kind, opts = CASES[case]
    G, D = _problem(kind)
    extra = {"score": _score} if kind == "score" else {}
    return lf.refine(G, D, z, method=case.split("-")[0], seed=4, progress=False, **opts, **extra, **kw)


def test_every_registered_method_has_a_chunking_case():
    # the two tests below cover each sampler; a new method in methods() needs a case in CASES
    assert {c.split("-")[0] for c in CASES} == set(lf.methods())


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_size_1_7_and_all_give_the_same_samples(case):
    z = _z()
    ref = _run(case, z)
    for bs in (1, 7):
        res = _run(case, z, batch_size=bs)
        torch.testing.assert_close(res.x, ref.x, rtol=1e-4, atol=1e-4)
    again = _run(case, z)
    assert torch.equal(again.x, ref.x)  # determinism for a fixed seed


@pytest.mark.parametrize("case", sorted(CASES))
def test_chain_offset_split_equals_one_call(case):
    z = _z()
    ref = _run(case, z)
    k = 9
    a = _run(case, z[:k])
    b = _run(case, z[k:], chain_offset=k)
    torch.testing.assert_close(torch.cat([a.x, b.x]), ref.x, rtol=1e-4, atol=1e-4)
    if ref.z is not None:
        torch.testing.assert_close(torch.cat([a.z, b.z]), ref.z, rtol=1e-4, atol=1e-4)
    # and a wrong offset gives other samples (the offset is really used); DOT and G alone draw nothing per chain
    c = _run(case, z[k:], chain_offset=0)
    assert torch.allclose(c.x, ref.x[k:]) == (case in ("dot", "none"))


def test_mala_accept_decisions_do_not_depend_on_chunking():
    z = _z(64)
    kind, opts = CASES["ddls-mala"]
    a = _run("ddls-mala", z)
    b = _run("ddls-mala", z, batch_size=5)
    assert torch.equal(a.info["accept_rate"], b.info["accept_rate"])


def test_seed_generator_and_int_generator_give_one_key():
    G, D, *_ = gaussian_problem()
    z = _z()
    a = lf.refine(G, D, z, method="ddls", steps=3, seed=8, progress=False)
    b = lf.refine(G, D, z, method="ddls", steps=3, generator=8, progress=False)
    c = lf.refine(G, D, z, method="ddls", steps=3, generator=torch.Generator().manual_seed(8), progress=False)
    assert torch.equal(a.x, b.x) and torch.equal(a.x, c.x)
    d = lf.refine(G, D, z, method="ddls", steps=3, seed=9, progress=False)
    assert not torch.equal(a.x, d.x)


# -- divergence ------------------------------------------------------------------------------------


def _blowup(frac_pos):
    """d = 50 relu(x0)^2 pushes chains with x0 > 0 outwards until they overflow."""
    D = lambda x: 50 * torch.relu(x[:, 0]) ** 2
    n = 20
    n_pos = int(frac_pos * n)
    x0 = (
        torch.cat([torch.linspace(-3, -1, n - n_pos), torch.linspace(1, 3, n_pos)])
        if n_pos
        else torch.linspace(-3, -1, n)
    )
    return D, torch.stack([x0, torch.zeros(n)], 1).double()


def test_most_chains_diverging_raises_with_advice():
    D, z = _blowup(0.75)
    with pytest.raises(DivergenceError, match=r"15 of 20 chains diverged.*chains 5 \(step \d+\).*reduce step_size"):
        lf.refine(Identity(), D, z, method="ddls", steps=200, step_size=0.1, seed=0, progress=False)


def test_a_minority_diverging_warns_and_keeps_the_mask():
    D, z = _blowup(0.25)
    with pytest.warns(DivergenceWarning, match="5 of 20 chains diverged"):
        res = lf.refine(Identity(), D, z, method="ddls", steps=200, step_size=0.1, seed=0, progress=False)
    assert res.diverged.dtype == torch.bool and res.diverged.tolist() == [False] * 15 + [True] * 5


def test_on_divergence_warn_and_keep_and_the_fraction():
    D, z = _blowup(0.75)
    with pytest.warns(DivergenceWarning):
        res = lf.refine(
            Identity(), D, z, method="ddls", steps=200, step_size=0.1, seed=0, progress=False, on_divergence="warn"
        )
    assert int(res.diverged.sum()) == 15
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lf.refine(
            Identity(), D, z, method="ddls", steps=200, step_size=0.1, seed=0, progress=False, on_divergence="keep"
        )
    assert int(res.diverged.sum()) == 15
    lf.refine(
        Identity(), D, z, method="ddls", steps=200, step_size=0.1, seed=0, progress=False, max_diverged_fraction=0.8
    )  # 0.75 <= 0.8: a warning, no error
    D2, z2 = _blowup(0.25)
    with pytest.raises(DivergenceError):
        lf.refine(
            Identity(),
            D2,
            z2,
            method="ddls",
            steps=200,
            step_size=0.1,
            seed=0,
            progress=False,
            max_diverged_fraction=0.1,
        )


@pytest.mark.parametrize(
    "method,opts", [("ddls", dict(steps=3)), ("dot", dict(steps=3)), ("dg_langevin", dict(steps=3))]
)
def test_nonfinite_model_on_the_initial_state_is_blamed_on_the_model(method, opts, caplog):
    # G is finite, D is NaN on chains with x0 > 2 (two of eight): the initial state is already bad
    D = lambda x: torch.where(x[:, 0] > 2, torch.full_like(x[:, 0], float("nan")), -0.5 * (x**2).sum(1))
    z = torch.stack([torch.linspace(-3, 3.5, 8), torch.zeros(8)], 1).double()
    G = None if method == "dg_langevin" else Identity()
    with caplog.at_level(logging.WARNING, logger="latentflow"), pytest.warns(DivergenceWarning):
        res = (
            lf.refine(G, D, z, method=method, seed=0, progress=False, space="target", **opts)
            if method == "dot"
            else lf.refine(G, D, z, method=method, seed=0, progress=False, **opts)
        )
    assert res.diverged.tolist() == [False] * 6 + [True] * 2
    assert (res.info["diverged_step"][res.diverged] == 0).all()
    assert "G/D returned non-finite values on the initial state of 2 chain(s) (chains 6, 7)" in caplog.text
    assert "step size" in caplog.text and "reduce" not in caplog.text


def test_result_records_the_options_record():
    G, D, *_ = gaussian_problem()
    res = lf.refine(G, D, _z(), method="ddls", steps=2, seed=0, progress=False, batch_size=5)
    opts = res.info["options"]
    assert opts["steps"] == 2 and opts["mala"] is False and opts["batch_size"] == 5
    assert opts["on_divergence"] == "raise" and "generator" not in opts


def test_a_lambda_around_a_batchnorm_d_samples_as_the_module_in_eval_mode():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1)).double()
    z = _z()
    with pytest.warns(UserWarning, match="train mode"):
        a = lf.refine(Identity(), lambda x: net(x), z, method="ddls", steps=3, seed=0, progress=False)
    assert net.training
    net.eval()
    b = lf.refine(Identity(), net, z, method="ddls", steps=3, seed=0, progress=False)
    torch.testing.assert_close(a.x, b.x)


def test_a_nan_generator_at_step_0_is_blamed_on_the_model():
    G, D = tiny_modules()
    bad = lambda z: G(z) * float("nan")  # noqa: E731
    z = lf.sample_latents(8, 2, generator=0)
    with pytest.raises(DivergenceError) as ei:
        lf.refine(bad, D, z, "ddls", steps=3, seed=0, progress=False, d_output="critic")
    msg = str(ei.value)
    assert "non-finite values on the initial state of 8 chain(s)" in msg
    assert "check the model and z, not the step size" in msg and "reduce step_size" not in msg


def test_mala_samples_do_not_depend_on_chunking_or_on_a_split_across_calls():
    G, D = tiny_modules()
    z = lf.sample_latents(24, 2, generator=3)
    opts = dict(steps=5, step_size=0.05, d_output="critic", mala=True, seed=7, progress=False)
    ref = lf.refine(G, D, z, "ddls", **opts)
    for bs in (1, 7):
        torch.testing.assert_close(lf.refine(G, D, z, "ddls", batch_size=bs, **opts).x, ref.x, rtol=1e-4, atol=1e-4)
    a = lf.refine(G, D, z[:10], "ddls", **opts)  # "another process": rows 10..23
    b = lf.refine(G, D, z[10:], "ddls", chain_offset=10, **opts)
    torch.testing.assert_close(torch.cat([a.x, b.x]), ref.x, rtol=1e-4, atol=1e-4)
    assert torch.equal(torch.cat([a.info["accept_rate"], b.info["accept_rate"]]), ref.info["accept_rate"])
