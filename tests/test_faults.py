"""Faults: ``refine_to_disk`` and ``latentflow sample`` killed at random points (real SIGKILLs of a subprocess,
and exceptions injected at hook points chosen by a seeded RNG). After every fault, every output set on disk
is complete and consistent or absent, and the resumed (or rerun) run equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import latentflow as lf
from latentflow.app import OUTPUT_FILES

ROOT = Path(__file__).resolve().parents[1]
N, CHUNK = 40, 4  # ten shards
RTD = dict(steps=15, step_size=0.01, seed=3, chunk=CHUNK, progress=False)


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


CHILD_RTD = textwrap.dedent("""
    import logging, sys, torch
    torch.set_num_threads(1)
    import latentflow as lf
    class Say(logging.Handler):          # one line per shard written, so the parent can kill between them
        def emit(self, rec):
            if "wrote" in rec.getMessage():
                print("shard", flush=True)
    log = logging.getLogger("latentflow"); log.setLevel(logging.INFO); log.addHandler(Say())
    pair = lf.load("grid25-wgangp")
    print("start", flush=True)
    lf.refine_to_disk(pair.G, pair.D, {n}, "ddls", sys.argv[1], **{opts!r})
    print("done", flush=True)
""")


def _shards(out: Path) -> dict[str, dict]:
    return {p.name: load_file(str(p)) for p in sorted(out.glob("shard-*-of-*.safetensors"))}


def _check_rtd_folder(out: Path, ref: dict[str, dict]) -> int:
    """What a killed run left: complete shards of this run (equal to the uninterrupted run's), hidden
    temporary files, and no index unless the run finished. Returns the number of shards."""
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    shards = _shards(out)
    assert set(visible) <= set(shards) | {"index.json"}, visible
    for name, tensors in shards.items():  # every shard on disk is whole and right
        assert tensors.keys() == ref[name].keys()
        assert all(torch.equal(tensors[k], ref[name][k]) for k in tensors), name
    if (out / "index.json").exists():  # an index only beside all the shards
        assert len(shards) == len(ref)
        json.loads((out / "index.json").read_text())
    return len(shards)


def test_refine_to_disk_killed_between_and_during_shards_resumes_bit_for_bit(tmp_path):
    pair = lf.load("grid25-wgangp")
    lf.refine_to_disk(pair.G, pair.D, N, "ddls", tmp_path / "ref", **RTD)
    ref, ref_all = _shards(tmp_path / "ref"), lf.load_shards(tmp_path / "ref")
    script = tmp_path / "child.py"
    script.write_text(CHILD_RTD.format(n=N, opts=RTD))
    rng = random.Random(20261201)
    n_blocks, kept_total = len(ref), 0
    for trial in range(2):
        out = tmp_path / f"run{trial}"
        after = rng.randrange(1, n_blocks)  # kill after this many shards ...
        delay = rng.uniform(0.0, 0.02)  # ... plus a little: often inside the next block or write
        p = subprocess.Popen(
            [sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path
        )
        seen = 0
        for line in p.stdout:
            seen += line.strip() == "shard"
            if seen >= after:
                break
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        assert p.returncode == -signal.SIGKILL
        have = _check_rtd_folder(out, ref)
        assert after <= have < n_blocks
        before = {n: (out / n).stat().st_mtime_ns for n in ref if (out / n).exists()}
        idx = lf.refine_to_disk(pair.G, pair.D, N, "ddls", out, **RTD)  # resume
        assert {n: (out / n).stat().st_mtime_ns for n in before} == before  # kept, not rewritten
        kept_total += len(before)
        assert _check_rtd_folder(out, ref) == n_blocks and len(idx["shards"]) == n_blocks
        got = lf.load_shards(out)
        assert got.keys() == ref_all.keys() and all(torch.equal(got[k], ref_all[k]) for k in got)
    assert kept_total >= 2


def test_refine_to_disk_failing_at_a_random_block_resumes_bit_for_bit(tmp_path, monkeypatch):
    from latentflow.stream import shards

    pair = lf.load("grid25-wgangp")
    lf.refine_to_disk(pair.G, pair.D, N, "ddls", tmp_path / "ref", **RTD)
    ref_all = lf.load_shards(tmp_path / "ref")
    real = shards.atomic_save_safetensors
    rng = random.Random(7)
    for trial in range(3):
        out, at, calls = tmp_path / f"run{trial}", rng.randrange(0, N // CHUNK), []

        def failing(tensors, path, **kw):
            calls.append(path)
            if len(calls) - 1 == at:
                raise KeyboardInterrupt("injected")
            return real(tensors, path, **kw)

        monkeypatch.setattr(shards, "atomic_save_safetensors", failing)
        with pytest.raises(KeyboardInterrupt):
            lf.refine_to_disk(pair.G, pair.D, N, "ddls", out, **RTD)
        monkeypatch.setattr(shards, "atomic_save_safetensors", real)
        assert len(_shards(out)) == at and not (out / "index.json").exists()
        lf.refine_to_disk(pair.G, pair.D, N, "ddls", out, **RTD)
        got = lf.load_shards(out)
        assert all(torch.equal(got[k], ref_all[k]) for k in ref_all)


# -- latentflow sample ------------------------------------------------------------------------------

SAMPLE = ["sample", "--model", "grid25-wgangp", "-n", "200", "--steps", "10", "--quiet"]
TIMING = ("wall_s", "generator_wall_s", "env")


def _cli(args):
    return CliRunner().invoke(__import__("latentflow.cli", fromlist=["main"]).main, args)


def _without_timing(obj):
    if isinstance(obj, dict):
        return {k: _without_timing(v) for k, v in obj.items() if k not in TIMING and not k.endswith("_s")}
    if isinstance(obj, list):
        return [_without_timing(v) for v in obj]
    return obj


def _read_set(out: Path):
    """``None`` when ``out`` is absent, else (seed, samples, report) of a complete, consistent set."""
    if not out.exists():
        return None
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    rep = json.loads((out / "report.json").read_text())
    x = load_file(str(out / "samples.safetensors"))
    assert x["x"].shape[0] == rep["num"] == x["x_before"].shape[0]
    assert set(rep["files"].values()) == set(OUTPUT_FILES)
    return rep["seed"], x, rep


def _same(a, b):
    assert a[0] == b[0] and a[1].keys() == b[1].keys()
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    assert _without_timing(a[2]) == _without_timing(b[2])


@pytest.fixture(scope="module")
def sample_refs(tmp_path_factory):
    base = tmp_path_factory.mktemp("refs")
    refs = {"dirs": {}}
    for seed in (1, 2):
        out = base / f"s{seed}"
        r = _cli(SAMPLE + ["--seed", str(seed), "--out", str(out)])
        assert r.exit_code == 0, r.output
        refs[seed], refs["dirs"][seed] = _read_set(out), out
    return refs


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sample_failing_at_a_random_hook_leaves_one_set_and_reruns_bit_for_bit(sample_refs, tmp_path, monkeypatch):
    import latentflow.app.outputs as outputs
    import latentflow.app.sample.sample as s

    hooks = ["write_samples", "scatter_png", "write_json", "rename-1", "rename-2", "rmtree"]
    rng = random.Random(12)
    for trial, hook in enumerate(rng.sample(hooks, len(hooks))):  # every hook point, in a seeded order
        out = tmp_path / f"o{trial}"
        shutil.copytree(sample_refs["dirs"][1], out)  # a previous complete set (seed 1)
        renames = []

        def fail(*a, **k):
            raise KeyboardInterrupt(f"injected at {hook}")

        if hook.startswith("rename"):
            real_rename = os.rename

            def rename(src, dst, _n=int(hook[-1])):
                renames.append(src)
                if len(renames) == _n:
                    raise KeyboardInterrupt(f"injected at {hook}")
                return real_rename(src, dst)

            monkeypatch.setattr(outputs.os, "rename", rename)
        elif hook == "rmtree":
            monkeypatch.setattr(outputs.shutil, "rmtree", fail)
        else:
            monkeypatch.setattr(s, hook, fail)
        r = _cli(SAMPLE + ["--seed", "2", "--out", str(out)])
        monkeypatch.undo()
        assert r.exit_code != 0 or hook == "rmtree"
        left = _read_set(out)
        if hook in ("rename-2", "rmtree") and left is not None and left[0] == 2:
            _same(left, sample_refs[2])  # the new set was in place before the fault
        elif left is not None:
            _same(left, sample_refs[1])  # the previous set, untouched
        else:
            assert hook == "rename-2"  # only between the two renames is out briefly absent
        r = _cli(SAMPLE + ["--seed", "2", "--out", str(out)])  # the rerun tidies and writes the new set
        assert r.exit_code == 0, r.output
        _same(_read_set(out), sample_refs[2])
        assert _leftovers(tmp_path) == [], _leftovers(tmp_path)


def test_sample_killed_at_a_random_moment_leaves_a_set_or_nothing(sample_refs, tmp_path):
    rng = random.Random(3)
    out = tmp_path / "o"
    cmd = [sys.executable, "-c", "import sys; from latentflow.cli import main; sys.exit(main())"]
    for _trial in range(1):
        p = subprocess.Popen(
            cmd + SAMPLE + ["--seed", "2", "--out", str(out)],
            env=_env(),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # wait until the run has taken its lock (it is then loading, sampling or writing), then kill it
        lock = tmp_path / ".o.lock"
        t0 = time.monotonic()
        while not lock.exists() and p.poll() is None and time.monotonic() - t0 < 60:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        left = _read_set(out)
        if left is not None:
            _same(left, sample_refs[left[0]])
        # the next run takes over the stale lock, tidies the staging folder and writes its set
        r = _cli(SAMPLE + ["--seed", "1", "--out", str(out)])
        assert r.exit_code == 0, r.output
        _same(_read_set(out), sample_refs[1])
        assert _leftovers(tmp_path) == []
