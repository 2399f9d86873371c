"""``benchmarks/train_rgb_gans.py``: the RGB Fashion-MNIST colouring and a smoke run whose folders
``latentflow.load`` reads with the right D output, prior and classes; the DCGAN D's sigmoid head."""

from __future__ import annotations

import colorsys
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from latentflow.errors import LatentflowError

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("isolated_cache")


def _load():
    spec = importlib.util.spec_from_file_location("train_rgb_gans", ROOT / "benchmarks" / "train_rgb_gans.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


T = _load()


def test_colourise_paints_each_class_in_its_hue_over_a_complementary_background():
    n = 10
    imgs = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    imgs[:, :, 10:18, 10:18] = 255  # an opaque square: pure foreground there, pure background elsewhere
    x = T.colourise(imgs, torch.arange(n), seed=0)
    assert x.shape == (n, 3, 32, 32) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    for c in range(n):
        fg = ((x[c, :, 16, 16] + 1) / 2).tolist()
        h, s, v = colorsys.rgb_to_hsv(*fg)
        assert h == pytest.approx(c / 10, abs=1e-4) and s == pytest.approx(0.9, abs=1e-4) and 0.75 <= v <= 1
        bg = ((x[c, :, 0:4, 0:4] + 1) / 2).reshape(3, -1).T
        hues = [colorsys.rgb_to_hsv(*p.tolist()) for p in bg]
        assert all(hh == pytest.approx((c / 10 + 0.5) % 1, abs=1e-3) for hh, _, _ in hues)
        assert all(0.15 - 1e-6 <= vv <= 0.4 + 1e-6 for _, _, vv in hues)  # dim stripes
    # the same seed gives the same images; the texture's phase is drawn per image
    assert torch.equal(x, T.colourise(imgs, torch.arange(n), seed=0))
    assert not torch.equal(x, T.colourise(imgs, torch.arange(n), seed=1))


def test_dcgan_d_with_a_sigmoid_head_returns_the_probabilities_of_its_logits():
    from latentflow.nets import build

    with torch.random.fork_rng():
        torch.manual_seed(0)
        d = build("dcgan32_d", ch=4, norm="none").eval()
        p = build("dcgan32_d", ch=4, norm="none", sigmoid=True).eval()
        x = torch.randn(5, 3, 32, 32)
    p.load_state_dict(d.state_dict())
    with torch.no_grad():
        assert torch.allclose(p(x), torch.sigmoid(d(x)))


@pytest.mark.rng_ok  # the training script seeds torch itself, as a script does
def test_smoke_run_writes_folders_that_load_with_their_d_output_prior_and_classes(tmp_path):
    from latentflow import load
    from latentflow.data import find_fashion_mnist

    try:
        find_fashion_mnist()
    except LatentflowError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")
    names = ["rgb-hinge-proj", "rgb-ns-bn", "rgb-wgangp-unif"]
    T.main(["--out", str(tmp_path), "--smoke", "--only", *names])
    want = {
        "rgb-hinge-proj": ("logit", "normal", 10),
        "rgb-ns-bn": ("prob", "normal", 0),
        "rgb-wgangp-unif": ("critic", "uniform", 0),
    }
    for name, (d_output, prior, k) in want.items():
        pair = load(str(tmp_path / name))
        assert (pair.meta["d_output"], pair.meta["prior"], pair.num_classes) == (d_output, prior, k)
        res = pair.refine(n=4, method="none", seed=0, progress=False)
        assert res.x.shape == (4, 3, 32, 32)
        if d_output == "prob":
            with torch.no_grad():
                p = pair.D(res.x)
            assert ((p > 0) & (p < 1)).all()
        info = json.loads((tmp_path / name / "train_info.json").read_text())
        assert info["steps"] == 5 and info["train_cpu_s"] > 0 and (tmp_path / name / "samples.png").exists()
    import numpy as np

    with np.load(tmp_path / "data" / "test.npz") as f:
        assert f["x"].shape == (64, 3, 32, 32) and f["x"].min() >= -1 and f["y"].shape == (64,)
