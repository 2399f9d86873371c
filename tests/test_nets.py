"""latentflow.nets: the registry (close-match hints, re-registration) and the package's place at the bottom
(it imports torch and latentflow.errors only)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from latentflow import nets
from latentflow.errors import ManifestError
from latentflow.nets import ARCHITECTURES, build, register_arch

NETS = Path(nets.__file__).resolve().parent


@pytest.fixture(autouse=True)
def _keep_global_rng():
    with torch.random.fork_rng(devices=[]):  # building a module draws its initial weights
        yield


def test_every_family_registers_and_builds():
    expected = {
        "mlp_g",
        "mlp_d",
        "dcgan28_g",
        "dcgan28_d",
        "dcgan32_g",
        "dcgan32_d",
        "dcgan64_g",
        "dcgan64_d",
        "sngan_resnet32_g",
        "sngan_resnet32_d",
        "sngan_cnn32_g",
        "sngan_cnn32_d",
        "tmlp_d",
        "nmlp_d",
        "mlp_den",
        "tconv28_d",
        "tconv28_den",
    }
    assert expected <= set(ARCHITECTURES)
    assert isinstance(build("mlp_g", latent_dim=3, hidden=[4], out_dim=2), nn.Module)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ManifestError, match=r'Unknown architecture "dcgan32g".*Did you mean "dcgan32_g"\?'):
        build("dcgan32g")


def test_registration_of_a_different_class_under_a_taken_name_is_refused():
    class Other(nn.Module):
        pass

    with pytest.raises(ManifestError, match='"mlp_g" is already registered'):
        register_arch("mlp_g")(Other)
    same = ARCHITECTURES["mlp_g"]
    assert register_arch("mlp_g")(same) is same  # a module reload re-registers the same class


def test_nets_imports_no_other_latentflow_unit_but_errors():
    allowed = {"errors"}
    for path in NETS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                unit = (node.module or "").split(".")[0] or "latentflow"
                assert unit in allowed, f"{path.name} imports latentflow.{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("latentflow"), f"{path.name} imports {node.module}"
        assert len(path.read_text(encoding="utf-8").splitlines()) < 300, path.name


def _tables():
    from latentflow.nets import denoiser28, dflow_images, score_nets, time_cond

    return [
        (time_cond.TimeNetKw, time_cond.TIME_NET_DEFAULTS),
        (time_cond.SigmaNetKw, score_nets.SIGMA_NET_DEFAULTS),
        (score_nets.SigmaMLPKw, score_nets.SIGMA_MLP_DEFAULTS),
        (time_cond.SigmaNetKw, denoiser28.DENOISER28_DEFAULTS),
        (dflow_images.TimeConvKw, dflow_images.TIME_CONV_DEFAULTS),
    ]


@pytest.mark.parametrize("declared,defaults", _tables(), ids=lambda v: getattr(v, "__name__", "defaults"))
def test_every_shared_keyword_has_one_default_of_its_declared_type(declared, defaults):
    import typing

    hints = typing.get_type_hints(declared)
    assert set(defaults) == set(hints) == declared.__optional_keys__
    for k, v in defaults.items():
        assert isinstance(v, hints[k]), (k, v)


# the keywords recorded in checkpoints, with the defaults they had when those were written: a trained folder
# that records only some of them is rebuilt with these
DOCUMENTED = {
    "tmlp_d": dict(in_dim=2, width=512, depth=4, n_freq=64, freq_scale=16.0, slope=0.2, init_std=0.02, seed=0),
    "nmlp_d": dict(in_dim=2, width=512, depth=4, n_freq=64, freq_scale=16.0, init_std=0.02, ref_std=0.0),
    "mlp_den": dict(width=512, depth=4, n_freq=64, freq_scale=16.0, slope=0.2, init_std=0.0, sigma_data=0.5),
    "tconv28_d": dict(channels=1, ch=32, n_freq=64, freq_scale=16.0, slope=0.2, init_std=0.02, seed=0),
    "tconv28_den": dict(channels=1, ch=16, n_freq=32, freq_scale=16.0, sigma_data=0.5, seed=0),
    "den_mlp": dict(in_dim=2, width=128, depth=4, n_freq=32, freq_scale=4.0, sigma_data=0.5, x_freq=0, x_scale=1.0),
    "dg_mlp": dict(in_dim=2, width=128, depth=4, n_freq=32, freq_scale=4.0, sigma_data=0.5, seed=0, x_freq=0),
    "dg_conv28": dict(channels=1, ch=16, n_freq=32, freq_scale=4.0, sigma_data=0.5, seed=0),
    "tconv_d": dict(size=28, ch=32, embed="fourier", n_freq=64, freq_scale=1.0, n_knots=17, init="orthogonal")
    | dict(gain=1.41, slope=0.2, down="stride", seed=0),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_conditioned_nets_keep_their_keywords_and_defaults(name):
    g = torch.Generator().manual_seed(1)
    shape = (3, 1, 28, 28) if "conv" in name else (3, 2)
    x, c = torch.randn(shape, generator=g), torch.rand(3, generator=g) + 0.1  # c: a time in [0, 1] or a noise level

    def made(**kw):
        torch.manual_seed(0)
        net = build(name, **kw)
        with torch.no_grad():
            return net.state_dict(), net(x, c)

    (implicit, out), (explicit, out_explicit) = made(), made(**DOCUMENTED[name])
    assert list(implicit) == list(explicit)
    for k in implicit:
        assert torch.equal(implicit[k], explicit[k]), k
    assert torch.equal(out, out_explicit)  # slope, sigma_data, ref_std ... hold no weights
    changed = made(seed=1)[0]
    assert not all(torch.equal(implicit[k], changed[k]) for k in implicit)  # the keywords are not ignored


@pytest.mark.parametrize("name,cls", [("dg_mlp", "NoiseDiscMLP"), ("tconv_d", "TimeConvDiscriminator")])
def test_a_keyword_the_net_does_not_take_is_refused_naming_the_net(name, cls):
    with pytest.raises(ManifestError, match=rf"{cls}\.__init__\(\) got an unexpected keyword argument 'slop'"):
        build(name, slop=0.2)
