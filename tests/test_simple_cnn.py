"""xyfJASON/GANs-Implementations SimpleCNN: the exact checkpoint layout and the golden outputs of the upstream
modules filled by the recipe of tests/golden_recipe.py (facts in tests/data/layouts/xyfjason_sngan_cifar10.json)."""

from __future__ import annotations

import copy

import pytest
import torch
from golden_recipe import TOL, layout_of, load_layout, own_rng, recipe_state_dict, recipe_x, recipe_z  # noqa: F401  (own_rng: autouse)

from latentflow.errors import IntegrityError, ShapeError
from latentflow.nets.simple_cnn import SimpleCNNDiscriminator, SimpleCNNGenerator, read_xyfjason_checkpoint

LAYOUT = "xyfjason_sngan_cifar10.json"


@pytest.fixture(scope="module")
def golden():
    """``(facts, G, D)``: the modules filled by the recipe, in eval mode (shared: copy before changing them)."""
    facts = load_layout(LAYOUT)
    with torch.random.fork_rng(devices=[]):
        G = SimpleCNNGenerator(z_dim=100, dim=256, dim_mults=[4, 2, 1], out_dim=3, with_bn=True, with_tanh=True)
        D = SimpleCNNDiscriminator(in_dim=3, dim=256, dim_mults=[1, 2, 4], with_bn=True, with_sn=True)
    G.load_state_dict(recipe_state_dict(facts["G_keys"]), strict=True)
    D.load_state_dict(recipe_state_dict(facts["D_keys"]), strict=True)
    return facts, G.eval(), D.eval()


def test_keys_and_shapes_are_the_checkpoints():
    facts = load_layout(LAYOUT)
    G, D = SimpleCNNGenerator(), SimpleCNNDiscriminator(with_sn=True)
    assert layout_of(G) == list(facts["G_keys"].items())
    assert layout_of(D) == list(facts["D_keys"].items())


def test_golden_outputs(golden):
    facts, G, D = golden
    z = recipe_z(4, 100)
    with torch.no_grad():
        x = G(z)
        d_x, d_gz = D(recipe_x()), D(x)
    assert list(x.shape) == facts["G_out_shape"] and list(d_x.shape) == facts["D_out_shape"]
    torch.testing.assert_close(x.mean(dim=(1, 2, 3)), torch.tensor(facts["G_out_per_sample_mean"]), rtol=0, atol=TOL)
    torch.testing.assert_close(x.flatten()[:8], torch.tensor(facts["G_out_first8"]), rtol=0, atol=TOL)
    torch.testing.assert_close(d_x, torch.tensor(facts["D_x"]), rtol=0, atol=TOL)
    torch.testing.assert_close(d_gz, torch.tensor(facts["D_Gz"]), rtol=0, atol=TOL)
    # the D values are ~0.027: make sure the comparison is not vacuous (a zeroed last layer would give 0.1 v bias)
    assert (d_gz - d_gz.mean()).abs().max() > 10 * TOL


def test_eval_mode_runs_no_power_iteration_and_train_mode_does(golden):
    D = copy.deepcopy(golden[2])
    u = D.layers[0][2].parametrizations.weight[0]._u
    with torch.no_grad():  # move u off the singular vector, where a power step would stay put
        u.copy_(torch.nn.functional.normalize(u + 0.5 * torch.linspace(-1, 1, u.numel()), dim=0))
    u0 = u.clone()
    with torch.no_grad():
        D(recipe_x())
    assert torch.equal(u, u0)
    D.train()
    with torch.no_grad():
        D(recipe_x())
    assert not torch.allclose(u, u0, atol=1e-3)


def test_batch_of_one_gives_shape_b(golden):
    _facts, G, D = golden
    with torch.no_grad():
        out = D(G(recipe_z(1, 100)))
    assert out.shape == (1,)


@pytest.mark.parametrize("with_sn,with_bn", [(False, True), (True, False), (False, False)])
def test_other_runs_build(with_sn, with_bn):
    """gan_cifar10 / wgan_gp_cifar10 (no SN), and variants without BatchNorm: keys follow the same names."""
    D = SimpleCNNDiscriminator(with_sn=with_sn, with_bn=with_bn).eval()
    G = SimpleCNNGenerator(with_bn=with_bn).eval()
    keys = list(D.state_dict())
    assert ("first_conv.weight" in keys) == (not with_sn)
    assert ("first_conv.parametrizations.weight.original" in keys) == with_sn
    assert ("layers.1.0.running_mean" in keys) == with_bn and "layers.0.0.running_mean" not in keys
    assert ("layers.0.0.running_mean" in G.state_dict()) == with_bn
    with torch.no_grad():
        x = G(torch.randn(2, 100))
        assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1
        assert D(x).shape == (2,)


def test_shape_errors():
    G, D = SimpleCNNGenerator().eval(), SimpleCNNDiscriminator().eval()
    with pytest.raises(ShapeError, match=r"z: expected \[B, 100\]"):
        G(torch.zeros(2, 64))
    with pytest.raises(ShapeError, match=r"x: expected images \[B, 3, H, W\]"):
        D(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ShapeError, match="giving 25 outputs each"):
        D(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ShapeError, match="dim_mults"):
        SimpleCNNGenerator(dim_mults=[])


def test_read_xyfjason_checkpoint(tmp_path, golden):
    facts, G, D = golden
    path = tmp_path / "model.pt"
    torch.save(dict(G=G.state_dict(), D=D.state_dict()), path)
    g_sd, d_sd = read_xyfjason_checkpoint(torch.load(path, weights_only=True))
    G2 = SimpleCNNGenerator()
    D2 = SimpleCNNDiscriminator(with_sn=True)
    G2.load_state_dict(g_sd, strict=True)
    D2.load_state_dict(d_sd, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(D2.eval()(recipe_x()), torch.tensor(facts["D_x"]), rtol=0, atol=TOL)
    with pytest.raises(
        IntegrityError,
        match=r"expected an xyfJASON dict\(G=state_dict, D=state_dict\), got a dict "
        r"with keys \['state_dict'\]",
    ):
        read_xyfjason_checkpoint({"state_dict": {}})
    with pytest.raises(IntegrityError, match="got list"):
        read_xyfjason_checkpoint([])
