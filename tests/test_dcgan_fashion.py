"""The bundled Fashion-MNIST DCGAN (``dcgan-fashion``): loads offline, right shapes and ranges, and
``latentflow sample --model dcgan-fashion`` writes its three outputs (samples, PNG, report)."""

import json
import time

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import latentflow
from latentflow.cli import main
from latentflow.models.resolve import resolve
from latentflow.models.sources import is_available_offline

NAME = "dcgan-fashion"


@pytest.fixture(scope="module")
def pair():
    return latentflow.load(NAME)


def test_entry_is_bundled_and_offline():
    entry = resolve(NAME)
    assert entry.source["kind"] == "bundled"
    assert entry.verified and all(entry.files[r].sha256 for r in ("G", "D"))
    assert is_available_offline(entry)
    assert entry.d_output == "logit" and entry.dataset == "fashion-mnist"
    assert entry.latent_dim == 64 and entry.prior == "normal"
    assert "ddls" in entry.sampling


def test_load_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LATENTFLOW_OFFLINE", "1")
    p = latentflow.load(NAME)
    assert p.meta["name"] == NAME and p.meta["dataset"] == "fashion-mnist"


def test_shapes_and_range(pair):
    z = latentflow.sample_latents(16, 64, generator=0)
    with torch.no_grad():
        x = pair.G(z)
        d = pair.D(x)
    assert x.shape == (16, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.1  # not collapsed to a constant image
    assert d.shape == (16,) and torch.isfinite(d).all()
    # D is a batch-independent logit: one sample alone gives the same value as in the batch
    with torch.no_grad():
        assert torch.allclose(pair.D(x[:1]), d[:1], atol=1e-5)


def test_ddls_runs_short(pair):
    z = latentflow.sample_latents(8, 64, generator=0)
    res = latentflow.refine(
        pair.G, pair.D, z, method="ddls", d_output="logit", steps=3, step_size=0.01, seed=0, progress=False
    )
    assert res.x.shape == (8, 1, 28, 28) and torch.isfinite(res.x).all()


def _sample(tmp_path, extra=()):
    out = tmp_path / "o"
    t0 = time.perf_counter()
    r = CliRunner().invoke(
        main,
        [
            "sample",
            "--model",
            NAME,
            "--method",
            "ddls",
            "--num",
            "64",
            "--out",
            str(out),
            "--quiet",
            "--device",
            "cpu",
            *extra,
        ],
        catch_exceptions=False,
    )
    wall = time.perf_counter() - t0
    assert r.exit_code == 0, r.output
    assert {p.name for p in out.iterdir()} >= {"samples.safetensors", "samples.png", "report.json"}
    s = load_file(str(out / "samples.safetensors"))
    assert s["x"].shape == (64, 1, 28, 28) and s["x_before"].shape == (64, 1, 28, 28)
    rep = json.loads((out / "report.json").read_text())
    assert rep["model"] == NAME and rep["method"] == "ddls" and rep["num"] == 64
    return rep, wall


@pytest.mark.rng_ok
def test_cli_sample_fast(tmp_path):
    rep, _ = _sample(tmp_path, ["--steps", "5"])
    assert rep["result"]["options"]["steps"] == 5


@pytest.mark.slow
@pytest.mark.rng_ok
def test_cli_sample_recommended_settings(tmp_path):
    """The manifest's recommended DDLS settings; well under 2 minutes on 2 CPU cores."""
    rep, wall = _sample(tmp_path)
    assert wall < 120, f"latentflow sample took {wall:.1f} s"
