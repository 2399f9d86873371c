"""``torchrun --nproc-per-node 2``: the samples, report and resume of a distributed run equal those of one
process (gloo on the CPU). Each launch starts two Python processes (a few seconds each); the CLI and
killed-rank tests are marked slow and run by ``.ci/run``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from latentflow import stream
from latentflow.app import sample_model

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("torchrun_driver.py")
EVAL_KEYS = ("n_G_forward", "n_G_backward", "n_D_forward", "n_D_backward")


def torchrun(*args, timeout=240, check=True):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *map(str, args)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


# ULA, DOT and DRS: the same x within round-off; MALA: per-chain streams make it the same too
JOBS = {
    "ddls": dict(steps=40),
    "dot": dict(steps=40),
    "drs": dict(pilot=2000),
    "ddls-mala": dict(steps=40, mala=True, step_size=0.01, noise_scale=None),
}


# refine_split (the image benchmark's rows under torchrun): 51 rows, 26 + 25
SPLIT = {
    "ddls": dict(steps=10, mala=True, d_output="critic"),
    "mh": dict(k=5, d_output="critic"),
    "drs": dict(pilot=500, d_output="critic"),
}


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("torchrun")
    jobs = [
        {"kind": "sample", "method": m.split("-")[0], "num": 200, "options": o, "out": str(root / m)}
        for m, o in JOBS.items()
    ]
    jobs += [
        {"kind": "split", "method": m, "n": 51, "options": o, "out": str(root / f"split-{m}.safetensors")}
        for m, o in SPLIT.items()
    ]
    torchrun(DRIVER, json.dumps(jobs))
    return root


@pytest.mark.parametrize("case", sorted(JOBS))
def test_two_processes_write_what_one_process_writes(two_process_runs, tmp_path, case):
    one = tmp_path / "one"
    rep1 = sample_model(
        "grid25-wgangp", case.split("-")[0], num=200, seed=0, device="cpu", out=one, options=JOBS[case], progress=False
    )
    a, b = load_file(str(two_process_runs / case / "samples.safetensors")), load_file(str(one / "samples.safetensors"))
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5)
    rep2 = json.loads((two_process_runs / case / "report.json").read_text())
    assert sorted(os.listdir(two_process_runs / case)) == sorted(os.listdir(one))
    assert rep2["result"]["world_size"] == 2 and rep2["num"] == 200 and rep2["result"]["n"] == 200
    for when in ("before", "after"):
        assert rep2["metrics"][when] == pytest.approx(rep1["metrics"][when], rel=1e-4, abs=1e-5), when
    # the counts are summed over both ranks: those of rank 0's block plus rank 1's (each call has its own
    # fixed overhead, e.g. a probe, so they are not those of one call over all 200 rows)
    import latentflow as lf
    from latentflow.app import sampling_options

    pair = lf.load("grid25-wgangp")
    opts = sampling_options(case.split("-")[0], pair.meta, dict(JOBS[case]))
    gen = torch.Generator().manual_seed(0)  # as sample_model draws: latents first, then the key
    z = lf.sample_latents(200, 2, generator=gen)
    state = gen.get_state()

    def at_state():
        g = torch.Generator()
        g.set_state(state)
        return g

    blocks = [
        lf.refine(
            pair.G,
            pair.D,
            z[lo : lo + 100],
            case.split("-")[0],
            generator=at_state(),
            chain_offset=lo,
            progress=False,
            **opts,
        )
        for lo in (0, 100)
    ]
    for k in EVAL_KEYS:
        assert rep2["result"][k] == sum(b.info[k] for b in blocks), k
    if case == "ddls-mala":
        assert 0.05 < rep2["result"]["accept_rate_mean"] < 0.999
        assert rep2["result"]["accept_rate_mean"] == pytest.approx(rep1["result"]["accept_rate_mean"], abs=1 / 200 / 40)
    # no shard folder is left behind
    assert not list(two_process_runs.glob(".*.shards"))


@pytest.mark.parametrize("method", sorted(SPLIT))
def test_refine_split_over_two_ranks_gathers_what_one_call_returns(two_process_runs, method):
    from safetensors import safe_open

    import latentflow as lf

    pair = lf.load("grid25-wgangp")
    ref = lf.refine(
        pair.G, pair.D, lf.sample_latents(51, 2, generator=0), method, seed=0, progress=False, **SPLIT[method]
    )
    path = two_process_runs / f"split-{method}.safetensors"
    got = load_file(str(path))
    torch.testing.assert_close(got["x"], ref.x, rtol=1e-5, atol=1e-5)
    for k, v in ref.info.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == 51:
            torch.testing.assert_close(got["info." + k], v, rtol=1e-5, atol=1e-5)
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    # summed over the ranks: a few more than one call (each rank's call has its own fixed overhead)
    assert int(meta["n_D_backward"]) >= ref.info["n_D_backward"]


@pytest.mark.slow
def test_the_cli_under_torchrun_writes_what_one_process_writes(tmp_path):
    torchrun(
        "-m", "latentflow", "sample", "-n", "64", "--steps", "20", "--seed", "5", "--quiet", "--out", tmp_path / "A"
    )
    sample_model(
        "grid25-wgangp", "ddls", num=64, seed=5, device="cpu", out=tmp_path / "B", options={"steps": 20}, progress=False
    )
    a, b = (load_file(str(tmp_path / d / "samples.safetensors")) for d in "AB")
    torch.testing.assert_close(a["x"], b["x"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_killed_rank_resumes_cleanly(tmp_path):
    out = tmp_path / "run"
    job = {"kind": "disk", "out": str(out), "n": 64, "chunk": 8, "options": {"steps": 10}}
    # rank 1 (blocks 4..7) dies before its third block: blocks 0..5 may be there, no index
    p = torchrun(DRIVER, json.dumps([{**job, "die_on_rank": 1, "die_after": 2}]), check=False)
    assert p.returncode != 0
    assert not (out / stream.INDEX).exists()
    kept = {q.name: q.stat().st_mtime_ns for q in out.glob("shard-*.safetensors")}
    assert {"shard-00004-of-00008.safetensors", "shard-00005-of-00008.safetensors"} <= set(kept)
    assert "shard-00006-of-00008.safetensors" not in kept
    torchrun(DRIVER, json.dumps([job]))
    for name, t in kept.items():  # the finished shards were kept, not recomputed
        assert (out / name).stat().st_mtime_ns == t, name
    got = stream.load_result(out)
    import latentflow as lf

    pair = lf.load("grid25-wgangp")
    ref = stream.refine_to_disk(pair.G, pair.D, 64, "ddls", tmp_path / "one", chunk=8, seed=0, progress=False, steps=10)
    one = stream.load_result(tmp_path / "one")
    torch.testing.assert_close(got.x, one.x, rtol=1e-5, atol=1e-5)
    assert json.loads((out / stream.INDEX).read_text())["run_key"] == ref["run_key"]
