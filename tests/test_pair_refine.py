"""ModelPair.refine: the Python API runs a loaded model with its recommended settings, as the CLI does."""

import pytest
import torch
from safetensors.torch import load_file

import latentflow as lf
from latentflow import app
from latentflow.errors import OptionError
from latentflow.models import export, make_pair, sampling_options
from latentflow.nets import build

SAMPLING = {"ddls": {"steps": 7, "step_size": 0.02, "noise_scale": 0.05}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        G = build("mlp_g", latent_dim=2, hidden=[16], out_dim=2)
        D = build("mlp_d", in_dim=2, hidden=[16])
    for p in list(G.parameters()) + list(D.parameters()):
        p.data = 0.3 * torch.randn(p.shape, generator=g)
    pair = make_pair(
        G,
        D,
        arch_g={"name": "mlp_g", "kwargs": {"latent_dim": 2, "hidden": [16], "out_dim": 2}},
        arch_d={"name": "mlp_d", "kwargs": {"in_dim": 2, "hidden": [16]}},
        name="tiny-refine",
        latent_dim=2,
        d_output="critic",
        output_range=None,
        output_shape=[2],
        dataset="grid25",
        sampling=SAMPLING,
    )
    out = tmp_path_factory.mktemp("tiny-refine")
    export(pair, out)
    return str(out)


def test_refine_uses_the_recommended_settings_and_matches_the_cli(folder, tmp_path):
    pair = lf.load(folder, device="cpu")
    res = pair.refine(n=30, method="ddls", seed=4, progress=False)
    o = res.info["options"]
    assert (o["steps"], o["step_size"], o["noise_scale"], o["d_output"]) == (7, 0.02, 0.05, "critic")
    # the same samples as `latentflow sample --num 30 --seed 4` (z, then the streams, from one generator)
    app.sample_model(folder, "ddls", num=30, seed=4, device="cpu", out=tmp_path / "o", progress=False)
    s = load_file(str(tmp_path / "o" / "samples.safetensors"))
    torch.testing.assert_close(res.x, s["x"])
    # and as refine by hand: z from the prior with the seed's generator, then the merged options
    gen = torch.Generator().manual_seed(4)
    z = lf.sample_latents(30, 2, generator=gen)
    ref = lf.refine(
        pair.G, pair.D, z, method="ddls", generator=gen, d_output="critic", progress=False, **SAMPLING["ddls"]
    )
    torch.testing.assert_close(res.x, ref.x)
    torch.testing.assert_close(res.z, ref.z)


def test_overrides_go_on_top_and_none_is_a_value(folder):
    pair = lf.load(folder, device="cpu")
    res = pair.refine(n=8, method="ddls", seed=0, steps=2, noise_scale=None, progress=False)
    o = res.info["options"]
    assert o["steps"] == 2 and o["step_size"] == 0.02 and o["noise_scale"] is None
    # a method without a sampling block gets the model's d_output and the method's own defaults
    res = pair.refine(n=8, method="mh", seed=0, k=3, progress=False)
    assert res.info["options"]["d_output"] == "critic" and res.info["options"]["k"] == 3
    # given z: used as is, and refine returns it refined
    z = torch.zeros(5, 2)
    res = pair.refine(z, method="ddls", seed=0, steps=0, progress=False)
    torch.testing.assert_close(res.z, z)


def test_one_merge_rule_for_cli_and_api(folder):
    meta = lf.load(folder, device="cpu").meta
    user = {"steps": 3, "step_size": None}
    cli = app.sampling_options("ddls", meta, user)
    assert cli == sampling_options("ddls", meta, user)
    assert cli == {"steps": 3, "step_size": 0.02, "noise_scale": 0.05, "d_output": "critic", "prior": "normal"}
    api = sampling_options("ddls", meta, user, none_is_unset=False)
    assert api["step_size"] is None and api["steps"] == 3


def test_refine_errors_name_the_argument(folder):
    pair = lf.load(folder, device="cpu")
    with pytest.raises(OptionError, match="pass z .* or n"):
        pair.refine(method="ddls")
    with pytest.raises(OptionError, match=r"n must be None or z.shape\[0\] = 4"):
        pair.refine(torch.zeros(4, 2), n=5)
    with pytest.raises(OptionError, match='Unknown method "ddsl"'):
        pair.refine(n=2, method="ddsl")
    with pytest.raises(OptionError, match="either seed or generator"):
        pair.refine(n=2, seed=0, generator=torch.Generator())
    with pytest.raises(OptionError, match="not class-conditional"):
        pair.refine(n=2, class_label=1, progress=False)


def test_conditional_model_gets_labels(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        kg, kd = dict(z_dim=8, g_conv_dim=4, num_classes=10), dict(d_conv_dim=4, num_classes=10)
        G, D = build("studiogan_resnet32_g", **kg), build("studiogan_resnet32_d", **kd)
    pair = make_pair(
        G,
        D,
        arch_g="studiogan_resnet32_g",
        arch_d="studiogan_resnet32_d",
        kwargs_g=kg,
        kwargs_d=kd,
        name="cond-refine",
        d_output="critic",
    )
    pair = lf.load(export(pair, tmp_path / "cond"), device="cpu")
    res = pair.refine(n=6, method="ddls", seed=0, steps=1, class_label=3, progress=False)
    assert torch.equal(res.y, torch.full((6,), 3))
    res = pair.refine(n=40, method="mh", seed=0, k=2, progress=False)
    # uniform labels drawn from the seed's generator after z, as `latentflow sample --class random`
    gen = torch.Generator().manual_seed(0)
    pair.initial_state(40, generator=gen)
    assert torch.equal(res.y, pair.labels(40, generator=gen))
    assert len(set(res.y.tolist())) > 3
