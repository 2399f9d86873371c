"""The model card ``export`` writes (latentflow.models.card): README.md with Hugging Face Hub front matter,
parsed back as YAML; and ``bench images --real`` checked before any compute."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from latentflow.errors import OptionError
from latentflow.models import export, load
from latentflow.models.card import read_front_matter

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _front(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return read_front_matter(text), text


def test_export_writes_a_card_the_hub_reads(tmp_path):
    out = export(
        "dcgan-fashion",
        tmp_path / "e",
        card=True,
        metrics={"fid_fmnist": 12.5, "kid": 0.0125},
        tags=["fashion"],
        repo_id="me/dcgan",
    )
    fm, text = _front(out)
    spec = json.loads((out / "latentflow.json").read_text())
    assert fm["library_name"] == "latentflow"
    assert fm["tags"][:3] == ["latentflow", "gan", "discriminator-driven-sampling"]
    assert "fashion" in fm["tags"] and "fashion-mnist" in fm["tags"] and len(set(fm["tags"])) == len(fm["tags"])
    assert fm["license"] == str(spec["license"]).lower() and fm["datasets"] == ["fashion-mnist"]
    assert fm["sampling"] == spec["sampling"] == load("dcgan-fashion").meta["sampling"]
    res = fm["model-index"][0]["results"][0]
    assert res["task"]["type"] == "unconditional-image-generation"
    assert {m["type"]: m["value"] for m in res["metrics"]} == {"fid_fmnist": 12.5, "kid": 0.0125}
    assert fm["latentflow_metrics"] == {"fid_fmnist": 12.5, "kid": 0.0125}
    assert "latentflow sample --model hf:me/dcgan" in text and "| fid_fmnist | 12.5 |" in text
    # the front matter is plain YAML between the two --- lines
    assert yaml.safe_load(text.split("---\n")[1]) == fm


def test_card_without_metrics_and_refusals(tmp_path):
    out = export("grid25-wgangp", tmp_path / "e", card=True)
    fm, _ = _front(out)
    assert "model-index" not in fm and fm["sampling"]["ddls"]["steps"] > 0
    assert sorted(p.name for p in export("grid25-wgangp", tmp_path / "plain").iterdir()) == [
        "D.safetensors",
        "G.safetensors",
        "latentflow.json",
    ]  # card=False: as before
    with pytest.raises(OptionError, match="metrics: expected finite numbers.*fid=nan"):
        export("grid25-wgangp", tmp_path / "bad", card=True, metrics={"fid": float("nan")})


def test_cli_export_writes_the_card(tmp_path):
    from latentflow.cli import main

    r = CliRunner().invoke(
        main, ["export", "grid25-wgangp", "--out", str(tmp_path / "e"), "--metric", "emd=0.05", "--tag", "toy"]
    )
    assert r.exit_code == 0, r.output
    fm, _ = _front(tmp_path / "e")
    assert fm["latentflow_metrics"] == {"emd": 0.05} and "toy" in fm["tags"]
    assert fm["model-index"][0]["results"][0]["task"]["type"] == "other"  # 2-D samples, not images
    r = CliRunner().invoke(main, ["export", "grid25-wgangp", "--out", str(tmp_path / "f"), "--metric", "emd=x"])
    assert r.exit_code == 1 and r.output.strip() == "error: --metric emd must be float; got 'x'"


def test_bench_real_is_checked_before_compute(tmp_path):
    from latentflow.cli import main

    r = CliRunner().invoke(main, ["bench", "images", "--real", str(tmp_path / "missing"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 1 and r.output.startswith("error: real: expected a folder of images"), r.output
    r = CliRunner().invoke(main, ["bench", "toy2d", "--real", str(tmp_path), "--out", str(tmp_path / "t.json")])
    assert r.exit_code == 1 and "only the images suite" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bench_images_real_puts_the_reference_in_the_document(tmp_path, monkeypatch, fashion_mnist):
    """bench images --real: Inception FID/KID of the generator row against the real set (metric stubbed;
    the metric itself is tested in test_real_metrics.py), the set's split and count in the document."""
    import numpy as np

    import latentflow.metrics as M
    from latentflow.app.bench.images import M_IFID, M_IKID, M_IS, images

    np.savez(tmp_path / "r.npz", arr_0=np.zeros((10, 28, 28, 1), np.uint8))

    def fake(samples, real, **kw):
        return {
            "num": samples.shape[0],
            "fid": 3.0,
            "kid": 0.2,
            "kid_std": 0.01,
            "is": None,
            "is_std": None,
            "null_reasons": {"is": "no logits"},
            "reference": {**real.to_dict(), "cache_hit": False},
        }

    monkeypatch.setattr(M, "real_metrics", fake)
    doc, _ = images("dcgan-fashion", ["generator"], num=4, quick=True, real=tmp_path / "r.npz", num_real=6)
    row = doc["rows"][0]
    assert "error" not in row, row
    assert (row["metrics"][M_IFID], row["metrics"][M_IKID]) == (3.0, 0.2)
    assert row["metric_errors"][M_IS] == "no logits"
    assert doc["inception"]["real"]["num_real"] == 6 and doc["inception"]["real"]["kind"] == "npz"
