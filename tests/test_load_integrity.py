"""The loading pipeline: export -> a real Hugging Face cache -> ``hf_hub_download`` offline in a subprocess,
SHA-256 refusal of tampered files, pins, the offline error message, pickles that would run code, and state
dicts that do not fit."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import latentflow
from latentflow import nets
from latentflow.errors import IntegrityError, LatentflowError, ManifestError
from latentflow.models import ModelPair, convert, export, load, make_pair, models_table, pins, sources
from latentflow.models.resolve import resolve

OWNER_REPO = "tester/tiny-pair"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "lf-cache"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def tiny_pair() -> ModelPair:
    G = nets.build("mlp_g", latent_dim=3, hidden=[8], out_dim=2)
    D = nets.build("mlp_d", in_dim=2, hidden=[8])
    return make_pair(
        G,
        D,
        arch_g={"name": "mlp_g", "kwargs": {"latent_dim": 3, "hidden": [8], "out_dim": 2}},
        arch_d={"name": "mlp_d", "kwargs": {"in_dim": 2, "hidden": [8]}},
        name="tiny",
        d_output="critic",
        output_range=None,
        sampling={"ddls": {"steps": 5}},
        dataset="grid25",
    )


def make_hf_cache(cache: Path, repo_id: str, commit: str, files: dict[str, bytes]) -> Path:
    """Lay files out exactly as huggingface_hub's cache does: blobs named by etag, snapshot symlinks, refs/main."""
    owner, name = repo_id.split("/")
    root = cache / f"models--{owner}--{name}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        etag = hashlib.sha256(data).hexdigest()  # LFS etag = sha256 of the content
        (root / "blobs" / etag).write_bytes(data)
        link = snap / fname
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(fname).parts) + 1  # snapshots/<commit>/<...>/file -> ../../blobs
        link.symlink_to(Path(*[".."] * (depth + 0)) / "blobs" / etag)
    (root / "refs" / "main").write_text(commit)
    return root


def run_offline(tmp_path: Path, script: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),
        HF_HOME=str(tmp_path / "hf-home"),
        LATENTFLOW_CACHE=str(tmp_path / "lf-cache"),
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_hub_cache_offline_load_tamper_missing_and_pin(tmp_path):
    out = export(tiny_pair(), tmp_path / "export")
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(files) == {"G.safetensors", "D.safetensors", "latentflow.json"}
    cache = tmp_path / "hf-cache"
    root = make_hf_cache(cache, OWNER_REPO, COMMIT, files)
    # a second repo whose D file is missing from the cache
    make_hf_cache(cache, "tester/half-pair", COMMIT, {k: v for k, v in files.items() if k != "D.safetensors"})
    # a third repo whose G was tampered with after export (latentflow.json still has the true hash)
    bad_g = bytearray(files["G.safetensors"])
    bad_g[-1] ^= 0xFF
    make_hf_cache(cache, "tester/tampered", COMMIT, {**files, "G.safetensors": bytes(bad_g)})
    # a fourth repo with an unhashed (pin-on-first-use) manifest-style entry
    make_hf_cache(cache, "tester/unpinned", COMMIT, files)

    res = run_offline(
        tmp_path,
        f"""
        import json, torch, latentflow
        from latentflow.errors import IntegrityError, LatentflowError
        from latentflow.models import load, get_entry
        from latentflow.models.manifest import validate_entry
        from latentflow.models.pins import pins_path, read_pins
        import huggingface_hub.constants as C
        r = {{"offline": C.HF_HUB_OFFLINE}}
        pair = latentflow.load("hf:{OWNER_REPO}@{COMMIT}")
        G, D, meta = pair
        r["x_shape"] = list(G(torch.zeros(4, 3)).shape)
        r["d_shape"] = list(D(G(torch.zeros(4, 3))).shape)
        r["meta"] = {{k: meta[k] for k in ("name", "latent_dim", "d_output", "sampling", "output_range")}}
        r["grad"] = any(p.requires_grad for p in G.parameters()) or G.training
        r["main"] = load("hf:{OWNER_REPO}").meta["source"]["revision"]
        try:
            load("hf:tester/tampered@{COMMIT}")
            r["tampered"] = "loaded"
        except IntegrityError as e:
            r["tampered"] = [type(e).__name__, e.expected, e.got, e.path, str(e)]
        try:
            load("hf:tester/half-pair@{COMMIT}")
            r["missing"] = "loaded"
        except LatentflowError as e:
            r["missing"] = [type(e).__name__, str(e)]
        raw = json.load(open(pair.meta["files"]["G"]["path"] if False else "{out / "latentflow.json"}"))
        spec = {{k: v for k, v in raw.items() if k not in ("schema", "name", "files")}}
        entry = validate_entry("unpinned", {{**spec, "source": {{"kind": "hub", "repo_id": "tester/unpinned",
                               "revision": "{COMMIT}"}}, "files": {{"G": {{"path": "G.safetensors", "sha256": None}},
                               "D": {{"path": "D.safetensors", "sha256": None}}}}, "verified": False}})
        load(entry)
        r["pins"] = read_pins()
        r["pins_file"] = str(pins_path())
        print(json.dumps(r))
    """,
    )
    assert res["offline"] is True
    assert res["x_shape"] == [4, 2] and res["d_shape"] == [4]
    assert res["meta"] == {
        "name": "tiny",
        "latent_dim": 3,
        "d_output": "critic",
        "sampling": {"ddls": {"steps": 5}},
        "output_range": None,
    }
    assert res["grad"] is False
    assert res["main"] == COMMIT  # refs/main resolved to the pinned commit

    kind, expected, got, path, msg = res["tampered"]
    assert kind == "IntegrityError"
    assert expected == hashlib.sha256(files["G.safetensors"]).hexdigest()
    assert got == hashlib.sha256(bytes(bad_g)).hexdigest()
    assert path.endswith("G.safetensors") and "SHA-256 mismatch" in msg

    kind, msg = res["missing"]
    assert kind == "LatentflowError"
    assert "tester/half-pair" in msg and '"D.safetensors"' in msg and COMMIT in msg
    assert f'hf download tester/half-pair "D.safetensors" --revision {COMMIT}' in msg

    key = f"hf:tester/unpinned@{COMMIT}/G.safetensors"
    assert res["pins"][key] == hashlib.sha256(files["G.safetensors"]).hexdigest()
    assert res["pins_file"] == str(tmp_path / "lf-cache" / "pins.json")
    assert (root / "snapshots" / COMMIT / "G.safetensors").is_symlink()


def test_pinned_hash_refuses_a_changed_file(tmp_path):
    pair = tiny_pair()
    d = export(pair, tmp_path / "m")
    entry = resolve(d)
    key = "hf:x/y@" + "0" * 40 + "/G.safetensors"
    pins.verify(d / "G.safetensors", None, key=key)  # first use: pinned
    assert pins.read_pins()[key] == entry.files["G"].sha256
    pins.verify(d / "G.safetensors", None, key=key)  # same file: fine
    with pytest.raises(IntegrityError, match="pinned on first download") as ei:
        pins.verify(d / "D.safetensors", None, key=key)
    assert ei.value.expected == entry.files["G"].sha256 and ei.value.got == entry.files["D"].sha256


def test_local_folder_and_file_pair_round_trip(tmp_path):
    pair = tiny_pair()
    d = export(pair, tmp_path / "m")
    spec = json.loads((d / "latentflow.json").read_text())
    assert spec["files"]["G"]["sha256"] == hashlib.sha256((d / "G.safetensors").read_bytes()).hexdigest()
    assert spec["d_output"] == "critic" and spec["arch"]["G"]["name"] == "mlp_g"
    assert spec["dataset"] == "grid25" and load(d).meta["dataset"] == "grid25"
    from safetensors import safe_open

    with safe_open(str(d / "D.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["latentflow"])["latent"] == {"dim": 3, "prior": "normal"}
    z = torch.randn(5, 3)
    for ref in (d, str(d), (d / "G.safetensors", d / "D.safetensors")):
        G, D, meta = load(ref)
        torch.testing.assert_close(G(z), pair.G(z))
        torch.testing.assert_close(D(G(z)), pair.D(pair.G(z)))
    # a tampered byte in a local folder is refused against latentflow.json
    data = bytearray((d / "D.safetensors").read_bytes())
    data[-1] ^= 1
    (d / "D.safetensors").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        load(d)


def test_load_dtype_device_and_top_level_api(tmp_path):
    d = export(tiny_pair(), tmp_path / "m")
    pair = latentflow.load(str(d), dtype=torch.float64)
    assert all(p.dtype == torch.float64 and not p.requires_grad for p in pair.G.parameters())
    assert not pair.D.training
    with pytest.raises(ManifestError, match="not class-conditional"):
        pair.set_class(3)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_pickle_that_runs_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    sd = tiny_pair()
    torch.save({"G": sd.G.state_dict(), "D": sd.D.state_dict(), "x": _Evil(str(marker))}, evil)
    # the exploit is real: plain pickle would run it
    probe = tmp_path / "probe"
    raw = pickle.dumps(_Evil(str(probe)))
    pickle.loads(raw).close()
    assert probe.exists()
    with pytest.raises(IntegrityError, match=r"refused to unpickle .*evil\.pt"):
        convert(
            evil,
            tmp_path / "out",
            arch_g="mlp_g",
            arch_d="mlp_d",
            kwargs_g={"latent_dim": 3, "hidden": [8], "out_dim": 2},
            kwargs_d={"in_dim": 2, "hidden": [8]},
        )
    assert not marker.exists()
    assert not (tmp_path / "out" / "latentflow.json").exists()
    # safetensors-only load path refuses pickles outright
    with pytest.raises(ManifestError, match="pickled checkpoint"):
        load((evil, evil))
    assert not marker.exists()


def test_mis_shaped_missing_and_unexpected_keys_are_listed(tmp_path):
    p = tiny_pair()
    g = dict(p.G.state_dict())
    g["net.0.weight"] = torch.zeros(9, 3)  # mis-shaped (8, 3)
    g.pop("net.2.bias")  # missing
    g["extra.weight"] = torch.zeros(1)  # unexpected
    ck = tmp_path / "bad.pth"
    torch.save({"netG": g, "netD": p.D.state_dict()}, ck)
    with pytest.raises(IntegrityError) as ei:
        convert(
            ck,
            tmp_path / "out",
            arch_g="mlp_g",
            arch_d="mlp_d",
            kwargs_g={"latent_dim": 3, "hidden": [8], "out_dim": 2},
            kwargs_d={"in_dim": 2, "hidden": [8]},
        )
    msg = str(ei.value)
    assert "mis-shaped keys (1): net.0.weight (checkpoint (9, 3), model (8, 3))" in msg
    assert "missing keys (1): net.2.bias" in msg and "unexpected keys (1): extra.weight" in msg


def test_convert_adapters_and_numpy_scalars(tmp_path):
    import numpy as np

    p = tiny_pair()
    kw = dict(
        arch_g="mlp_g",
        arch_d="mlp_d",
        kwargs_g={"latent_dim": 3, "hidden": [8], "out_dim": 2},
        kwargs_d={"in_dim": 2, "hidden": [8]},
        d_output="critic",
        output_range=None,
    )
    z = torch.randn(4, 3)
    mod = lambda sd: {f"module.{k}": v for k, v in sd.items()}  # noqa: E731
    layouts = {
        "gd.pt": {"G": p.G.state_dict(), "D": p.D.state_dict()},
        "nested.pth": {"state_dict": {"netG": mod(p.G.state_dict()), "netD": mod(p.D.state_dict())}, "epoch": 3},
        "named.ckpt": {"generator": {"state_dict": p.G.state_dict()}, "discriminator": p.D.state_dict()},
    }
    for fname, obj in layouts.items():
        torch.save(obj, tmp_path / fname)
        out = convert(tmp_path / fname, tmp_path / f"out-{fname}", **kw)
        G, D, meta = load(out)
        torch.testing.assert_close(G(z), p.G(z))
        assert fname in meta["recipe"]
    # StudioGAN: separate G and D files, {"state_dict", "optimizer", misc}, a NumPy best-FID scalar
    for role, m in (("G", p.G), ("D", p.D)):
        torch.save(
            {
                "state_dict": m.state_dict(),
                "optimizer": {"state": {}, "param_groups": []},
                "seed": 0,
                "run_name": "CIFAR10-SNGAN-train",
                "step": 100,
                "best_fid": np.float64(12.5),
            },
            tmp_path / f"model={role}-best-weights-step=100.pth",
        )
    out = convert(
        tmp_path / "model=G-best-weights-step=100.pth",
        tmp_path / "out-sg",
        d_path=tmp_path / "model=D-best-weights-step=100.pth",
        **kw,
    )
    torch.testing.assert_close(load(out).D(p.G(z)), p.D(p.G(z)))
    with pytest.raises(ManifestError, match="cannot find a G/D pair"):
        torch.save({"weights": p.G.state_dict()}, tmp_path / "odd.pt")
        convert(tmp_path / "odd.pt", tmp_path / "x", **kw)


def test_url_source_streams_to_temp_then_replaces(tmp_path, monkeypatch):
    import urllib.request

    payload = b"x" * (3 << 20)

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=0: Resp(payload))
    dest = tmp_path / "c" / "f.bin"
    assert sources._download_url("https://example.org/f.bin", dest) == dest
    assert dest.read_bytes() == payload and not list(dest.parent.glob("*.part"))

    class Broken(Resp):
        def read(self, n=-1):
            raise ConnectionResetError("reset")

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=0: Broken(b""))
    dest2 = tmp_path / "c" / "g.bin"
    with pytest.raises(LatentflowError, match="downloading https://example.org/g.bin failed"):
        sources._download_url("https://example.org/g.bin", dest2)
    assert not dest2.exists() and not list(dest2.parent.glob("*.part"))


def test_resolve_errors_and_models_table(tmp_path):
    with pytest.raises(ManifestError, match=r'Unknown model "nope"\. Available: .*hf:owner/repo'):
        load("nope")
    with pytest.raises(ManifestError, match="hf:owner/repo"):
        load("hf:not-a-repo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="has no latentflow.json"):
        load(tmp_path / "empty")
    rows = models_table()
    row = next(r for r in rows if r["name"] == "studiogan-sngan-cifar10")
    assert set(row) == {"name", "source", "offline", "bytes", "verified", "pinned"}
    assert row["source"].startswith("hf:Mingguksky/PyTorch-StudioGAN@") and row["verified"] is False
    assert isinstance(row["offline"], bool)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_onto_cuda_in_half_precision(tmp_path):
    d = export(tiny_pair(), tmp_path / "m")
    G, D, _ = load(d, device="cuda", dtype=torch.float16)
    z = torch.randn(4, 3, device="cuda", dtype=torch.float16)
    out = D(G(z))
    assert out.device.type == "cuda" and out.dtype == torch.float16 and out.shape == (4,)
    sg = nets.build("sngan_resnet32_g", num_classes=10).cuda().eval()
    sd = nets.build("sngan_resnet32_d", num_classes=10).cuda().eval()
    with torch.no_grad():
        x = sg(torch.randn(8, 128, device="cuda"))
        assert x.shape == (8, 3, 32, 32) and sd(x).shape == (8,)
