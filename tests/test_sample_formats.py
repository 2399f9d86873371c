"""``sample --format png|npz|safetensors`` (latentflow.app.sample.sample_files): the layouts FID tools read, uint8
rounding, safetensors metadata, one output set; ``--real`` checked before any compute and written to the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from latentflow.app import sample_model
from latentflow.app.sample import sample_files as SF
from latentflow.errors import OptionError
from latentflow.metrics import to_uint8

pytestmark = pytest.mark.usefixtures("isolated_cache")

IMG = dict(model="dcgan-fashion", method="none", num=6, progress=False, device="cpu")


def test_parse_formats():
    assert SF.parse_formats(None) == ("safetensors",)
    assert SF.parse_formats(["npz,png", "safetensors", "png"]) == ("safetensors", "png", "npz")
    assert SF.format_files("png") == ("samples",)
    with pytest.raises(OptionError, match="format: expected one or more of safetensors, png, npz.*got gif"):
        SF.parse_formats("png,gif")


def test_uint8_conversion_rounds_to_the_nearest_level_and_clamps():
    g = torch.Generator().manual_seed(0)
    u = torch.randint(0, 256, (5, 3, 4, 4), generator=g)
    jitter = (torch.rand(u.shape, generator=g) - 0.5) * 0.98  # stays within half a level
    for lo, hi in ((-1.0, 1.0), (0.0, 1.0)):
        x = lo + (u + jitter) * (hi - lo) / 255
        got = SF.to_nhwc_uint8(x, (lo, hi))
        assert got.dtype == np.uint8 and got.shape == (5, 4, 4, 3)
        assert np.array_equal(got, u.permute(0, 2, 3, 1).numpy().astype(np.uint8))
    edge = torch.tensor([-3.0, -1.0, 1.0, 7.0, float("nan")]).view(1, 1, 1, 5)
    assert SF.to_nhwc_uint8(edge).reshape(-1).tolist() == [0, 0, 255, 255, 0]


@pytest.mark.parametrize("channels", [1, 3])
def test_png_and_npz_read_back_equal_to_the_tensor(tmp_path, channels):
    from PIL import Image

    x = torch.rand(7, channels, 5, 6, generator=torch.Generator().manual_seed(channels)) * 2 - 1
    want = to_uint8(x)  # [N, C, H, W]
    nhwc = SF.to_nhwc_uint8(x)
    names = SF.write_png_folder(tmp_path / "samples", nhwc)
    assert names == [f"{i:06d}.png" for i in range(7)]
    for i, name in enumerate(names):
        img = Image.open(tmp_path / "samples" / name)
        assert img.mode == ("L" if channels == 1 else "RGB")
        a = np.asarray(img)
        a = a[..., None] if a.ndim == 2 else a
        assert np.array_equal(a, want[i].permute(1, 2, 0).numpy())
    SF.write_npz(tmp_path / "s.npz", nhwc)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert list(z.keys()) == ["arr_0"]
        arr = z["arr_0"]
    assert arr.dtype == np.uint8 and torch.equal(torch.from_numpy(arr).permute(0, 3, 1, 2), want)


def test_sample_writes_every_format_as_one_set(tmp_path):
    out = tmp_path / "o"
    rep = sample_model(out=out, seed=3, formats="png,npz,safetensors", **IMG)
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "samples",
        "samples.npz",
        "samples.png",
        "samples.safetensors",
    ]
    assert rep["files"] == {
        "samples": "samples.safetensors",
        "png_folder": "samples",
        "npz": "samples.npz",
        "report": "report.json",
        "png": "samples.png",
    }
    with safe_open(str(out / "samples.safetensors"), "pt") as f:
        meta = f.metadata()
        x = f.get_tensor("x")
    assert meta["model"] == "dcgan-fashion" and meta["method"] == "none" and meta["seed"] == "3"
    assert meta["labels"] == "false" and json.loads(meta["options"]) == {} and meta["num"] == "6"
    assert json.loads(meta["output_range"]) == [-1.0, 1.0] and meta["latentflow"]
    want = to_uint8(x)
    arr = np.load(out / "samples.npz")["arr_0"]
    assert arr.shape == (6, 28, 28, 1) and torch.equal(torch.from_numpy(arr).permute(0, 3, 1, 2), want)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(out / "samples" / "000005.png")), want[5, 0].numpy())
    # a later run with other formats replaces the whole previous set (not refused as foreign files)
    sample_model(out=out, seed=4, formats=["npz"], **IMG)
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "samples.npz", "samples.png"]


def test_image_formats_need_an_image_model(tmp_path):
    with pytest.raises(OptionError, match=r"format: png expected a model whose samples are images.*\[2\]"):
        sample_model("grid25-wgangp", "none", num=4, out=tmp_path / "o", formats="png", progress=False)
    assert not (tmp_path / "o").exists()


def test_a_missing_real_path_fails_before_loading_the_model(tmp_path):
    # "no-such-model" would fail at loading: the --real error comes first, and nothing is written
    with pytest.raises(OptionError, match="real: expected a folder of images.*does not exist"):
        sample_model("no-such-model", "none", num=4, out=tmp_path / "o", real=tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []
    from latentflow.cli import main

    res = CliRunner().invoke(
        main, ["sample", "--real", str(tmp_path / "missing"), "-n", "4", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: real: expected a folder of images"), res.output
    assert list(tmp_path.iterdir()) == []


def test_real_needs_an_image_model(tmp_path):
    (tmp_path / "r").mkdir()
    np.savez(tmp_path / "r.npz", arr_0=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(OptionError, match="real: expected an image model"):
        sample_model("grid25-wgangp", "none", num=4, real=tmp_path / "r.npz", progress=False)


def test_real_metrics_go_into_the_report(tmp_path, monkeypatch):
    """The plumbing of sample --real (the metric itself is tested in test_real_metrics.py): before and after
    get fid/kid/is, ``metrics.real`` names the set, its split, the count and the cache use."""
    import latentflow.metrics as M

    np.savez(tmp_path / "r.npz", arr_0=np.zeros((10, 28, 28, 1), np.uint8))
    calls = []

    def fake(samples, real, **kw):
        calls.append(samples.shape)
        rs = M.resolve_real(real)
        prdc = {"precision": 0.9, "recall": 0.8, "density": 1.1, "coverage": 0.7} if kw.get("prdc") else {}
        return {
            **prdc,
            **({"prdc": {"k": 5, "num_real": 6, "num_fake": 6}} if prdc else {}),
            "num": samples.shape[0],
            "fid": 10.0 + len(calls),
            "kid": 0.5,
            "kid_std": 0.1,
            "is": None,
            "is_std": None,
            "null_reasons": {"is": "no logits", "is_std": "no logits"},
            "reference": {
                **rs.to_dict(),
                "sha256": "ab",
                "feature_extractor": "inception-v3-compat",
                "weights": "w",
                "cache": "c",
                "cache_hit": len(calls) > 1,
            },
        }

    monkeypatch.setattr(M, "real_metrics", fake)
    rep = sample_model(out=tmp_path / "o", real=tmp_path / "r.npz", num_real=8, **IMG)
    assert calls == [(6, 1, 28, 28)] * 2
    m = json.loads((tmp_path / "o" / "report.json").read_text())["metrics"]
    assert m == json.loads(json.dumps(rep["metrics"]))
    assert (m["before"]["fid"], m["after"]["fid"], m["after"]["is"]) == (11.0, 12.0, None)
    assert m["real"]["num_real"] == 8 and m["real"]["split"] is None and m["real"]["kind"] == "npz"
    assert m["real"]["null_reasons"]["is"] == "no logits" and m["real"]["n"] == 6
    assert m["after"]["recall"] == 0.8 and m["before"]["coverage"] == 0.7  # beside FID/KID, same features
    assert m["real"]["prdc"] == {"k": 5, "num_real": 6, "num_fake": 6}
