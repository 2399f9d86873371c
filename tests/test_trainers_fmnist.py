"""``benchmarks/trainers_fmnist.py``: its quick mode end to end (tiny Discriminator Flow and Score GAN on
Fashion-MNIST, FID-FMNIST, grids, memorisation statistics) and its helpers. Needs Fashion-MNIST
(Debian's ``dataset-fashion-mnist``) for the end-to-end run; skips without it. Temporary cache, CPU only."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from latentflow.errors import LatentflowError

ROOT = Path(__file__).resolve().parent.parent


def _load_bench():
    spec = importlib.util.spec_from_file_location("trainers_fmnist", ROOT / "benchmarks" / "trainers_fmnist.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TF = _load_bench()


def test_nearest_matches_cdist(gen):
    x = torch.randn(37, 1, 4, 4, generator=gen)
    ref = torch.randn(53, 1, 4, 4, generator=gen)
    d, i = TF.nearest(x, ref, chunk=10)
    full = torch.cdist(x.flatten(1).double(), ref.flatten(1).double())
    assert torch.equal(i, full.argmin(1))
    assert torch.allclose(d.double(), full.min(1).values, atol=1e-5)


def test_image_data_score_points_to_nearest_image_at_small_sigma(gen):
    imgs = torch.rand(5, 1, 28, 28, generator=gen) * 2 - 1
    score = TF.image_data_score(imgs)
    x = imgs[[3, 1]] + 0.01 * torch.randn(2, 1, 28, 28, generator=gen)
    sig = torch.full((2,), 0.05)
    s = score(x, sig)
    assert s.shape == x.shape
    # σ² s = E[image | x] - x, and at small σ the posterior sits on the nearest image (a memorising score)
    assert torch.allclose(x + sig[:, None, None, None] ** 2 * s, imgs[[3, 1]], atol=1e-4)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, isolated_cache):
    from latentflow.data import find_fashion_mnist

    try:
        find_fashion_mnist()
    except LatentflowError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    out = tmp_path_factory.mktemp("tfm")
    lines = []
    with torch.random.fork_rng():  # the trainers seed the global RNG
        TF.main(["--quick", "--out", str(out), "--workdir", str(tmp_path_factory.mktemp("work"))], echo=lines.append)
    return out, json.loads((out / "results.json").read_text()), lines


def test_quick_mode_writes_results(quick_run):
    out, doc, lines = quick_run
    assert doc["quick"] is True and [r["trainer"] for r in doc["runs"]] == ["dflow", "scoregan"]
    for r in doc["runs"]:
        assert r["steps"] == r["curve"][-1]["step"] > 0
        assert r["train_cpu_s"] > 0 and r["n"] == doc["bench"]["n"]
        assert math.isfinite(r["metrics"]["fid_fmnist"]) and r["metrics"]["fid_fmnist"] > 0
        assert {"train"} <= set(r["memorisation"])
        for f in r["files"].values():
            assert (out / f).stat().st_size > 0
    sg = doc["runs"][1]
    assert sg["data_score"]["score_m"] == doc["bench"]["score_m"] and "memorise" in sg["data_score"]["caveat"]
    assert {"train", "score_set"} == set(sg["memorisation"])
    assert "trajectory" in doc["runs"][0]["files"]
    refs = {r["key"]: r for r in doc["references"]}
    assert refs["real_train"]["metrics"]["fid_fmnist"] < min(r["metrics"]["fid_fmnist"] for r in doc["runs"])
    md = (out / "results.md").read_text()
    assert md.count("\n") == 2 + len(doc["runs"]) + len(doc["references"])
    assert "Discriminator Flow" in md and "Score GAN" in md and "dcgan-fashion" in md


def test_heun_vs_euler_picks_the_smallest_heun_nfe_that_reaches_euler():
    rows = [
        {"solver": "euler", "steps": 32, "nfe": 32, "fid_fmnist": 50.0},
        {"solver": "euler", "steps": 16, "nfe": 16, "fid_fmnist": 60.0},
        {"solver": "heun", "steps": 5, "nfe": 9, "fid_fmnist": 70.0},
        {"solver": "heun", "steps": 9, "nfe": 17, "fid_fmnist": 49.0},
        {"solver": "heun", "steps": 17, "nfe": 33, "fid_fmnist": 45.0},
    ]
    got = TF.heun_vs_euler(rows, 32)
    assert (got["euler_fid_fmnist"], got["heun_nfe"], got["heun_fid_fmnist"]) == (50.0, 17, 49.0)
    assert got["nfe_ratio"] == round(17 / 32, 3)
    assert TF.heun_vs_euler(rows, 64) == {}
    none = TF.heun_vs_euler([r for r in rows if r["fid_fmnist"] >= 50 or r["solver"] == "euler"], 32)
    assert none["heun_nfe"] is None and none["nfe_ratio"] is None


def test_quick_mode_dflow_solver_sweep_and_curve_plot(quick_run):
    out, doc, _ = quick_run
    df = doc["runs"][0]
    b = doc["bench"]
    assert [(r["solver"], r["steps"]) for r in df["solvers"]] == [("euler", k) for k in b["euler_steps"]] + [
        ("heun", k) for k in b["heun_steps"]
    ]
    assert all(r["nfe"] == (2 * r["steps"] - 1 if r["solver"] == "heun" else r["steps"]) for r in df["solvers"])
    assert all(math.isfinite(r["fid_fmnist"]) for r in df["solvers"])
    assert (out / "fid_vs_cpu.png").stat().st_size > 0
    assert df["config"]["arch"] == "tconv_d" and df["config"]["time_sampling"] == "uniform"
