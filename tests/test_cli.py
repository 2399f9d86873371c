"""The CLI: a thin shell over the Python API, tested through click's runner on a tiny exported pair."""

import json
import os

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from tiny_pair import cli, one_line_error

from latentflow.cli import main


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
    assert set(rep["metrics"]["before"]) == {
        "modes",
        "high_quality_pct",
        "hq_std",
        "emd",
        "precision",
        "recall",
        "density",
        "coverage",
    }
    t = load_file(str(out / "samples.safetensors"))
    assert t["x"].shape == (50, 2) and t["x_before"].shape == (50, 2) and t["z"].shape == (50, 2)
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_options_json_and_seed(tiny_model, tmp_path):
    args = [
        "sample",
        "--model",
        tiny_model,
        "--num",
        "20",
        "--steps",
        "3",
        "--opt",
        "mala=true",
        "--json",
        "--quiet",
        "--seed",
        "5",
    ]
    a = json.loads(run(args + ["--out", str(tmp_path / "a")]).output)
    json.loads(run(args + ["--out", str(tmp_path / "b")]).output)
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
    r = CliRunner().invoke(
        main, ["sample", "--model", tiny_model, "--method", "drs", "--steps", "3", "--out", str(tmp_path)]
    )
    assert r.exit_code == 1 and 'method "drs" got unknown option(s) steps' in r.output


def test_methods_and_models_listing():
    r = run(["methods", "--json"])
    ms = json.loads(r.output)
    assert set(ms) == {
        "ddls",
        "dflow",
        "dg_langevin",
        "dg_score",
        "dgflow",
        "dot",
        "drs",
        "ex2mcmc",
        "mh",
        "none",
        "truncation",
    }
    assert ms["none"]["refines"] is False and ms["ddls"]["needs"]["discriminator"] == ["D(x)"]
    assert ms["ddls"]["options"]["step_size"] == 0.003
    r = run(["methods"])
    assert "ddls:" in r.output and "step_size = 0.003" in r.output and "needs: a generator, D(x)" in r.output
    r = run(["models", "--json"])
    rows = json.loads(r.output)
    assert {"name", "source", "offline", "verified"} <= set(rows[0])


def test_train_dry_run_and_bad_field(tmp_path):
    r = run(["train", "gan", "--out", str(tmp_path), "--dry-run", "--set", "lr_g=0.0002", "--steps", "10"])
    cfg = json.loads(r.output)
    assert cfg["lr_g"] == 0.0002 and cfg["steps"] == 10 and cfg["loss"] == "wgan-gp"
    r = CliRunner().invoke(main, ["train", "gan", "--out", str(tmp_path), "--set", "lr=1"])
    assert r.exit_code == 2 and "unknown config field(s) lr" in r.output


def test_train_preset_then_overrides(tmp_path):
    from latentflow.train.dflow import PRESETS

    r = run(
        [
            "train",
            "dflow",
            "--preset",
            "fmnist-cpu",
            "--steps",
            "7",
            "--set",
            "eta=3",
            "--out",
            str(tmp_path),
            "--dry-run",
        ]
    )
    cfg = json.loads(r.output)
    want = PRESETS["fmnist-cpu"]
    assert cfg["steps"] == 7 and cfg["eta"] == 3 and cfg["prior"] == want["prior"] == "gaussian"
    assert cfg["gp_weight"] == want["gp_weight"] and cfg["arch_kwargs"] == want["arch_kwargs"]
    r = CliRunner().invoke(main, ["train", "dflow", "--preset", "fmnist", "--out", str(tmp_path)])
    assert r.exit_code == 2 and 'unknown preset "fmnist"' in r.output and 'Did you mean "fmnist-cpu"' in r.output
    r = CliRunner().invoke(main, ["train", "gan", "--preset", "x", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "this trainer has no presets" in r.output


@pytest.mark.rng_ok  # a trainer seeds the global RNG for weight init (torch.manual_seed)
def test_train_gan_tiny_then_sample(tmp_path):
    out = tmp_path / "g"
    r = run(
        [
            "train",
            "gan",
            "--out",
            str(out),
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--quiet",
            "--set",
            'arch_g_kwargs={"latent_dim": 2, "hidden": [8], "out_dim": 2}',
            "--set",
            'arch_d_kwargs={"in_dim": 2, "hidden": [8]}',
        ]
    )
    assert r.exit_code == 0, r.output
    assert (out / "G.safetensors").exists() and (out / "metrics.jsonl").exists()
    r = run(["sample", "--model", str(out), "--num", "10", "--steps", "2", "--out", str(tmp_path / "s"), "--quiet"])
    assert r.exit_code == 0, r.output


# -- typed --opt, one-line errors before any compute, torchrun-safe names -------------------------------


def _err(r):
    """The CLI's error: exit code 1 and one line ``error: ...`` without a traceback."""
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    return lines[0]


def test_opt_values_are_typed_by_the_method(tiny_model, tmp_path):
    base = ["sample", "--model", tiny_model, "-n", "10", "--steps", "2", "--json", "--quiet"]
    rep = json.loads(run(base + ["--opt", "mala=false", "--out", str(tmp_path / "f")]).output)
    assert rep["result"]["options"]["mala"] is False and "accept_rate_mean" not in rep["result"]
    rep = json.loads(run(base + ["--opt", "mala=true", "--out", str(tmp_path / "t")]).output)
    assert rep["result"]["options"]["mala"] is True
    # "False" (which JSON-reading turned into the string "False", a true value) never turns MALA on:
    # read as false, or refused in one line
    r = CliRunner().invoke(main, base + ["--opt", "mala=False", "--out", str(tmp_path / "F")])
    if r.exit_code == 0:
        assert json.loads(r.output)["result"]["options"]["mala"] is False
    else:
        assert "mala" in _err(r)
    line = _err(CliRunner().invoke(main, base + ["--opt", "mala=maybe", "--out", str(tmp_path / "m")]))
    assert "mala" in line and "bool" in line and "'maybe'" in line
    line = _err(CliRunner().invoke(main, base + ["--opt", "adapt_steps=some", "--out", str(tmp_path / "m")]))
    assert "adapt_steps" in line and "int" in line
    assert not (tmp_path / "m").exists()


def test_out_that_is_a_file_is_refused_before_loading_the_model(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a folder")
    # the model does not exist: the --out check comes first, so it is the error shown
    line = _err(CliRunner().invoke(main, ["sample", "--model", "no-such-model", "--out", str(f)]))
    assert "out must be a folder" in line and str(f) in line
    line = _err(CliRunner().invoke(main, ["sample", "--model", "no-such-model", "--out", str(f / "sub")]))
    assert "is a file" in line
    line = _err(CliRunner().invoke(main, ["bench", "toy2d", "--quick", "--out", str(tmp_path)]))
    assert "must be a file path" in line
    line = _err(CliRunner().invoke(main, ["bench", "images", "--quick", "--out", str(f)]))
    assert "out must be a folder" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_unwritable_out_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        line = _err(CliRunner().invoke(main, ["sample", "--model", "no-such-model", "--out", str(ro / "o")]))
        assert "not writable" in line
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_seed_out_of_range(seed, tmp_path):
    line = _err(
        CliRunner().invoke(main, ["sample", "--model", "no-such-model", "--seed", seed, "--out", str(tmp_path / "o")])
    )
    assert "seed must be an int in 0..2**63-1" in line and seed in line
    line = _err(CliRunner().invoke(main, ["bench", "images", "--seed", seed, "--out", str(tmp_path / "b")]))
    assert "seed" in line
    line = _err(CliRunner().invoke(main, ["train", "gan", "--seed", seed, "--out", str(tmp_path / "t")]))
    assert "seed" in line


def test_library_errors_are_one_line_with_the_names_to_use(tmp_path):
    line = _err(CliRunner().invoke(main, ["sample", "--model", "grid25-wgangpp", "--out", str(tmp_path / "o")]))
    assert 'Unknown model "grid25-wgangpp"' in line and "grid25-wgangp," in line


def _all_params(cmd, path=()):
    import click

    for p in cmd.params:
        if isinstance(p, click.Option):
            yield path, p
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _all_params(sub, path + (name,))


def test_no_option_is_a_prefix_of_a_torchrun_option():
    """torchrun (argparse, abbreviations allowed) takes a child's ``--num`` for its ``--numa-binding``."""
    run_mod = pytest.importorskip("torch.distributed.run")
    from latentflow.cli import TORCHRUN_ALIASES

    theirs = [s for a in run_mod.get_args_parser()._actions for s in a.option_strings]
    assert "--numa-binding" in theirs
    clashes = {}
    for path, p in _all_params(main):
        names = [o for o in p.opts + p.secondary_opts if o != "--help"]
        for o in names:
            hit = [t for t in theirs if (t.startswith(o) if o.startswith("--") else t == o)]
            if hit:
                clashes[o] = (path, hit, names)
    assert set(clashes) == set(TORCHRUN_ALIASES), clashes
    for o, (path, _hit, names) in clashes.items():  # each one documented and beside a safe spelling
        assert TORCHRUN_ALIASES[o] in names, (path, o, names)
    sample = main.commands["sample"]
    num = next(p for p in sample.params if p.name == "num")
    assert "-n" in num.opts and "--num-samples" in num.opts and "--num" in num.opts


def test_tune_command_wires_the_app_and_checks_real_first(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from latentflow import app
    from latentflow.cli import main

    r = CliRunner().invoke(main, ["tune", "--model", "grid25-wgangp", "--real", str(tmp_path / "missing.npz")])
    assert r.exit_code == 1 and "--real: no such file or folder" in r.output
    real = tmp_path / "real.npz"
    real.write_bytes(b"")
    seen = {}

    def fake(model, real_path, **kw):
        seen.update(model=model, real=real_path, **kw)
        return {"method": "dot", "options": {"steps": 10}, "table_md": "| candidate |"}

    monkeypatch.setattr(app, "run_tune", fake)
    r = CliRunner().invoke(main, ["tune", "--model", "grid25-wgangp", "--real", str(real), "--budget", "30", "--quiet"])
    assert r.exit_code == 0, r.output
    unset = dict(labels=None, features=None, time_budget=None, metric=None)
    assert seen == {
        "model": "grid25-wgangp",
        "real": str(real),
        "budget": 30,
        "out": None,
        "seed": 0,
        "quiet": True,
        **unset,
    }
    args = ["--labels", str(real), "--features", "raw", "--time-budget", "60", "--metric", "fid_recall"]
    r = CliRunner().invoke(main, ["tune", "--model", "m", "--real", str(real), "--quiet", *args])
    assert r.exit_code == 0, r.output
    assert (seen["labels"], seen["features"], seen["time_budget"], seen["metric"]) == (
        str(real),
        "raw",
        60.0,
        "fid_recall",
    )
    assert 'recommended: dot {"steps": 10}' in r.output


def test_total_divergence_exits_nonzero_with_advice_and_leaves_no_report(tiny_model, tmp_path):
    out = tmp_path / "o"
    ok = cli(["sample", "--model", tiny_model, "-n", "20", "--out", str(out), "--quiet"])
    assert ok.exit_code == 0, ok.output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    diverging = ["sample", "--model", tiny_model, "-n", "20", "--steps", "30", "--step-size", "1e6"]
    r = cli([*diverging, "--out", str(out), "--quiet"])
    line = one_line_error(r, "20 of 20 chains diverged", "To avoid this, reduce step_size", 'on_divergence="warn"')
    assert "initial state" not in line
    # the previous set is untouched (no report with NaN was written over it), and nothing is left beside it
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    # on_divergence="warn" keeps the run: its report is strict JSON, non-finite numbers as null with a reason
    r = cli([*diverging, "--out", str(out), "--quiet", "--opt", "on_divergence=warn"])
    assert r.exit_code == 0, r.output
    text = (out / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    rep = json.loads(text)
    assert rep["result"]["n_diverged"] == 20


def test_models_reports_the_files_on_disk_not_the_manifest(monkeypatch, tmp_path):
    import latentflow.models.table as table

    r = cli(["models", "--json"])
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["grid25-wgangp"]["checkpoints"] == "verified"  # the bundled files, hashed now
    r = cli(["models"])
    assert "| grid25-wgangp |" in r.output and "verified" in r.output.split("| grid25-wgangp |")[1].splitlines()[0]
    bad = tmp_path / "tampered.safetensors"
    bad.write_bytes(b"not the file the manifest hashed")
    monkeypatch.setattr(table, "local_path", lambda entry, role: bad)
    rows = {row["name"]: row for row in json.loads(cli(["models", "--json"]).output)}
    assert rows["grid25-wgangp"]["checkpoints"] == "mismatch"
    line = cli(["models"]).output.split("| grid25-wgangp |")[1].splitlines()[0]
    assert "MISMATCH" in line and "verified" not in line
