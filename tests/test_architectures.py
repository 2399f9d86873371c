"""Architectures: shapes and ranges, the PyTorch-StudioGAN SN-GAN key layout, spectral-norm settling and the
checkpoint adapters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentflow import nets
from latentflow.errors import IntegrityError, ManifestError
from latentflow.models import checkpoints, convert, load
from latentflow.models.manifest import ALL_SOURCE_KINDS, validate_entry


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "lf-cache"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


# name of G, name of D, G kwargs, D kwargs, expected image shape
PAIRS = [
    ("mlp_g", "mlp_d", {}, {}, (2,)),
    ("dcgan28_g", "dcgan28_d", {}, {}, (1, 28, 28)),
    ("dcgan32_g", "dcgan32_d", {}, {}, (3, 32, 32)),
    ("dcgan32_g", "dcgan32_d", {"ch": 16}, {"ch": 16, "norm": "sn"}, (3, 32, 32)),
    ("dcgan64_g", "dcgan64_d", {"ch": 16}, {"ch": 16}, (3, 64, 64)),
    ("sngan_cnn32_g", "sngan_cnn32_d", {}, {}, (3, 32, 32)),
    ("sngan_cnn32_g", "sngan_cnn32_d", {"num_classes": 10}, {"num_classes": 10}, (3, 32, 32)),
    ("sngan_resnet32_g", "sngan_resnet32_d", {}, {}, (3, 32, 32)),
    ("sngan_resnet32_g", "sngan_resnet32_d", {"num_classes": 10}, {"num_classes": 10}, (3, 32, 32)),
    ("xyfjason_simple_cnn_g", "xyfjason_simple_cnn_d", {"dim": 16}, {"dim": 16}, (3, 32, 32)),
]


# architectures of the particle-model trainers (latentflow.nets.time_cond and .denoiser28) are
# tested in tests/test_train_dflow.py, tests/test_score_gan.py, tests/test_flowgan.py and tests/test_nets_images.py
TRAINER_NETS = {
    "tmlp_d",
    "nmlp_d",
    "mlp_den",
    "tconv28_d",
    "tconv28_den",
    "den_mlp",
    "dg_mlp",
    "dg_conv28",
    "tconv_d",  # den_mlp..dg_conv28: tests/test_scores.py, test_train_denoiser.py, test_train_dg_disc.py
    "gaussian_prior",
}  # a dflow model's fitted x0: tests/test_dflow_prior.py
# G(z, y) / D(x, y) with per-sample labels: tested against golden outputs in tests/test_studiogan_resnet.py
LABELLED_NETS = {"studiogan_resnet32_g", "studiogan_resnet32_d"}


def test_every_registered_arch_is_covered():
    names = {n for p in PAIRS for n in p[:2]}
    assert names | TRAINER_NETS | LABELLED_NETS == set(nets.ARCHITECTURES)


@pytest.mark.parametrize("g,d,kg,kd,shape", PAIRS, ids=[f"{p[0]}-{i}" for i, p in enumerate(PAIRS)])
def test_shapes_and_ranges(g, d, kg, kd, shape):
    G, D = nets.build(g, **kg).eval(), nets.build(d, **kd).eval()
    z = torch.randn(3, G.latent_dim)
    with torch.no_grad():
        x = G(z)
        out = D(x)
    assert tuple(x.shape) == (3, *shape)
    if len(shape) == 3:  # image generators end in tanh
        assert x.min() >= -1 and x.max() <= 1
    assert out.shape == (3,) and torch.isfinite(out).all()


def test_dcgan28_is_small_and_batch_independent():
    G, D = nets.build("dcgan28_g"), nets.build("dcgan28_d")
    assert G.latent_dim == 64
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())
    assert sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters()) < 400_000
    D.eval()
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(D(x)[:2], D(x[:2]), rtol=1e-4, atol=1e-4)


def test_build_errors():
    with pytest.raises(ManifestError, match=r'Unknown architecture "dcgan16_g"\. Available: .*dcgan32_g'):
        nets.build("dcgan16_g")
    with pytest.raises(ManifestError, match=r'"dcgan32_d" cannot be built with'):
        nets.build("dcgan32_d", colour=1)
    with pytest.raises(ManifestError, match="norm must be one of bn, sn, none"):
        nets.build("dcgan32_d", norm="ln")


# -------------------------------------------------------------------------------------------------
# PyTorch-StudioGAN SN-GAN key layout (src/models/resnet.py with cBN G and a projection D with SN)
# -------------------------------------------------------------------------------------------------


def studiogan_resnet32_keys(num_classes: int) -> tuple[set[str], set[str]]:
    """The state-dict keys StudioGAN's ResNet SN-GAN for 32x32 has, written out from its layout."""

    def bn(prefix):
        if num_classes:
            return {
                f"{prefix}.bn.running_mean",
                f"{prefix}.bn.running_var",
                f"{prefix}.bn.num_batches_tracked",
                f"{prefix}.embed0.weight",
                f"{prefix}.embed1.weight",
            }
        return {f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}

    def conv(prefix):
        return {f"{prefix}.weight", f"{prefix}.bias"}

    def snconv(prefix):
        return {f"{prefix}.bias", f"{prefix}.weight_orig", f"{prefix}.weight_u", f"{prefix}.weight_v"}

    g = conv("linear0") | conv("conv2d5")
    g |= {f"bn4.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    for i in range(3):
        b = f"blocks.{i}.0"
        g |= bn(f"{b}.bn1") | bn(f"{b}.bn2") | conv(f"{b}.conv2d0") | conv(f"{b}.conv2d1") | conv(f"{b}.conv2d2")
    d = snconv("linear1")
    d |= snconv("blocks.0.0.conv2d0") | snconv("blocks.0.0.conv2d1") | snconv("blocks.0.0.conv2d2")
    d |= snconv("blocks.1.0.conv2d0") | snconv("blocks.1.0.conv2d1") | snconv("blocks.1.0.conv2d2")
    for i in (2, 3):  # no downsampling, same width: identity shortcut
        d |= snconv(f"blocks.{i}.0.conv2d1") | snconv(f"blocks.{i}.0.conv2d2")
    if num_classes:
        d |= {"embedding.weight_orig", "embedding.weight_u", "embedding.weight_v"}
    return g, d


@pytest.mark.parametrize("num_classes", [0, 10])
def test_sngan_resnet_keys_match_studiogan_layout(num_classes):
    G = nets.build("sngan_resnet32_g", num_classes=num_classes)
    D = nets.build("sngan_resnet32_d", num_classes=num_classes)
    g_keys, d_keys = studiogan_resnet32_keys(num_classes)
    assert set(G.state_dict()) == g_keys
    assert set(D.state_dict()) == d_keys
    assert G.state_dict()["linear0.weight"].shape == (256 * 16, 128)
    assert D.state_dict()["blocks.0.0.conv2d1.weight_orig"].shape == (128, 3, 3, 3)
    if num_classes:
        assert D.state_dict()["embedding.weight_orig"].shape == (10, 128)
        assert G.state_dict()["blocks.0.0.bn1.embed0.weight"].shape == (10, 256)


def _studiogan_checkpoint(model: nn.Module, path, *, drop_sn_vectors=False):
    """A file shaped like StudioGAN's ``model=G-best-weights-step=N.pth``: state_dict + optimizer + misc."""
    sd = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if not (drop_sn_vectors and (k.endswith("_u") or k.endswith("_v")))
    }
    torch.save(
        {
            "state_dict": sd,
            "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4}]},
            "seed": 0,
            "run_name": "CIFAR10-SNGAN-train-2022_02_12",
            "step": 16000,
            "best_step": 16000,
            "best_fid": 20.1,
            "best_fid_checkpoint_path": "x",
            "ada_p": None,
        },
        path,
    )


def _pth_entry(gpath, dpath, num_classes=10, ch_g=256, ch_d=128):
    raw = {
        "source": {"kind": "local", "root": ""},
        "files": {"G": {"path": str(gpath), "sha256": None}, "D": {"path": str(dpath), "sha256": None}},
        "arch": {
            "G": {"name": "sngan_resnet32_g", "kwargs": {"num_classes": num_classes, "ch": ch_g}},
            "D": {"name": "sngan_resnet32_d", "kwargs": {"num_classes": num_classes, "ch": ch_d}},
        },
        "latent": {"dim": 128},
        "output": {"shape": [3, 32, 32], "range": [-1, 1]},
        "d_output": "logit",
        "verified": False,
    }
    return validate_entry("sngan-test", raw, allow_sources=ALL_SOURCE_KINDS)


def test_studiogan_sngan_checkpoint_loads_through_the_manifest_path(tmp_path):
    """What ``load("sngan-cifar")`` does after the download: .pth read with weights_only, strict load."""
    # narrower than the paper's 256/128 to keep the test fast; the layout test above checks full width
    src_G = nets.build("sngan_resnet32_g", num_classes=10, ch=32)
    src_D = nets.build("sngan_resnet32_d", num_classes=10, ch=32)
    with torch.no_grad():  # non-trivial BN statistics
        for m in src_G.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
    _studiogan_checkpoint(src_G, tmp_path / "model=G-best-weights-step=16000.pth")
    _studiogan_checkpoint(src_D, tmp_path / "model=D-best-weights-step=16000.pth")
    entry = _pth_entry(
        tmp_path / "model=G-best-weights-step=16000.pth",
        tmp_path / "model=D-best-weights-step=16000.pth",
        ch_g=32,
        ch_d=32,
    )
    pair = load(entry)
    z = torch.randn(4, 128)
    x = pair.G(z)
    assert x.shape == (4, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    src_G.eval(), src_D.eval()
    with torch.no_grad():
        torch.testing.assert_close(x, src_G(z))
        torch.testing.assert_close(pair.D(x), src_D(x))
    assert pair.meta["num_classes"] == 10 and pair.meta["d_output"] == "logit"
    pair.set_class(7)
    with torch.no_grad():
        src_G.class_label = 7
        torch.testing.assert_close(pair.G(z), src_G(z))
        assert not torch.allclose(pair.G(z), x)
        y = torch.arange(4) % 10
        torch.testing.assert_close(pair.G(z, y), src_G(z, y))


def test_studiogan_pair_converts_to_safetensors(tmp_path):
    G, D = nets.build("sngan_cnn32_g"), nets.build("sngan_cnn32_d")
    _studiogan_checkpoint(G, tmp_path / "g.pth")
    _studiogan_checkpoint(D, tmp_path / "d.pth")
    out = convert(
        tmp_path / "g.pth",
        tmp_path / "out",
        d_path=tmp_path / "d.pth",
        arch_g="sngan_cnn32_g",
        arch_d="sngan_cnn32_d",
        name="sngan-cnn-test",
    )
    pair = load(out)
    assert pair.meta["output_shape"] == [3, 32, 32] and pair.meta["latent_dim"] == 128
    z = torch.randn(2, 128)
    G.eval(), D.eval()
    with torch.no_grad():
        torch.testing.assert_close(pair.D(pair.G(z)), D(G(z)))


def test_missing_spectral_norm_vectors_are_settled(tmp_path):
    D = nets.build("sngan_resnet32_d", ch=32)
    with torch.no_grad():  # trained SN weights have a clear top singular value; random ones barely do
        for _name, mod, h in nets.spectral_norm_modules(D):
            w = getattr(mod, h.name + "_orig")
            a, b = torch.randn(w.shape[0]), torch.randn(w[0].numel())
            w += (
                2 * torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2) * torch.outer(a / a.norm(), b / b.norm())
            ).reshape(w.shape)
    _studiogan_checkpoint(D, tmp_path / "g.pth", drop_sn_vectors=True)
    G = nets.build("sngan_resnet32_g", ch=32)
    _studiogan_checkpoint(G, tmp_path / "gg.pth")
    pair = load(_pth_entry(tmp_path / "gg.pth", tmp_path / "g.pth", num_classes=0, ch_g=32, ch_d=32))
    for name, mod, h in nets.spectral_norm_modules(pair.D):
        w = getattr(mod, h.name + "_orig").reshape(getattr(mod, h.name + "_orig").shape[0], -1)
        sigma_true = torch.linalg.matrix_norm(w, ord=2)
        u, v = getattr(mod, h.name + "_u"), getattr(mod, h.name + "_v")
        sigma = torch.dot(u, w @ v)
        assert abs(sigma - sigma_true) / sigma_true < 1e-3, name
    assert torch.isfinite(pair.D(pair.G(torch.randn(2, 128)))).all()


def test_adapters_module_prefix_and_netg_netd(tmp_path):
    G, D = nets.build("dcgan32_g", ch=8), nets.build("dcgan32_d", ch=8)
    pref = lambda m: {f"module.{k}": v for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"netG": pref(G), "netD": pref(D), "optimizerG": {}}, tmp_path / "ck.pth")
    out = convert(
        tmp_path / "ck.pth",
        tmp_path / "o",
        arch_g="dcgan32_g",
        arch_d="dcgan32_d",
        kwargs_g={"ch": 8},
        kwargs_d={"ch": 8},
    )
    pair = load(out)
    z = torch.randn(2, 100)
    G.eval(), D.eval()
    with torch.no_grad():
        torch.testing.assert_close(pair.G(z), G(z))
    assert checkpoints.strip_prefixes({"module._orig_mod.a": 1}) == {"a": 1}
    assert set(checkpoints.split_pair({"generator": G.state_dict(), "discriminator": D.state_dict()})) == {"G", "D"}
    # a StudioGAN file for a different width is refused with the mis-shaped keys listed
    with pytest.raises(
        IntegrityError,
        match=r"mis-shaped keys \(16\): net\.0\.weight \(checkpoint \(100, 32, 4, 4\), "
        r"model \(100, 16, 4, 4\)\)",
    ):
        convert(
            tmp_path / "ck.pth",
            tmp_path / "o2",
            arch_g="dcgan32_g",
            arch_d="dcgan32_d",
            kwargs_g={"ch": 4},
            kwargs_d={"ch": 8},
        )


def test_class_labels_are_checked():
    G = nets.build("sngan_resnet32_g", num_classes=10).eval()
    G.class_label = 10
    with pytest.raises(ManifestError, match=r"class_label must lie in \[0, 9\]; got 10"):
        G(torch.randn(2, 128))
    with pytest.raises(ManifestError, match=r"shape \(2,\)"):
        G(torch.randn(2, 128), torch.zeros(3, dtype=torch.long))
