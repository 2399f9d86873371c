"""Data-parallel training (``latentflow.train.parallel``): two gloo processes with batch B take the steps
one process takes with batch 2B (gradients averaged by DistributedDataParallel, every draw made at the
global batch and sliced), and a two-process resume restores what a one-process resume restores."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_torchrun import DRIVER, torchrun

from latentflow.train import get_trainer, make_config

TINY = {
    "arch_g_kwargs": {"latent_dim": 4, "hidden": [32, 32], "out_dim": 2, "slope": 0.0},
    "latent_dim": 4,
    "arch_s_kwargs": {"in_dim": 2, "width": 32, "depth": 2},
    "k": 2,
    "steps": 6,
    "seed": 3,
}


def _one_process(out: Path, batch: int, **kw):
    Config, train = get_trainer("scoregan")
    return train(make_config(Config, {**TINY, "batch_size": batch}), str(out), progress=False, **kw)


def _weights(out: Path, name: str) -> dict:
    return load_file(str(out / f"{name}.safetensors"))


@pytest.mark.rng_ok
def test_two_processes_with_batch_b_match_one_process_with_2b_and_resume_alike(tmp_path):
    # two processes: one straight run, and one stopped after 3 steps (checkpointed) then resumed
    straight = {"kind": "train", "trainer": "scoregan", "cfg": {**TINY, "batch_size": 8}, "out": str(tmp_path / "two")}
    stopped = {**straight, "out": str(tmp_path / "two-resumed"), "stop_after": 3}
    torchrun(DRIVER, json.dumps([straight, stopped, {**stopped, "stop_after": None}]))
    _one_process(tmp_path / "one", 16)
    one_g, one_s = _weights(tmp_path / "one", "G"), _weights(tmp_path / "one", "S")
    for run in ("two", "two-resumed"):
        g, s = _weights(tmp_path / run, "G"), _weights(tmp_path / run, "S")
        assert set(g) == set(one_g) and set(s) == set(one_s)
        for k in one_g:
            torch.testing.assert_close(g[k], one_g[k], rtol=1e-4, atol=1e-5)
        for k in one_s:
            torch.testing.assert_close(s[k], one_s[k], rtol=1e-4, atol=1e-5)
    # the logged losses are the global batch's (averaged over the ranks), one writer: one line per step
    lines = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [x["step"] for x in ref]
    assert [x["loss_s"] for x in lines] == pytest.approx([x["loss_s"] for x in ref], rel=1e-4)
    # and the run really trains (the weights moved from their initialisation)
    init = _one_process(tmp_path / "init", 16, stop_after=0)[0].state_dict()
    assert any(not torch.allclose(init[k], one_g[k]) for k in one_g)


@pytest.mark.rng_ok
@pytest.mark.slow
def test_wgan_gp_two_processes_match_one_process_with_twice_the_batch(tmp_path):
    cfg = {
        "arch_g_kwargs": {"latent_dim": 2, "hidden": [16, 16], "out_dim": 2},
        "arch_d_kwargs": {"in_dim": 2, "hidden": [16, 16]},
        "n_critic": 2,
        "steps": 3,
        "seed": 1,
    }
    torchrun(
        DRIVER,
        json.dumps(
            [{"kind": "train", "trainer": "gan", "cfg": {**cfg, "batch_size": 8}, "out": str(tmp_path / "two")}]
        ),
    )
    Config, train = get_trainer("gan")
    train(make_config(Config, {**cfg, "batch_size": 16}), str(tmp_path / "one"), progress=False)
    for name in ("G", "D"):
        a, b = _weights(tmp_path / "two", name), _weights(tmp_path / "one", name)
        for k in b:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
