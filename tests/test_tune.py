"""latentflow.tune on a 2-D model whose answer is known.

G(z) = 2z with z ~ N(0, I) makes p_g = N(0, 4I) against real N(0, I): the exact log density ratio is
d(x) = log p_data(x) - log p_g(x) = -3/8 ||x||² + log 4, and DDLS at T = 1 (or DRS with γ = 0) turns p_g into
p_data exactly. The Fréchet distance of the generator alone is ||μ||² + Σ_i (σ_g - σ_r)² = 2 · (2 - 1)² = 2.
"""

import json
import math

import numpy as np
import pytest
import torch

import latentflow
from latentflow.app.tune.tune import TuneResult, candidates, tune
from latentflow.app.tune.tune_cmd import read_real
from latentflow.app.tune.tune_metrics import frechet, kid
from latentflow.errors import LatentflowError

REAL = torch.randn(700, 2, generator=torch.Generator().manual_seed(3))


def G(z):
    return 2 * z


def D_exact(x):
    return -0.375 * (x**2).sum(1) + math.log(4.0)


def D_const(x):
    return 0 * x.sum(1)  # connected to x, but it says nothing


@pytest.fixture(scope="module")
def tuned():
    return tune(G, D_exact, REAL, latent_dim=2, methods=["ddls", "drs"], budget=40, seed=0, progress=False)


def test_frechet_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, 2, generator=g), 2 * torch.randn(4000, 2, generator=g)
    assert abs(frechet(a, b) - 2.0) < 0.3  # cov estimates err by ~ 4 sqrt(2/n) ≈ 0.09
    assert abs(frechet(a, a)) < 1e-8
    assert kid(a, b, size=500) > 10 * abs(kid(a, torch.randn(4000, 2, generator=g), size=500))


def test_exact_ratio_d_picks_refinement_and_beats_none(tuned):
    s = tuned.summary
    assert tuned.method in ("ddls", "drs")
    assert s["none"] > 1.5  # ≈ 2 (closed form) at n = 490
    assert s["winner_metric"] < 0.25 * s["none"]
    c = s["confirm"]  # pooled paired draws: the winner's pooled FID below the generator's by > 2 SE
    assert c["n"] == 2 * s["n_validation"] and c["generator"] - c["best"] == s["diff_mean"] > 2 * s["diff_se"] > 0
    z = latentflow.sample_latents(2000, 2, generator=11)
    x = tuned.refine(z, seed=1).x
    assert abs(float(x.std()) - 1.0) < 0.15  # refined samples have the real std 1 (G alone: 2)


def test_useless_d_recommends_none():
    r = tune(G, D_const, REAL, latent_dim=2, methods=["ddls", "drs"], budget=40, seed=0, progress=False)
    assert r.method == "none" and not r.calibrated
    assert "none" in r.summary["verdict"]
    z = latentflow.sample_latents(50, 2, generator=2)
    assert torch.equal(r.refine(z).x, G(z))


def test_deterministic_and_refine_reproduces(tuned):
    again = tune(G, D_exact, REAL, latent_dim=2, methods=["ddls", "drs"], budget=40, seed=0, progress=False)
    assert [r["metric"] for r in again.table] == [r["metric"] for r in tuned.table]
    assert (again.method, again.options, again.summary["winner_metric"]) == (
        tuned.method,
        tuned.options,
        tuned.summary["winner_metric"],
    )
    z = latentflow.sample_latents(100, 2, generator=4)
    assert torch.equal(tuned.refine(z, seed=3).x, tuned.refine(z, seed=3).x)


def test_budget_respected(tuned):
    ok = [r for r in tuned.table if r["status"] == "ok"]
    assert ok and all(r["d_evals_per_sample"] <= 40 for r in ok)
    small = tune(G, D_exact, REAL, latent_dim=2, methods=["ddls", "mh"], budget=12, seed=0, progress=False)
    assert all(r["d_evals_per_sample"] <= 12 for r in small.table if r["status"] == "ok")
    assert all(c.options.get("steps", 0) <= 10 and c.options.get("k", 0) <= 11 for c in candidates(12))
    if small.method != "none":
        z = latentflow.sample_latents(200, 2, generator=5)
        assert small.refine(z, seed=0).info["n_D_forward"] / 200 <= 12


def test_save_round_trip(tmp_path, tuned):
    folder = _exported_mlp_pair(tmp_path / "model")[2]
    tuned.save(folder)
    doc = json.loads((folder / "tune.json").read_text())
    assert doc["method"] == tuned.method and doc["options"] == tuned.options
    assert doc["summary"]["winner"] == tuned.summary["winner"]
    pair = latentflow.load(str(folder))
    assert pair.meta["sampling"][tuned.method] == doc["run_options"]


def test_read_real_formats(tmp_path):
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    np.savez(tmp_path / "a.npz", x=x.numpy())
    torch.save({"x": x}, tmp_path / "b.pt")
    from safetensors.torch import save_file

    save_file({"x": x}, str(tmp_path / "c.safetensors"))
    for f in ("a.npz", "b.pt", "c.safetensors"):
        assert torch.allclose(read_real(tmp_path / f), x)
    with pytest.raises(LatentflowError, match="real_path"):
        read_real(tmp_path / "d.txt")


@pytest.mark.parametrize(
    "kw, word",
    [
        (dict(real=torch.randn(5, 2)), "real"),
        (dict(budget=0), "budget"),
        (dict(metric="fud"), "metric"),
        (dict(methods=["ddls", "magic"]), "methods"),
        (dict(latent_dim=0), "latent_dim"),
        (dict(prior="cauchy"), "prior"),
        (dict(d_output="score"), "d_output"),
        (dict(features=3), "features"),
        (dict(metric="emd", real=torch.randn(100, 3)), "emd"),
    ],
)
def test_bad_inputs_name_the_argument(kw, word):
    args = dict(real=REAL, latent_dim=2, methods=["mh"], budget=20)
    args.update(kw)
    real = args.pop("real")
    Gx = (lambda z: torch.cat([z, z[:, :1]], 1)) if real.shape[1] == 3 else G
    with pytest.raises(LatentflowError, match=word):
        tune(Gx, D_exact, real, progress=False, **args)


def test_facade_wrapper():
    assert "tune" in latentflow.__all__
    assert isinstance(
        latentflow.tune(G, D_exact, REAL, latent_dim=2, methods=["mh"], budget=12, progress=False), TuneResult
    )


def _exported_mlp_pair(folder):
    from latentflow.models import ArchSpec, export, make_pair
    from latentflow.nets import build

    ag = ArchSpec("mlp_g", {"latent_dim": 2, "hidden": [4], "out_dim": 2})
    ad = ArchSpec("mlp_d", {"in_dim": 2, "hidden": [4]})
    with torch.random.fork_rng():  # module init draws from the global RNG
        torch.manual_seed(0)
        Gm, Dm = build(ag.name, **ag.kwargs), build(ad.name, **ad.kwargs)
    return Gm, Dm, export(make_pair(Gm, Dm, arch_g=ag, arch_d=ad), folder)


def test_a_calibrated_mh_pick_saves_its_calibration_and_sample_runs_it_on_the_same_calibrated_d(tmp_path):
    """MH-GAN on the calibrated D cannot be written as options alone: save() writes the fit (a, b) beside
    them, and the loaded model's refine (what ``latentflow sample`` runs) wraps its D the same way, so it
    gives the tune result's own samples; without the calibration the chains accept differently."""
    from latentflow.calibration import CalibratedD

    Gm, Dm, folder = _exported_mlp_pair(tmp_path / "model")
    cal = {"a": 3.0, "b": -0.7}
    res = TuneResult(method="mh", options={"k": 6}, calibrated=True, calibration=cal, table=[], G=Gm, D=Dm,
                     cal_D=CalibratedD(Dm, 3.0, -0.7, "logit"), d_output="logit")  # fmt: skip
    res.save(folder)
    block = latentflow.load(str(folder)).meta["sampling"]["mh"]
    assert (block["calibration_a"], block["calibration_b"], block["k"]) == (3.0, -0.7, 6)
    z = latentflow.sample_latents(300, 2, generator=5)
    pair = latentflow.load(str(folder))
    x = pair.refine(z, "mh", seed=2).x
    want = latentflow.refine(pair.G, CalibratedD(pair.D, 3.0, -0.7, "logit"), z, method="mh", k=6,
                             d_output="logit", generator=torch.Generator().manual_seed(2)).x  # fmt: skip
    assert torch.equal(x, want)
    plain = pair.refine(z, "mh", seed=2, calibration_a=None, calibration_b=None).x
    assert not torch.equal(x, plain)
    D, opts = pair.run_d(block)  # what the distributed sample and the benchmarks call the sampler with
    assert isinstance(D, CalibratedD) and (float(D.a), float(D.b)) == (3.0, pytest.approx(-0.7))  # float32 buffers
    assert opts == {"k": 6, "d_output": "logit", "prior": "normal"}


@pytest.mark.parametrize(
    "block, key",
    [
        ({"k": 5, "calibration_a": 2.0}, "calibration_a needs calibration_b"),
        ({"calibration_a": 2.0, "calibration_b": float("nan")}, "calibration_b must be a finite number"),
    ],
)
def test_a_sampling_block_with_half_a_calibration_or_a_non_finite_one_is_refused_by_name(block, key):
    from latentflow.errors import ManifestError
    from latentflow.models.validate import validate_sampling

    with pytest.raises(ManifestError, match=key) as e:
        validate_sampling({"mh": block}, "model.sampling")
    assert str(e.value).startswith("model.sampling.mh")
