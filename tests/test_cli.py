"""The CLI: a thin shell over the Python API, tested through click's runner on a tiny exported pair."""
import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from latentflow.cli import main
from latentflow.models.hub import export, make_pair
from latentflow.models.zoo import build


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():      # module init draws from the global RNG; keep it untouched
        G = build("mlp_g", latent_dim=2, hidden=[16], out_dim=2)
        D = build("mlp_d", in_dim=2, hidden=[16])
    for p in list(G.parameters()) + list(D.parameters()):
        p.data = 0.3 * torch.randn(p.shape, generator=g)
    pair = make_pair(G, D, arch_g={"name": "mlp_g", "kwargs": {"latent_dim": 2, "hidden": [16], "out_dim": 2}},
                     arch_d={"name": "mlp_d", "kwargs": {"in_dim": 2, "hidden": [16]}}, name="tiny",
                     latent_dim=2, d_output="critic", output_range=None, output_shape=[2], dataset="grid25",
                     sampling={"ddls": {"steps": 7, "step_size": 0.01}})
    out = tmp_path_factory.mktemp("tiny")
    export(pair, out)
    return str(out)


def run(args):
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    return r


def test_sample_writes_three_outputs(tiny_model, tmp_path):
    out = tmp_path / "o"
    r = run(["sample", "--model", tiny_model, "--num", "50", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert {p.name for p in out.iterdir()} >= {"samples.safetensors", "samples.png", "report.json"}
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "ddls" and rep["num"] == 50
    # the manifest's recommended settings are used, the model's d_output too
    assert rep["result"]["options"]["steps"] == 7 and rep["result"]["options"]["d_output"] == "critic"
    assert set(rep["metrics"]["before"]) == {"modes", "high_quality_pct", "hq_std", "emd"}
    t = load_file(str(out / "samples.safetensors"))
    assert t["x"].shape == (50, 2) and t["x_before"].shape == (50, 2) and t["z"].shape == (50, 2)
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_options_json_and_seed(tiny_model, tmp_path):
    args = ["sample", "--model", tiny_model, "--num", "20", "--steps", "3", "--opt", "mala=true", "--json",
            "--quiet", "--seed", "5"]
    a = json.loads(run(args + ["--out", str(tmp_path / "a")]).output)
    b = json.loads(run(args + ["--out", str(tmp_path / "b")]).output)
    assert a["result"]["options"]["mala"] is True and a["result"]["options"]["steps"] == 3
    assert "accept_rate_mean" in a["result"]
    xa = load_file(str(tmp_path / "a" / "samples.safetensors"))["x"]
    xb = load_file(str(tmp_path / "b" / "samples.safetensors"))["x"]
    assert torch.equal(xa, xb)


def test_clear_errors(tiny_model, tmp_path):
    r = CliRunner().invoke(main, ["sample", "--model", tiny_model, "--opt", "stepsize=1", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "unknown option(s) stepsize" in r.output
    r = CliRunner().invoke(main, ["sample", "--model", "no-such-model", "--out", str(tmp_path)])
    assert r.exit_code == 1 and "no-such-model" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["sample", "--method", "ddsl"])
    assert r.exit_code == 2 and "ddsl" in r.output
    r = CliRunner().invoke(main, ["sample", "--model", tiny_model, "--method", "drs", "--steps", "3",
                                  "--out", str(tmp_path)])
    assert r.exit_code == 1 and 'method "drs" got unknown option(s) steps' in r.output


def test_methods_and_models_listing():
    r = run(["methods", "--json"])
    ms = json.loads(r.output)
    assert set(ms) == {"ddls", "dflow", "dg_langevin", "dot", "drs", "mh"}
    assert ms["ddls"]["options"]["step_size"] == 0.01
    r = run(["methods"])
    assert "ddls:" in r.output and "step_size = 0.01" in r.output
    r = run(["models", "--json"])
    rows = json.loads(r.output)
    assert {"name", "source", "offline", "verified"} <= set(rows[0])


def test_train_dry_run_and_bad_field(tmp_path):
    r = run(["train", "gan", "--out", str(tmp_path), "--dry-run", "--set", "lr_g=0.0002", "--steps", "10"])
    cfg = json.loads(r.output)
    assert cfg["lr_g"] == 0.0002 and cfg["steps"] == 10 and cfg["loss"] == "wgan-gp"
    r = CliRunner().invoke(main, ["train", "gan", "--out", str(tmp_path), "--set", "lr=1"])
    assert r.exit_code == 2 and "unknown config field(s) lr" in r.output


@pytest.mark.rng_ok   # a trainer seeds the global RNG for weight init (torch.manual_seed)
def test_train_gan_tiny_then_sample(tmp_path):
    out = tmp_path / "g"
    r = run(["train", "gan", "--out", str(out), "--steps", "3", "--batch-size", "8", "--quiet",
             "--set", 'arch_g_kwargs={"latent_dim": 2, "hidden": [8], "out_dim": 2}',
             "--set", 'arch_d_kwargs={"in_dim": 2, "hidden": [8]}'])
    assert r.exit_code == 0, r.output
    assert (out / "G.safetensors").exists() and (out / "metrics.jsonl").exists()
    r = run(["sample", "--model", str(out), "--num", "10", "--steps", "2", "--out", str(tmp_path / "s"), "--quiet"])
    assert r.exit_code == 0, r.output
