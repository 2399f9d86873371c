"""``sngan-cifar`` end to end from a Hugging Face cache, offline: the real cache layout
(``models--owner--name/{blobs, snapshots/<revision>, refs/main}``) holding a golden-recipe ``model.pt`` in the
xyfJASON layout (``torch.save(dict(G=sd, D=sd))``, full width: the architecture is the manifest's), then
``HF_HUB_OFFLINE=1 latentflow sample --model sngan-cifar --method ddls``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from golden_recipe import recipe_state_dict

from latentflow.models import get_entry
from latentflow.nets import build

ROOT = Path(__file__).resolve().parents[1]


def _golden_pair(entry):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G = build(entry.arch["G"].name, **entry.arch["G"].kwargs)
        D = build(entry.arch["D"].name, **entry.arch["D"].kwargs)
    return recipe_state_dict(G.state_dict()), recipe_state_dict(D.state_dict())


def hf_cache_with(root: Path, repo_id: str, revision: str, filename: str, data: bytes) -> Path:
    """Write ``data`` as ``filename`` of ``repo_id`` at ``revision`` into a Hugging Face hub cache at ``root``:
    the blob named by its hash, the snapshot path a relative symlink to it, ``refs/main`` the revision."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    snap = repo / "snapshots" / revision / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    try:
        snap.symlink_to(os.path.relpath(blob, snap.parent))
    except OSError:  # no symlinks (some Windows setups): huggingface_hub copies there too
        snap.write_bytes(data)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snap


@pytest.fixture(scope="module")
def cifar_cache(tmp_path_factory):
    entry = get_entry("sngan-cifar")
    g, d = _golden_pair(entry)
    tmp = tmp_path_factory.mktemp("hf")
    pt = tmp / "model.pt"
    torch.save({"G": g, "D": d}, pt)
    data = pt.read_bytes()
    pt.unlink()
    hf_cache_with(tmp / "hub", entry.source["repo_id"], entry.source["revision"], entry.files["G"].path, data)
    return tmp, hashlib.sha256(data).hexdigest(), (g, d)


def test_manifest_entries_for_cifar():
    e = get_entry("sngan-cifar")
    assert e.source == {
        "kind": "hub",
        "repo_id": "xyfJASON/GANs-Implementations",
        "revision": "30793b76b64049a3d6eb12f4c67e22d69710e8ca",
    }
    assert e.reader == "xyfjason" and e.combined and e.files["G"] is e.files["D"]
    assert e.files["G"].path == "sngan_cifar10/ckpt/best/model.pt" and e.d_output == "logit"
    assert e.latent_dim == 100 and e.output["shape"] == [3, 32, 32] and not e.verified
    assert e.to_dict()["files"] == {"GD": {"path": "sngan_cifar10/ckpt/best/model.pt", "sha256": None, "bytes": None}}
    s = get_entry("studiogan-sngan-cifar10")
    assert s.reader == "studiogan" and s.d_output == "critic" and s.arch["G"].name == "studiogan_resnet32_g"
    assert "CIFAR10_tailored" in s.files["G"].path and s.files["D"].path.endswith("model=D-best-weights-step=88000.pth")
    ten = get_entry("studiogan-sngan-cifar10-10pct")
    assert "10pct" in ten.name and "10 %" in ten.recipe


def test_offline_sample_end_to_end(cifar_cache, tmp_path):
    tmp, sha, (g, d) = cifar_cache
    env = dict(
        os.environ,
        HF_HUB_CACHE=str(tmp / "hub"),
        HF_HUB_OFFLINE="1",
        LATENTFLOW_CACHE=str(tmp_path / "lf"),
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
    )
    env.pop("HF_HOME", None)
    out = tmp_path / "out"
    cli = "import sys; from latentflow.cli import main; sys.argv[0] = 'latentflow'; main()"
    cmd = [
        sys.executable,
        "-c",
        cli,
        "sample",
        "--model",
        "sngan-cifar",
        "--method",
        "ddls",
        "-n",
        "16",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--json",
        "--out",
        str(out),
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["model"] == "sngan-cifar" and report["num"] == 16 and report["result"]["n_diverged"] == 0
    assert {p.name for p in out.iterdir()} == {"samples.safetensors", "samples.png", "report.json"}
    from safetensors.torch import load_file

    s = load_file(str(out / "samples.safetensors"))
    assert s["x"].shape == (16, 3, 32, 32) and s["z"].shape == (16, 100) and "y" not in s
    assert torch.isfinite(s["x"]).all() and s["x"].abs().max() <= 1
    assert not torch.equal(s["x"], s["x_before"])  # the two DDLS steps moved the samples
    # the hash was pinned on first use, under the file's Hub key, and the pickle was converted once
    pins = json.loads((tmp_path / "lf" / "pins.json").read_text())
    e = get_entry("sngan-cifar")
    assert pins == {f"hf:{e.source['repo_id']}@{e.source['revision']}/{e.files['G'].path}": sha}
    assert (tmp_path / "lf" / "converted" / f"{sha}.xyfjason.safetensors").is_file()
    # `latentflow models` tells the pinned file from the verified ones
    r = subprocess.run(
        [sys.executable, "-c", "import json, latentflow as lf; print(json.dumps(lf.models.model_rows()))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["sngan-cifar"]["checkpoints"] == "pinned" and rows["sngan-cifar"]["offline"]
    assert (
        rows["sngan-cifar"]["bytes"]
        == (tmp / "hub").joinpath("models--xyfJASON--GANs-Implementations", "blobs", sha).stat().st_size
    )
    assert rows["dcgan-fashion"]["checkpoints"] == "verified"
    assert rows["studiogan-sngan-cifar10"]["checkpoints"] == "not downloaded"


def test_loaded_pair_matches_the_checkpoint(cifar_cache, tmp_path, monkeypatch):
    """In-process load from the same cache file (hf_hub_download is pointed at it): G and D hold the file's weights."""
    tmp, sha, (g, d) = cifar_cache
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "lf"))
    e = get_entry("sngan-cifar")
    snap = (
        tmp / "hub" / "models--xyfJASON--GANs-Implementations" / "snapshots" / e.source["revision"] / e.files["G"].path
    )
    from latentflow.models import loading

    calls = []
    monkeypatch.setattr(loading, "fetch", lambda entry, role: calls.append(role) or snap)
    pair = loading.load("sngan-cifar")
    assert calls == ["G"]  # one file: fetched (and hashed) once
    assert pair.meta["files"]["G"]["sha256"] == pair.meta["files"]["D"]["sha256"] == sha
    for k, v in g.items():
        torch.testing.assert_close(pair.G.state_dict()[k], v)
    for k, v in d.items():
        torch.testing.assert_close(pair.D.state_dict()[k], v)
    assert pair.meta["num_classes"] == 0


# -- readers: StudioGAN files in both layouts, the xyfJASON pair file, and the schema rules ---------------------


def _studiogan_small():
    kg, kd = dict(z_dim=8, g_conv_dim=4, num_classes=10), dict(d_conv_dim=4, num_classes=10)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        G, D = build("studiogan_resnet32_g", **kg), build("studiogan_resnet32_d", **kd)
    with torch.no_grad():  # non-trivial cBN tables (a fresh gain table is ones/zeros: the upgrade would be vacuous)
        for k, v in G.state_dict().items():
            if ".bn" in k and v.dim() == 2:
                v.copy_(torch.randn(v.shape, generator=torch.Generator().manual_seed(len(k))))
    return G.eval(), D.eval(), kg, kd


def _local_entry(raw_files, reader, arch, name="reader-test"):
    from latentflow.models.validate import ALL_SOURCE_KINDS, validate_entry

    raw = {
        "source": {"kind": "local", "root": ""},
        "files": raw_files,
        "reader": reader,
        "arch": arch,
        "latent": {"dim": arch["G"].get("kwargs", {}).get("z_dim", 100)},
        "output": {"shape": [3, 32, 32], "range": [-1, 1]},
        "d_output": "critic",
        "verified": False,
    }
    return validate_entry(name, raw, allow_sources=ALL_SOURCE_KINDS)


@pytest.mark.parametrize("layout", ["current", "pre-2022"])
def test_studiogan_reader_loads_both_layouts(tmp_path, monkeypatch, layout):
    from latentflow.models import load
    from latentflow.nets.studiogan_resnet import studiogan_downgrade_state_dict

    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "lf"))
    G, D, kg, kd = _studiogan_small()
    gsd = G.state_dict() if layout == "current" else studiogan_downgrade_state_dict(G.state_dict())
    assert any(".embed0." in k for k in gsd) == (layout == "pre-2022")
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in gsd.items()}, "optimizer": {}, "seed": 0}, tmp_path / "G.pth"
    )
    torch.save({"state_dict": D.state_dict(), "optimizer": {}}, tmp_path / "D.pth")
    arch = {"G": {"name": "studiogan_resnet32_g", "kwargs": kg}, "D": {"name": "studiogan_resnet32_d", "kwargs": kd}}
    entry = _local_entry(
        {"G": {"path": str(tmp_path / "G.pth")}, "D": {"path": str(tmp_path / "D.pth")}}, "studiogan", arch
    )
    for _ in range(2):  # the second load reads the cached safetensors conversion
        pair = load(entry)
        z, y = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 4, 9])
        with torch.no_grad():
            torch.testing.assert_close(pair.G(z, y), G(z, y))
            torch.testing.assert_close(pair.D(G(z, y), y), D(G(z, y), y))
    assert pair.meta["num_classes"] == pair.num_classes == 10
    assert len(list((tmp_path / "lf" / "converted").glob("*.studiogan.safetensors"))) == 2


def test_files_and_reader_schema_rules():
    from latentflow.errors import ManifestError

    arch = {"G": {"name": "xyfjason_simple_cnn_g"}, "D": {"name": "xyfjason_simple_cnn_d"}}
    with pytest.raises(ManifestError, match=r"reader 'xyfjason' reads G and D from one file: give files: \{GD"):
        _local_entry({"G": {"path": "a.pt"}, "D": {"path": "a.pt"}}, "xyfjason", arch)
    with pytest.raises(ManifestError, match=r"files\.GD \(one file holding G and D\) needs a reader that reads both"):
        _local_entry({"GD": {"path": "a.pt"}}, "state_dict", arch)
    with pytest.raises(ManifestError, match=r"\.reader: expected one of state_dict, studiogan, xyfjason; got 'pickle'"):
        _local_entry({"GD": {"path": "a.pt"}}, "pickle", arch)
    e = _local_entry({"GD": {"path": "a.pt"}}, "xyfjason", arch)
    assert e.combined and e.files["G"] is e.files["D"]


def test_xyfjason_reader_refuses_a_file_without_both_networks(tmp_path, monkeypatch):
    from latentflow.errors import IntegrityError
    from latentflow.models import load

    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "lf"))
    torch.save({"G": {"w": torch.zeros(1)}}, tmp_path / "model.pt")
    arch = {"G": {"name": "xyfjason_simple_cnn_g"}, "D": {"name": "xyfjason_simple_cnn_d"}}
    with pytest.raises(IntegrityError, match=r"expected an xyfJASON dict\(G=state_dict, D=state_dict\)"):
        load(_local_entry({"GD": {"path": str(tmp_path / "model.pt")}}, "xyfjason", arch))
