"""What a method declares about itself (``Kernel``: needs, cost, fit_budget, search_space, calibration, the
README row) is true, and the rest of latentflow reads it rather than naming methods."""

import ast
import math
import re
from pathlib import Path

import pytest
import torch

import latentflow as lf
from latentflow.app.fit import fitting_methods, misfit
from latentflow.energy import latent_from_u
from latentflow.samplers import NO_REFINEMENT, Kernel, Needs, SearchContext, kernel, kernels, methods_table

ROOT = Path(__file__).resolve().parents[1]
N = 7  # chains: odd, so that per-sample counts of what a run evaluates once are not round


def G(z, *y):
    return torch.tanh(z @ torch.tensor([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4]], dtype=z.dtype))


def D(x, *c):
    return -0.1 * (x**2).sum(1) + (c[0] if c else 0.0)


def S(x, s):  # the score of N(0, (1 + σ²) I)
    return -x / (1 + s**2)[:, None]


Z = torch.randn(N, 2, generator=torch.Generator().manual_seed(0))
X = torch.randn(N, 3, generator=torch.Generator().manual_seed(1))

#: (method, G, D, state, options): runs whose evaluations the declared cost must predict exactly
RUNS = [
    ("ddls", G, D, Z, dict(steps=3)),
    ("ddls", G, D, Z, dict(steps=3, mala=True, adapt_steps=2)),
    ("dot", G, D, Z, dict(steps=3, k_eff_pairs=5)),
    ("dot", G, D, Z, dict(steps=3, space="target", k_eff=1.0)),
    ("dot", None, D, X, dict(steps=2, space="target", k_eff=1.0)),
    ("mh", G, D, Z, dict(k=3)),
    ("dgflow", G, D, Z, dict(steps=3)),
    ("ex2mcmc", G, D, Z, dict(steps=2, n_particles=3, mala_steps=2)),
    ("ex2mcmc", G, D, Z, dict(steps=2, n_particles=4, mala_steps=0)),
    ("dg_langevin", G, D, Z, dict(steps=3)),
    ("dg_langevin", None, D, X, dict(steps=2, sigmas=[1.0, 0.5])),
    ("dflow", None, D, X, dict(steps=4)),
    ("dflow", None, D, X, dict(steps=4, solver="heun")),
    ("dflow", None, D, X, dict(steps=5, solver="heun", stop_step=3)),
    ("dg_score", None, D, X, dict(score=S, steps=4)),  # the default guide_range: σ <= 1 only
    ("dg_score", None, D, X, dict(score=S, steps=4, sigma_max=2.0, guide_range=None)),  # every level
    ("dg_score", None, D, X, dict(score=S, steps=3, solver="langevin", langevin_steps=2, guide_range=(0.0, 10.0))),
    ("dg_score", None, None, X, dict(score=S, steps=4, w=0.0)),
    (NO_REFINEMENT, G, None, Z, dict(batch_size=3)),
    ("truncation", G, None, Z, dict(psi=0.7, batch_size=3)),
    ("truncation", G, D, Z, dict(psi=0.5, prior="uniform")),  # a D given is not called
]


@pytest.mark.parametrize("method, g, d, state, opts", RUNS, ids=[f"{r[0]}-{i}" for i, r in enumerate(RUNS)])
def test_declared_cost_is_what_a_run_evaluates(method, g, d, state, opts):
    res = lf.refine(g, d, state, method=method, seed=0, progress=False, **opts)
    declared = kernel(method).cost(opts, n=N, generator=g is not None)
    for key, per_sample in declared.as_dict().items():
        assert res.info[key] == pytest.approx(per_sample * N), key


def test_a_cost_that_depends_on_chance_is_a_lower_bound():
    res = lf.refine(G, D, Z, method="drs", seed=0, pilot=20, progress=False)
    declared = kernel("drs").cost({"pilot": 20}, n=N)
    assert res.evals.n_D_forward >= declared.n_D_forward * N and res.evals.n_G_forward >= declared.n_G_forward * N


@pytest.mark.parametrize("budget", [5, 12, 40])
def test_fit_budget_spends_about_the_budget(budget):
    """About ``budget`` D forwards per sample (the loop's; one more for a start), at least one step."""
    fitted = 0
    for name, k in kernels().items():
        opts = k.fit_budget(budget)
        if not opts:
            continue
        fitted += 1
        d = k.cost(opts).n_D_forward
        per_step = k.cost({**opts, "steps": opts.get("steps", 0) + 1}).n_D_forward - d if "steps" in opts else 1
        least = k.cost({**opts, "steps": 1}).n_D_forward if "steps" in opts else 0  # at least one step
        assert budget - per_step < d <= max(budget + 1, least), (name, opts, d)
    assert fitted >= 6


@pytest.mark.parametrize("budget, calibrated", [(12, False), (40, True), (150, True)])
def test_search_spaces_are_valid_options_within_the_budget(budget, calibrated):
    ctx = SearchContext(budget=budget, calibrated=calibrated)
    named = set()
    for name, k in kernels().items():
        for c in k.search_space(ctx):
            assert c.method == name
            k.Options(**k.options_of(c.options))  # the options build the method's record
            assert set(c.options) <= set(k.defaults()), (name, c.options)
            own = k.search_space.__func__ is not Kernel.search_space.__func__  # else: its defaults, fitted
            # within the budget on a run of 1000 chains, once-per-run evaluations (probe, pilot, pairs) included
            assert not own or k.cost(c.options, n=1000).n_D_forward <= budget, (name, c.options)
            assert not c.calibrated or (calibrated and k.calibration is not None)
            if c.name:
                named.add(name)
    assert {"ddls", "dot", "drs", "mh"} <= named  # the published settings are candidates
    assert ("dgflow" in named) == (budget >= 27)


def test_truncation_spends_no_budget_and_searches_psi_with_the_models_prior():
    k = kernel("truncation")
    assert k.fit_budget(5) == k.fit_budget(500) == {} and k.calibration is None
    assert k.cost({"psi": 0.5}, n=N) == k.cost({"psi": 2.0}, n=N) and k.cost().n_D_forward == 0
    for prior in ("normal", "uniform"):
        spaces = [k.search_space(SearchContext(budget=b, calibrated=True, prior=prior)) for b in (3, 12, 150)]
        assert spaces[0] == spaces[1] == spaces[2]  # the same at any budget
        assert {c.options["prior"] for c in spaces[0]} == {prior} and not any(c.calibrated for c in spaces[0])
        psis = [c.options["psi"] for c in spaces[0]]
        # a uniform prior's support is [-1, 1]: ψ ≥ 1 would be the generator itself
        assert psis == ([0.5, 0.7, 1.0, 1.5, 2.0] if prior == "normal" else [0.5, 0.7])


def test_calibration_as_a_temperature_rescales_options_only():
    k = kernel("ddls")
    assert k.calibrated_options({"steps": 5, "temperature": 0.3}, 2.0) == {"steps": 5, "temperature": 0.15}
    assert k.calibrated_options({"steps": 5}, 4.0)["temperature"] == 0.25
    with pytest.raises(lf.OptionError):
        kernel("mh").calibrated_options({}, 2.0)
    assert {m for m, k in kernels().items() if k.calibration == "discriminator"} >= {"drs", "mh"}


def test_needs_are_typed_and_enforced():
    for name, info in lf.methods().items():
        assert isinstance(info.needs, Needs) and info.to_dict()["needs"]["summary"], name
    assert kernel("dflow").needs.discriminator == ("D(x, t)",)
    assert kernel("dg_score").needs.score and not kernel("dg_score").needs.labels
    assert kernel("truncation").needs.discriminator == () and not kernel("truncation").needs.needs_discriminator
    with pytest.raises(lf.OptionError, match="needs a generator"):
        lf.refine(None, D, Z, method="ex2mcmc")
    with pytest.raises(lf.OptionError, match=r"needs a discriminator D \(D\(x\)\)"):
        lf.refine(G, None, Z, method="dgflow")
    with pytest.raises(lf.OptionError, match="takes no class labels"):
        lf.refine(None, D, X, method="dg_score", score=S, y=torch.zeros(N, dtype=torch.long))


def test_fit_reads_the_needs_for_every_method():
    gan = {"roles": ["G", "D"], "d_conditioning": None}
    flow = {"roles": ["D"], "d_conditioning": "time", "name": "f"}
    every = {"ddls", "dgflow", "ex2mcmc", "dot", "drs", "mh", "dg_langevin", "truncation", NO_REFINEMENT}
    assert every <= set(fitting_methods(gan))
    assert fitting_methods(flow) == ["dflow"]
    assert set(fitting_methods({"roles": ["G"], "name": "g"})) == {NO_REFINEMENT, "truncation"}  # no D needed
    for m in ("ex2mcmc", "dgflow"):  # once said to fit any model
        assert "needs a generator" in misfit(m, flow)
    assert "needs sigmas" in misfit("dg_langevin", {"roles": ["D"], "d_conditioning": "sigma"}, {})
    assert fitting_methods(gan)[0] == NO_REFINEMENT


def test_the_generator_alone_is_a_method_in_eval_mode_with_labels():
    with torch.random.fork_rng():  # module init draws from the global RNG
        net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Dropout(0.5))
    with torch.no_grad():
        want = net.eval()(Z)
    net.train()
    res = lf.refine(net, None, Z, method=NO_REFINEMENT, batch_size=2)
    assert torch.equal(res.x, want) and net.training  # eval mode during the run, restored after
    assert res.info["n_G_forward"] == N and res.info["n_D_forward"] == 0 and not res.diverged.any()

    class Cond(torch.nn.Module):
        num_classes = 4

        def forward(self, z, y):
            return z + y[:, None].float()

    res = lf.refine(Cond(), None, Z, method=NO_REFINEMENT, seed=3)
    assert res.y is not None and torch.equal(res.x, Z + res.y[:, None].float())
    assert torch.equal(lf.samplers.generate(Cond(), Z), Z + lf.rng.sample_labels(N, 4, generator=0)[:, None])


def test_callback_sees_the_latents_beside_the_state():
    seen = []
    z = torch.rand(N, 2, generator=torch.Generator().manual_seed(2)) * 1.8 - 0.9
    res = lf.refine(G, D, z, method="ddls", prior="uniform", steps=3, seed=0, callback=seen.append)
    for s in seen:  # DDLS moves u, the normal-CDF coordinates of a uniform prior; Step.z is the latent
        torch.testing.assert_close(s.z, latent_from_u(s.state, "uniform"))
    torch.testing.assert_close(seen[-1].z, res.z)
    seen.clear()
    lf.refine(None, D, X, method="dg_langevin", steps=2, seed=0, callback=seen.append)
    assert seen and all(s.z is None for s in seen)  # a data-space method has no latent


def test_result_info_common_fields_are_typed():
    res = lf.refine(G, D, Z, method="mh", k=2, seed=0, progress=False)
    assert res.method == "mh" and res.options["k"] == 2 and res.wall_s > 0
    assert res.evals.n_D_forward == res.info["n_D_forward"] and res.diverged_step.shape == (N,)
    assert set(lf.result.EVAL_KEYS) <= set(res.info) and lf.result.GD_EVAL_KEYS == lf.result.EVAL_KEYS[:4]


def test_readme_method_table_is_rendered_from_the_declarations():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- methods-table:start -->\n(.*?)\n<!-- methods-table:end -->", text, re.S)
    assert m, "README.md lost the methods-table markers"
    assert m.group(1) == methods_table()
    assert f"`{NO_REFINEMENT}`" not in methods_table()  # the table lists refinements
    assert "| `truncation` |" in methods_table() and "Brock et al. 2019" in methods_table()


def _method_literals(path: Path, names: set) -> list:
    tree = ast.parse(path.read_text())
    docs = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return [
        (path.relative_to(ROOT).as_posix(), n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names and id(n) not in docs
    ]


def test_few_string_literals_name_a_method_outside_the_samplers():
    """A method's knowledge lives in its module: outside ``samplers/`` at most 15 string literals name a method
    (the benchmark suites' rows, declared as data), none in ``tune`` or ``fit``. The word ``none`` also means
    "no value" (option text, norms), so it counts only in ``tune`` and ``fit``."""
    names = set(kernels())
    files = [p for p in sorted((ROOT / "latentflow").rglob("*.py")) if "samplers" not in p.parts]
    hits = [h for p in files for h in _method_literals(p, names - {NO_REFINEMENT})]
    assert len(hits) <= 15, "\n".join(map(str, hits))
    strict = [p for p in files if p.stem.startswith(("tune", "fit"))]
    assert [h for p in strict for h in _method_literals(p, names)] == []


def test_cost_scales_with_steps():
    assert kernel("ddls").cost({"steps": 10}).n_D_backward == 11
    assert math.isclose(kernel("dot").cost({"steps": 10}, n=50).n_D_forward, 10 + (2 + 200) / 50)
