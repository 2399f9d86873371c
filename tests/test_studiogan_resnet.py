"""PyTorch-StudioGAN ResNet SN-GAN (CIFAR-10, post-2022 layout): the exact checkpoint layout, the golden outputs
of the upstream modules filled by the recipe of tests/golden_recipe.py (facts in
tests/data/layouts/studiogan_sngan_cifar10.json), the pre-2022 cBN adapter and the checkpoint reader."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from golden_recipe import TOL, layout_of, load_layout, own_rng, recipe_state_dict, recipe_x, recipe_z  # noqa: F401  (own_rng: autouse)

from latentflow.errors import IntegrityError, ShapeError
from latentflow.nets.studiogan_resnet import (
    StudioGANResNetDiscriminator,
    StudioGANResNetGenerator,
    read_studiogan_checkpoint,
    studiogan_downgrade_state_dict,
    studiogan_upgrade_state_dict,
)

LAYOUT = "studiogan_sngan_cifar10.json"


@pytest.fixture(scope="module")
def golden():
    """``(facts, G, D)``: the modules filled by the recipe, in eval mode (shared: copy before changing them)."""
    facts = load_layout(LAYOUT)
    with torch.random.fork_rng(devices=[]):
        G = StudioGANResNetGenerator(z_dim=128, g_conv_dim=64, num_classes=10)
        D = StudioGANResNetDiscriminator(d_conv_dim=64, num_classes=10)
    G.load_state_dict(recipe_state_dict(facts["G_keys"]), strict=True)
    D.load_state_dict(recipe_state_dict(facts["D_keys"]), strict=True)
    return facts, G.eval(), D.eval()


def _labels(facts) -> torch.Tensor:
    return torch.tensor(facts["labels"], dtype=torch.long)


def test_keys_and_shapes_are_the_checkpoints():
    facts = load_layout(LAYOUT)
    G, D = StudioGANResNetGenerator(), StudioGANResNetDiscriminator()
    assert layout_of(G) == list(facts["G_keys"].items())
    assert layout_of(D) == list(facts["D_keys"].items())
    assert G.num_classes == D.num_classes == 10 and G.latent_dim == 128


def test_golden_discriminator_outputs(golden):
    facts, G, D = golden
    y = _labels(facts)
    with torch.no_grad():
        x = G(recipe_z(4, 128), y)
        d_x, d_gz = D(recipe_x(), y), D(x, y)
    assert list(x.shape) == facts["G_out_shape"] and list(d_x.shape) == facts["D_out_shape"]
    torch.testing.assert_close(d_x, torch.tensor(facts["D_x"]), rtol=0, atol=TOL)
    # D(G(z)) also pins G: e.g. BatchNorm eps 1e-5 instead of StudioGAN's 1e-4 in bn4 alone moves it by 9e-4
    torch.testing.assert_close(d_gz, torch.tensor(facts["D_Gz"]), rtol=0, atol=TOL)
    torch.testing.assert_close(x.flatten()[:8], torch.tensor(facts["G_out_first8"]), rtol=0, atol=TOL)


def test_golden_generator_means_differ_only_by_float32_sign_flips(golden):
    """The recipe drives G's last convolution to |values| ~ 1e4..3e5, so tanh gives +-1 almost everywhere and an
    image mean is (#positive - #negative) / numel: a pixel whose sign flips moves the mean by exactly 2 / numel.
    Float64 is exact here; a float32 run (ours on this CPU, or upstream's that wrote the golden means) may flip
    only pixels whose exact pre-activation lies within float32's rounding band, measured on this CPU as twice the
    largest |float32 - float64| pre-activation. So: (1) our float32 means differ from the float64 ones by exactly
    the sign flips counted between the two outputs, and (2) the golden means differ from the float64 ones by a
    whole number of flips, no more than the pixels inside the band. Nothing here depends on the CPU's summation
    order; that G is the upstream network (BatchNorm eps included) is pinned by D(G(z)) in
    ``test_golden_discriminator_outputs``."""
    facts, G, _D = golden
    y, z = _labels(facts), recipe_z(4, 128)
    seen = {}
    hook = G.conv2d5.register_forward_hook(lambda _m, _i, out: seen.__setitem__("pre", out.double()))
    try:
        with torch.no_grad():
            x32 = G(z, y).double()
            pre32 = seen["pre"]
            x64 = copy.deepcopy(G).double()(z.double(), y)
            pre64 = seen["pre"]
    finally:
        hook.remove()
    numel = x32[0].numel()
    m32, m64 = x32.mean(dim=(1, 2, 3)), x64.mean(dim=(1, 2, 3))
    golden_means = torch.tensor(facts["G_out_per_sample_mean"], dtype=torch.float64)
    # (1) float32 against float64: the counted flips, up to the saturated pixels' own rounding (|1 - tanh| < 1e-6)
    up = ((x32 > 0) & (x64 < 0)).flatten(1).sum(1).double()
    down = ((x32 < 0) & (x64 > 0)).flatten(1).sum(1).double()
    torch.testing.assert_close(m32 - m64, 2 * (up - down) / numel, rtol=0, atol=TOL)
    # (2) golden against float64: whole flips, each inside the float32 band
    band = 2 * (pre32 - pre64).abs().flatten(1).amax(1)
    fragile = (pre64.abs() < band[:, None, None, None]).flatten(1).sum(1).double()
    flips = (golden_means - m64) * numel / 2
    torch.testing.assert_close(flips, flips.round(), rtol=0, atol=TOL * numel / 2)
    assert (flips.round().abs() <= fragile).all(), (flips.tolist(), fragile.tolist())
    assert (fragile < 0.02 * numel).all(), fragile.tolist()  # the band holds a few pixels, not the image


def test_shortcut_sees_the_activated_input(golden):
    """StudioGAN's in-place ReLU aliases the shortcut: the textbook block (shortcut on the raw input) is not it."""
    facts, _G, D = golden
    D2 = StudioGANResNetDiscriminator(shortcut_relu=False)
    D2.load_state_dict(D.state_dict(), strict=True)
    with torch.no_grad():
        d_x = D2.eval()(recipe_x(), _labels(facts))
    assert (d_x - torch.tensor(facts["D_x"])).abs().max() > 100 * TOL


def test_eval_mode_runs_no_power_iteration(golden):
    facts, _G, D = golden
    D = copy.deepcopy(D)
    conv = D.blocks[1][0].conv2d1
    with torch.no_grad():  # move u off the singular vector, where a power step would stay put
        conv.weight_u.copy_(F.normalize(conv.weight_u + 0.5 * torch.linspace(-1, 1, conv.weight_u.numel()), dim=0))
    u0 = conv.weight_u.clone()
    with torch.no_grad():
        D(recipe_x(), _labels(facts))
    assert torch.equal(conv.weight_u, u0)
    D.train()
    with torch.no_grad():
        D(recipe_x(), _labels(facts))
    assert not torch.allclose(conv.weight_u, u0, atol=1e-3)


def test_batch_of_one_and_label_errors(golden):
    facts, G, D = golden
    y = torch.tensor([3])
    with torch.no_grad():
        assert D(G(recipe_z(1, 128), y), y).shape == (1,)
    with pytest.raises(ShapeError, match=r"y: expected integer class labels of shape \[2\], got \[2\] torch.float32"):
        G(torch.zeros(2, 128), torch.zeros(2))
    with pytest.raises(ShapeError, match=r"y: expected class labels in \[0, 9\], got values from 0 to 10"):
        D(torch.zeros(2, 3, 32, 32), torch.tensor([0, 10]))
    with pytest.raises(ShapeError, match=r"z: expected \[B, 128\], got \[2, 100\]"):
        G(torch.zeros(2, 100), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match=r"x: expected images \[B, 3, 32, 32\]"):
        D(torch.zeros(2, 3, 64, 64), torch.tensor([0, 1]))


def test_pre_2022_layout_upgrades_to_the_same_outputs(golden):
    facts, G, _D = golden
    new = G.state_dict()
    old = studiogan_downgrade_state_dict(new)
    assert "blocks.0.0.bn1.embed0.weight" in old and "blocks.0.0.bn1.gain.weight" not in old
    assert old["blocks.0.0.bn1.embed0.weight"].shape == (10, 256)  # nn.Embedding: [num_classes, C]
    assert len(old) == len(new)
    up = studiogan_upgrade_state_dict(old)
    assert list(up) == list(new) and all(torch.equal(up[k], new[k]) for k in new)
    assert studiogan_upgrade_state_dict(new).keys() == new.keys()  # current layout: unchanged
    G2 = StudioGANResNetGenerator()
    G2.load_state_dict(up, strict=True)
    y, z = _labels(facts), recipe_z(4, 128)
    with torch.no_grad():
        torch.testing.assert_close(G2.eval()(z, y), G(z, y), rtol=0, atol=0)

    # the old formula, BN(h) (1 + embed0[y]) + embed1[y] on class indices, is the new one on one-hot labels
    bn = G.blocks[1][0].bn2
    h = torch.randn(4, 256, 8, 8)
    e0, e1 = old["blocks.1.0.bn2.embed0.weight"], old["blocks.1.0.bn2.embed1.weight"]
    ref = bn.bn(h) * (1 + e0[y])[:, :, None, None] + e1[y][:, :, None, None]
    with torch.no_grad():
        torch.testing.assert_close(bn(h, F.one_hot(y, 10).float()), ref, rtol=1e-6, atol=1e-6)
    assert (e0[y] - e0[y].mean(0)).abs().max() > 0.01  # the labels do select different rows


def test_upgrade_rejects_a_malformed_table():
    with pytest.raises(IntegrityError, match=r"state_dict\['blocks.0.0.bn1.embed0.weight'\]: expected a 2-d"):
        studiogan_upgrade_state_dict({"blocks.0.0.bn1.embed0.weight": torch.zeros(3)})


def test_read_studiogan_checkpoint(tmp_path, golden):
    facts, _G, D = golden
    path = tmp_path / "model=D-best-weights-step=1.pth"
    wrapped = {f"module.{k}": v for k, v in D.state_dict().items()}
    torch.save({"state_dict": wrapped, "optimizer": {"state": {}, "param_groups": []}, "step": 1}, path)
    sd = read_studiogan_checkpoint(torch.load(path, weights_only=True))
    assert list(sd) == list(D.state_dict())
    D2 = StudioGANResNetDiscriminator()
    D2.load_state_dict(sd, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(D2.eval()(recipe_x(), _labels(facts)), torch.tensor(facts["D_x"]), rtol=0, atol=TOL)
    assert list(read_studiogan_checkpoint(D.state_dict())) == list(D.state_dict())  # a bare state dict
    with pytest.raises(IntegrityError, match=r"expected a StudioGAN \{'state_dict'"):
        read_studiogan_checkpoint({"state_dict": {"a": 1}})
    with pytest.raises(IntegrityError, match="got NoneType"):
        read_studiogan_checkpoint(None)
