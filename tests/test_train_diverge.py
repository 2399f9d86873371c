"""A run whose loss becomes non-finite stops at that step with TrainingDiverged (a LatentflowError),
keeps its last finite checkpoint, and writes no final model (a GAN trainer at lr 1e9)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from tiny_pair import cli, one_line_error

from latentflow.errors import DivergenceError, LatentflowError
from latentflow.train import TrainingDiverged, get_trainer, make_config

TINY = dict(
    lr_g=1e9,
    lr_d=1e9,
    steps=50,
    batch_size=32,
    n_critic=1,
    arch_g_kwargs={"latent_dim": 2, "hidden": [16], "out_dim": 2},
    arch_d_kwargs={"in_dim": 2, "hidden": [16]},
)


@pytest.mark.rng_ok
def test_gan_at_lr_1e9_stops_at_the_first_non_finite_loss(tmp_path):
    Config, train = get_trainer("gan")
    with pytest.raises(TrainingDiverged) as ei:
        train(make_config(Config, TINY), tmp_path, progress=False, ckpt_every=1, log_every=1)
    e = ei.value
    assert isinstance(e, DivergenceError) and isinstance(e, LatentflowError)
    assert e.checkpoint_step == e.step - 1 and e.step < TINY["steps"]
    assert f"training diverged at step {e.step}: non-finite loss" in str(e) and "lr_g (now 1e+09)" in str(e)
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["step"] == e.checkpoint_step
    ck = load_file(str(tmp_path / "checkpoint.safetensors"))
    assert all(bool(v.isfinite().all()) for k, v in ck.items() if k.startswith("model/") and v.is_floating_point())
    assert not (tmp_path / "G.safetensors").exists() and not (tmp_path / "latentflow.json").exists()
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, e.step))  # the diverged step is not logged


@pytest.mark.rng_ok
def test_the_cli_exits_non_zero(tmp_path):
    from latentflow.cli import main

    args = ["train", "gan", "--steps", "50", "--batch-size", "32", "--out", str(tmp_path / "run"), "--quiet"]
    for k, v in TINY.items():
        if k not in ("steps", "batch_size"):
            args += ["--set", f"{k}={json.dumps(v)}"]
    with torch.random.fork_rng(devices=[]):
        r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and "training diverged at step" in r.output, r.output


@pytest.mark.rng_ok  # a trainer seeds the global RNG for weight init (torch.manual_seed)
def test_training_that_produces_nan_exits_nonzero_and_keeps_the_last_finite_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "gan",
        "--steps",
        "40",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "lr_g=1e9",
        "--set",
        "lr_d=1e9",
        "--set",
        "n_critic=1",
        "--set",
        'arch_g_kwargs={"latent_dim": 2, "hidden": [8], "out_dim": 2}',
        "--set",
        'arch_d_kwargs={"in_dim": 2, "hidden": [8]}',
    ]
    with torch.random.fork_rng(devices=[]):
        r = cli(args)
    line = one_line_error(r, "training diverged at step", "non-finite loss")
    assert not (out / "G.safetensors").exists()  # no final model with NaN weights
    ck = out / "checkpoint.safetensors"
    if ck.exists():  # a checkpoint, when one was written, holds only finite weights
        assert all(bool(v.isfinite().all()) for v in load_file(str(ck)).values() if v.is_floating_point())
    assert "lr_g" in line
