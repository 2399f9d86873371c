"""One cache of real images' feature rows for ``sample --real`` (``real_metrics``) and ``tune`` (its scorer's
real rows): whichever runs first computes the real set's Inception features, the other reads them; rows are
keyed per image, so a changed pixel misses, and the cache survives damaged files and read-only folders.

The Inception network is faked (a small torch-fidelity feature extractor counting the images it sees), so no
weights are needed; the values compared are the fake network's."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from latentflow.metrics import fidelity as F
from latentflow.metrics import real as R
from latentflow.metrics.feature_cache import cached_rows, feature_cache_folder, image_keys, real_feature_rows

pytestmark = pytest.mark.usefixtures("isolated_cache")

N = 40


def _images(seed: int, n: int = N) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, 8, 8), dtype=np.uint8))


@pytest.fixture
def fake_inception(monkeypatch, tmp_path):
    """torch-fidelity's Inception replaced by a 16-number projection of the pixels; returns the list of
    images (their bytes) it was called on. The cache is a fresh folder."""
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from latentflow.metrics import features as FT

    seen: list = []  # the images' bytes, and ("built", layers) per network built
    with torch.random.fork_rng(devices=[]):
        proj = torch.randn(3 * 8 * 8, 16, generator=torch.Generator().manual_seed(0)) / 64

    class FakeInception(FeatureExtractorBase):
        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            seen.append(("built", tuple(features_list)))

        def forward(self, x):
            assert x.dtype == torch.uint8 and x.shape[1:] == (3, 8, 8)
            seen.extend(bytes(a.numpy().tobytes()) for a in x)
            f = x.flatten(1).float() @ proj
            return tuple(f if layer == "2048" else f[:, :10] for layer in self.features_list)

        @staticmethod
        def get_provided_features_list():
            return "2048", "logits_unbiased"

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits_unbiased"}.get(metric, "2048")

        @staticmethod
        def can_be_compiled():
            return False

    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    monkeypatch.setitem(FEATURE_EXTRACTORS_REGISTRY, F.INCEPTION, FakeInception)
    monkeypatch.setattr(F, "torch_fidelity_inception_cached", lambda: tmp_path / "weights.pth")
    monkeypatch.setattr(FT, "_EXTRACTORS", {})
    return seen


def _count(seen: list[bytes], images: torch.Tensor) -> int:
    """How many of the network's inputs were images of ``images``."""
    mine = {bytes(a.numpy().tobytes()) for a in images}
    return sum(isinstance(b, bytes) and b in mine for b in seen)


def _tune_rows(real: torch.Tensor) -> torch.Tensor:
    """The real rows tune scores against: its Inception features' cached rows, through its scorer."""
    from latentflow.app.tune.tune_features import resolve_features
    from latentflow.app.tune.tune_metrics import Scorer

    feats = resolve_features(None, (3, 8, 8), (-1.0, 1.0))
    assert feats.name.startswith("Inception-v3 pool3")
    return Scorer("fid", feats, real.float() / 127.5 - 1, 0).fr


def _npz(tmp_path, x: torch.Tensor, name: str = "real.npz"):
    np.savez(tmp_path / name, arr_0=x.permute(0, 2, 3, 1).numpy())
    return tmp_path / name


def test_sample_then_tune_computes_the_real_features_once(fake_inception, tmp_path):
    real, fake = _images(0), _images(1, 20)
    m = R.real_metrics(fake, _npz(tmp_path, real), isc=False, rng_seed=0)
    assert _count(fake_inception, real) == N and m["reference"]["cache_hit"] is False
    rows = _tune_rows(real)
    assert _count(fake_inception, real) == N  # tune computed none of them
    assert rows.shape == (N, 16) and torch.equal(rows, real_feature_rows(real)[0])


def test_tune_then_sample_computes_the_real_features_once(fake_inception, tmp_path, monkeypatch):
    real, fake = _images(0), _images(1, 20)
    tuned = _tune_rows(real)
    assert _count(fake_inception, real) == N
    m = R.real_metrics(fake, _npz(tmp_path, real), isc=False, prdc=True, rng_seed=0)
    assert _count(fake_inception, real) == N  # sample computed none of them
    assert m["reference"]["cache_hit"] is True
    assert torch.equal(tuned, real_feature_rows(real)[0])
    # ... and its values are those of the rows computed afresh (an empty cache)
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "fresh"))
    fresh = R.real_metrics(fake, _npz(tmp_path, real), isc=False, prdc=True, rng_seed=0)
    assert fresh["reference"]["cache_hit"] is False and _count(fake_inception, real) == 2 * N
    assert {k: m[k] for k in ("fid", "kid", "recall")} == {k: fresh[k] for k in ("fid", "kid", "recall")}


def test_tune_and_the_metrics_share_one_feature_network(fake_inception, tmp_path):
    real, fake = _images(0), _images(1, 20)
    _tune_rows(real)
    R.real_metrics(fake, _npz(tmp_path, real), isc=False, prdc=True, rng_seed=0)
    assert [b for b in fake_inception if not isinstance(b, bytes)] == [("built", ("2048",))]


def test_a_real_set_with_one_changed_pixel_misses_the_cache(fake_inception, tmp_path):
    real, fake = _images(0), _images(1, 20)
    first = R.real_metrics(fake, _npz(tmp_path, real), isc=False, rng_seed=0)
    changed = real.clone()
    changed[7, 2, 3, 4] ^= 1
    n0 = len(fake_inception)
    second = R.real_metrics(fake, _npz(tmp_path, changed, "changed.npz"), isc=False, rng_seed=0)
    assert second["reference"]["cache_hit"] is False and second["fid"] != first["fid"]
    assert _count(fake_inception[n0:], changed) == 1  # the changed image only: the others are cached
    assert _count(fake_inception[n0:], changed[7:8]) == 1
    n1 = len(fake_inception)
    _tune_rows(changed)  # tune's quantised copy of the changed set: every row cached now
    assert _count(fake_inception[n1:], changed) == 0


def test_rows_are_keyed_per_image_grey_as_its_rgb_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    calls: list[int] = []

    def net(u):
        calls.append(u.shape[0])
        return u.flatten(1)[:, :4].float()

    x = _images(2, 10)
    rows, computed = cached_rows(x, "t", net)
    assert computed == 10 and calls == [10]
    again, computed = cached_rows(x[[3, 1, 1, 7]], "t", net)  # a subset, permuted, with a repeat
    assert computed == 0 and torch.equal(again, rows[[3, 1, 1, 7]]) and calls == [10]
    more = torch.cat([x, _images(3, 2), _images(3, 2)])  # two new images, each given twice
    both, computed = cached_rows(more, "t", net)
    assert computed == 2 and calls == [10, 2] and torch.equal(both[:10], rows) and torch.equal(both[10:12], both[12:])
    grey = x[:, :1].contiguous()
    assert torch.equal(image_keys(grey), image_keys(grey.expand(-1, 3, -1, -1)))
    assert not torch.equal(image_keys(grey), image_keys(x))
    assert cached_rows(x, "another-network", net)[1] == 10  # the network's tag is part of the key


def test_a_damaged_cache_file_is_recomputed_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    x = _images(4, 6)
    rows, _ = cached_rows(x, "t", lambda u: u.flatten(1)[:, :3].float())
    (path,) = feature_cache_folder("t").glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with caplog.at_level(logging.WARNING, logger="latentflow.metrics"):
        again, computed = cached_rows(x, "t", lambda u: u.flatten(1)[:, :3].float())
    assert computed == 6 and torch.equal(again, rows)
    assert any("unreadable" in m and "computed again" in m for m in caplog.messages)
    assert cached_rows(x, "t", lambda u: 1 / 0)[1] == 0  # the rewritten file is whole again


def test_a_read_only_cache_only_logs(tmp_path, monkeypatch, caplog):
    import os

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "replace", _refuse)  # root writes anywhere: refuse the rename instead
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("LATENTFLOW_CACHE", str(ro))
    x = _images(5, 4)
    try:
        with caplog.at_level(logging.WARNING, logger="latentflow.metrics"):
            rows, computed = cached_rows(x, "t", lambda u: u.flatten(1)[:, :3].float())
    finally:
        ro.chmod(0o700)
    assert computed == 4 and rows.shape == (4, 3)
    assert any("could not store 4 rows" in m for m in caplog.messages)


def _refuse(src, dst):
    raise PermissionError(13, "Permission denied", str(dst))


def test_non_finite_rows_are_returned_but_never_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    x = _images(6, 3)
    rows, _ = cached_rows(x, "t", lambda u: torch.full((u.shape[0], 2), float("nan")))
    assert rows.isnan().all() and not feature_cache_folder("t").exists()


def test_rows_of_another_width_under_the_same_name_are_one_line(tmp_path, monkeypatch):
    from latentflow.errors import ShapeError

    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    x = _images(7, 4)
    cached_rows(x[:2], "t", lambda u: u.flatten(1)[:, :3].float())
    with pytest.raises(ShapeError, match=r"width 5; its cached rows in .* have 3 .*remove that folder") as e:
        cached_rows(x, "t", lambda u: u.flatten(1)[:, :5].float())
    assert "\n" not in str(e.value)
