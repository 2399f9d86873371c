"""``latentflow tune`` end to end: a class-conditional StudioGAN-layout model (tiny nets, StudioGAN ``.pth``
checkpoints read by the ``studiogan`` reader) from an offline Hugging Face cache, RGB real images as a uint8
NHWC ``.npz`` with their labels, and the bad-input exits (``--out`` unwritable, labels out of range, a D that
is NaN everywhere) as one line each, before any search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cifar_hub import hf_cache_with

from latentflow.nets import build

ROOT = Path(__file__).resolve().parents[1]
REPO, REV = "tester/tiny-studiogan", "89abcdef0123456789abcdef0123456789abcdef"
KG, KD = dict(z_dim=8, g_conv_dim=4, num_classes=10), dict(d_conv_dim=4, num_classes=10)
CLI = "import sys; from latentflow.cli import main; sys.argv[0] = 'latentflow'; main()"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        G, D = build("studiogan_resnet32_g", **KG).eval(), build("studiogan_resnet32_d", **KD).eval()
    spec = {
        "schema": 1,
        "name": "tiny-studiogan",
        "reader": "studiogan",
        "arch": {
            "G": {"name": "studiogan_resnet32_g", "kwargs": KG},
            "D": {"name": "studiogan_resnet32_d", "kwargs": KD},
        },
        "latent": {"dim": 8},
        "output": {"shape": [3, 32, 32], "range": [-1, 1]},
        "d_output": "critic",
        "files": {"G": {"path": "G.pth"}, "D": {"path": "D.pth"}},
    }
    for name, net in (("G.pth", G), ("D.pth", D)):
        p = tmp / name
        torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "optimizer": {}}, p)
        hf_cache_with(tmp / "hub", REPO, REV, name, p.read_bytes())
    hf_cache_with(tmp / "hub", REPO, REV, "latentflow.json", json.dumps(spec).encode())
    y = torch.randint(0, 10, (60,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = G(torch.randn(60, 8, generator=torch.Generator().manual_seed(3)), y)
    np.savez(tmp / "real.npz", x=((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    np.save(tmp / "y.npy", y.numpy())
    np.save(tmp / "y_bad.npy", (y + 10).numpy())
    return tmp


def _cli(hub, tmp_path, *args):
    env = dict(os.environ, HF_HUB_CACHE=str(hub / "hub"), HF_HUB_OFFLINE="1", LATENTFLOW_CACHE=str(tmp_path / "lf"))
    env.update(PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("HF_HOME", None)
    cmd = [sys.executable, "-c", CLI, "tune", "--model", f"hf:{REPO}@{REV}", "--real", str(hub / "real.npz"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_cli_tunes_a_conditional_studiogan_layout_model_from_an_offline_hub_cache(hub, tmp_path):
    out = tmp_path / "out"
    r = _cli(hub, tmp_path, "--labels", str(hub / "y.npy"), "--features", "raw", "--budget", "6", "--quiet",
             "--json", "--out", str(out), "--metric", "fid_recall", "--time-budget", "8")  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["num_classes"] == 10 and doc["labels"].endswith("y.npy") and doc["metric"] == "fid_recall"
    assert doc["calibration"] is not None  # D(x, y) calibrated on the real labels
    ran = {row["label"] for row in doc["table"] if row["status"] != "over_budget"}
    assert doc["time_budget"] == 8 and len(ran) < doc["summary"]["n_candidates"]  # thinned to the time budget
    assert any(row["status"] == "ok" and row["method"] != "none" for row in doc["table"])
    assert {p.name for p in out.iterdir()} >= {"tune.json", "tune.md"}


def test_cli_refuses_bad_input_in_one_line_before_the_search(hub, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        cases = [
            (["--out", str(ro / "x")], "is not writable"),
            (["--out", str(hub / "real.npz" / "x")], "cannot be created"),  # under a file: also as root
            (["--labels", str(hub / "y_bad.npy")], r"real_labels must hold class labels in [0, 9]"),
        ]
        for args, msg in cases:
            if msg == "is not writable" and os.access(ro, os.W_OK):
                continue  # root writes anywhere
            r = _cli(hub, tmp_path, "--features", "raw", "--quiet", "--budget", "4", *args)
            assert r.returncode != 0 and msg in r.stderr, r.stderr[-2000:]
            errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
            assert "Traceback" not in r.stderr and len(errors) == 1 and msg in errors[0], r.stderr
    finally:
        ro.chmod(0o700)


def test_labels_files_are_read_or_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    from latentflow.app.tune.tune_cmd import read_labels
    from latentflow.errors import OptionError

    y = torch.arange(12) % 4
    np.save(tmp_path / "y.npy", y.numpy())
    np.savez(tmp_path / "y.npz", labels=y.numpy())
    torch.save({"y": y}, tmp_path / "y.pt")
    save_file({"y": y}, str(tmp_path / "y.safetensors"))
    for name in ("y.npy", "y.npz", "y.pt", "y.safetensors"):
        assert torch.equal(read_labels(tmp_path / name, 12), y)
    np.save(tmp_path / "f.npy", y.float().numpy())
    for name, n, msg in (("y.npy", 10, r"one label per real sample, shape \(10,\)"), ("f.npy", 12, "integer class"),
                         ("none.npy", 12, "no such file"), ("y.txt", 12, "no such file")):  # fmt: skip
        with pytest.raises(OptionError, match=msg):
            read_labels(tmp_path / name, n)


def test_unreadable_label_files_name_the_file_for_tune_and_bench(tmp_path):
    from latentflow.app.bench.images_any import read_labels as bench_labels
    from latentflow.app.tune.tune_cmd import read_labels as tune_labels
    from latentflow.errors import OptionError

    bad = tmp_path / "y.npy"
    bad.write_bytes(b"not an npy file")
    with pytest.raises(OptionError, match=r"labels: '.*y\.npy' is not a readable \.npy file: ValueError"):
        tune_labels(bad, 12)
    with pytest.raises(OptionError, match=r"labels: '.*y\.npy' is not a readable label file: ValueError"):
        bench_labels(bad, 12, 4)
    with pytest.raises(OptionError, match=r"labels: no such file: '.*none\.npy'"):
        bench_labels(tmp_path / "none.npy", 12, 4)
