"""Output folders written as one set (latentflow.app.outputs), through ``sample_model`` on the bundled
25-Gaussians model and directly: staging + rename, the lock, stale locks, strict JSON, the umask."""

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file
from tiny_pair import cli, one_line_error

from latentflow.app import OUTPUT_FILES, OutputSet, sample_model
from latentflow.app.report import write_json
from latentflow.errors import OptionError

ARGS = dict(model="grid25-wgangp", method="ddls", num=20, options={"steps": 2}, progress=False, device="cpu")


def test_sample_writes_the_set_by_renaming_a_staging_folder(tmp_path, monkeypatch):
    out = tmp_path / "o"
    seen = []
    real = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (seen.append((str(a), str(b))), real(a, b))[1])
    sample_model(out=out, seed=1, **ARGS)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    staging = [a for a, b in seen if b == str(out)]
    assert len(staging) == 1 and ".o.staging-" in staging[0]
    # a second run replaces the whole set (the old one moved aside, then removed); nothing is left beside it
    seen.clear()
    rep = sample_model(out=out, seed=2, **ARGS)
    assert [b for a, b in seen][-1] == str(out) and any(".o.old-" in b for a, b in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert json.loads((out / "report.json").read_text())["seed"] == 2 == rep["seed"]
    assert load_file(str(out / "samples.safetensors"))["x"].shape == (20, 2)


def test_a_failed_run_leaves_the_previous_set_and_no_staging(tmp_path, monkeypatch):
    out = tmp_path / "o"
    sample_model(out=out, seed=1, **ARGS)
    before = (out / "report.json").read_bytes()
    import latentflow.app.sample.sample as S

    def boom(*a, **k):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(S, "grid_png", boom)
    monkeypatch.setattr(S, "scatter_png", boom)
    with pytest.raises(RuntimeError, match="killed"):
        sample_model(out=out, seed=3, **ARGS)
    assert (out / "report.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no staging folder, no lock


def test_a_folder_with_other_files_is_refused_before_compute(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(OptionError, match="not a previous latentflow sample output.*mine.txt"):
        sample_model(out=tmp_path, model="no-such-model")
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_a_second_concurrent_run_is_refused_and_a_stale_lock_taken_over(tmp_path):
    out = tmp_path / "o"
    with OutputSet(out, OUTPUT_FILES) as first:
        assert json.loads(first.lock.read_text())["pid"] == os.getpid()
        with pytest.raises(OptionError, match=rf"another latentflow sample \(pid {os.getpid()} .*is writing"):
            sample_model(out=out, **ARGS)
    assert not first.lock.exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(dead.stdout)
    lock = tmp_path / ".o.lock"
    lock.write_text(json.dumps({"pid": pid}))  # its writer no longer runs
    sample_model(out=out, **ARGS)
    assert (out / "report.json").exists() and not lock.exists()


def test_sample_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        sample_model(out=tmp_path / "o", **ARGS)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "o").iterdir()}
    assert modes == {n: 0o644 for n in OUTPUT_FILES}
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o755


def test_reports_are_strict_json_with_reasons_for_nulls(tmp_path):
    write_json(tmp_path / "r.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": "x"})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["a"] is None and doc["b"] == [1.0, None] and doc["c"] == "x"
    assert doc["null_reasons"] == {"a": "non-finite (nan)", "b[1]": "non-finite (inf)"}


def test_sample_outputs_are_one_set_and_a_concurrent_run_is_refused(tiny_model, tmp_path, monkeypatch):
    import latentflow.app.sample.sample as s

    out = tmp_path / "o"
    assert (
        cli(["sample", "--model", tiny_model, "-n", "10", "--out", str(out), "--quiet", "--seed", "1"]).exit_code == 0
    )
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    real = s.write_json

    def killed(*a, **k):  # the samples and the picture are written, then the run dies before the report
        raise KeyboardInterrupt

    monkeypatch.setattr(s, "write_json", killed)
    r = cli(["sample", "--model", tiny_model, "-n", "10", "--out", str(out), "--quiet", "--seed", "2"])
    assert r.exit_code != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # never new samples beside an old report
    monkeypatch.setattr(s, "write_json", real)
    # a second run while the first holds the lock is refused, before any compute
    lock = tmp_path / ".o.lock"
    lock.write_text(json.dumps({"pid": __import__("os").getpid(), "host": __import__("socket").gethostname()}))
    one_line_error(cli(["sample", "--model", tiny_model, "-n", "10", "--out", str(out), "--quiet"]), "is writing")
    lock.unlink()
