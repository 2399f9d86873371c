"""Trainer infrastructure: resume after a kill is bit-exact, checkpoints round-trip, bad configs fail clearly."""

import json

import pytest
import torch

from latentflow.errors import OptionError
from latentflow.train import get_trainer
from latentflow.train._loop import Run

pytestmark = pytest.mark.rng_ok


TINY = {
    "gan": dict(
        data="ring8",
        steps=6,
        batch_size=16,
        n_critic=1,
        arch_g_kwargs={"latent_dim": 2, "hidden": [16], "out_dim": 2},
        arch_d_kwargs={"in_dim": 2, "hidden": [16]},
    ),
    "dflow": dict(
        data="ring8", steps=6, batch_size=16, flow_steps=4, arch_kwargs={"in_dim": 2, "width": 16, "depth": 3}
    ),
    "dflow-reuse": dict(
        data="ring8",
        steps=7,
        batch_size=16,
        flow_steps=4,
        reuse=3,
        ema=0.9,
        time_sampling="uniform",
        arch_kwargs={"in_dim": 2, "width": 16, "depth": 3},
    ),
    "dflow-ipm": dict(
        data="ring8",
        steps=6,
        batch_size=16,
        flow_steps=4,
        loss="ipm",
        arch_kwargs={"in_dim": 2, "width": 16, "depth": 3},
    ),
    "scoregan": dict(
        data="ring8",
        steps=6,
        batch_size=16,
        k=2,
        latent_dim=4,
        arch_g_kwargs={"latent_dim": 4, "hidden": [16], "out_dim": 2, "slope": 0.0},
        arch_s_kwargs={"in_dim": 2, "width": 16, "depth": 3},
    ),
    "scoregan-ema": dict(
        data="ring8",
        steps=6,
        batch_size=16,
        k=2,
        latent_dim=4,
        ema=0.9,
        arch_g_kwargs={"latent_dim": 4, "hidden": [16], "out_dim": 2, "slope": 0.0},
        arch_s_kwargs={"in_dim": 2, "width": 16, "depth": 3},
    ),
    "flowgan": dict(
        data="ring8", steps=6, batch_size=16, n_data=16, arch_g_kwargs={"latent_dim": 2, "hidden": [16], "out_dim": 2}
    ),
    "dgd": dict(
        data="ring8", steps=6, batch_size=16, arch_kwargs={"in_dim": 2, "width": 16, "depth": 3, "ref_std": 3.0}
    ),
}


def _kind(name):
    return name.split("-")[0]


def _weights(result):
    mods = result if isinstance(result, tuple) else (result,)
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in mods]


@pytest.mark.parametrize("name", sorted(TINY))
def test_resume_after_kill_is_bit_identical(tmp_path, name):
    Config, train = get_trainer(_kind(name))
    full = _weights(train(Config(**TINY[name]), tmp_path / "a", progress=False))
    killed = train(Config(**TINY[name]), tmp_path / "b", progress=False, stop_after=3)
    assert not (tmp_path / "b" / "latentflow.json").exists()  # not finished yet
    assert json.loads((tmp_path / "b" / "checkpoint.json").read_text())["step"] == 3
    del killed
    torch.manual_seed(999)  # a fresh process would have another global RNG state
    resumed = _weights(train(Config(**TINY[name]), tmp_path / "b", progress=False))
    assert (tmp_path / "b" / "latentflow.json").exists()
    for a, b in zip(full, resumed):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == TINY[name]["steps"]


def test_checkpoint_round_trip(tmp_path):
    from latentflow.nets.time_cond import TimeMLPDiscriminator
    from latentflow.train.dflow import DFlowConfig

    torch.manual_seed(0)
    D = TimeMLPDiscriminator(width=8, depth=2)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    D(torch.randn(4, 2), torch.rand(4)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    torch.rand(3, generator=gen)
    cfg = DFlowConfig(steps=10)
    run = Run(tmp_path, cfg, {"D": D}, {"D": opt}, gen, progress=False)
    run.step = 7
    run.save()
    D2 = TimeMLPDiscriminator(width=8, depth=2, seed=3)  # other embedding frequencies: must be overwritten
    opt2 = torch.optim.Adam(D2.parameters(), lr=1e-3)
    gen2 = torch.Generator().manual_seed(0)
    run2 = Run(tmp_path, cfg, {"D": D2}, {"D": opt2}, gen2, progress=False)
    assert run2.step == 7
    for k, v in D.state_dict().items():
        assert torch.equal(v, D2.state_dict()[k]), k
    assert torch.equal(gen.get_state(), gen2.get_state())
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    for i in s1:
        for k in s1[i]:
            assert torch.equal(torch.as_tensor(s1[i][k]), torch.as_tensor(s2[i][k]))
    with pytest.raises(OptionError, match="different config"):
        Run(tmp_path, DFlowConfig(steps=10, eta=3.0), {"D": D2}, {"D": opt2}, gen2, progress=False)


BAD = [
    ("dflow", dict(loss="wgan"), "loss must be one of"),
    ("dflow", dict(flow_steps=0), "flow_steps must be a positive int"),
    ("dflow", dict(eta=-1.0), "eta must be"),
    ("dflow", dict(betas=(0.5,)), "betas"),
    ("dflow", dict(gp_weight=-1.0), "gp_weight"),
    ("dflow", dict(ema=1.0), "ema must be a decay"),
    ("dflow", dict(reuse=0), "reuse must be a positive int"),
    ("dflow", dict(time_sampling="random"), "time_sampling must be"),
    ("scoregan", dict(ema=-0.1), "ema must be a decay"),
    ("scoregan", dict(sigma_min=10.0, sigma_max=1.0), "sigma_min must be < sigma_max"),
    ("scoregan", dict(k=0), "k must be a positive int"),
    ("scoregan", dict(dsm_weight="karras"), "dsm_weight"),
    ("flowgan", dict(kernel="laplace"), "kernel must be one of"),
    ("flowgan", dict(eps=0.0), "eps must be > 0"),
    ("flowgan", dict(bandwidth=0.0), "bandwidth"),
    ("dgd", dict(arch_kwargs={"in_dim": 2}), "ref_std"),
    ("dgd", dict(steps=0), "steps must be a positive int"),
]


@pytest.mark.parametrize("kind,kw,msg", BAD)
def test_bad_configs_raise_option_error(tmp_path, kind, kw, msg):
    Config, train = get_trainer(kind)
    with pytest.raises(OptionError, match=msg):
        Config(**kw).validate()
    with pytest.raises(OptionError, match=msg):
        train(Config(**kw), tmp_path, progress=False)


def test_unknown_dataset(tmp_path):
    Config, train = get_trainer("dflow")
    with pytest.raises(OptionError, match="Unknown dataset"):
        train(Config(data="cifar7", steps=1), tmp_path, progress=False)


def test_checkpoint_from_before_a_new_config_field_resumes_while_it_keeps_its_default(tmp_path):
    Config, train = get_trainer("dflow")
    cfg = Config(**TINY["dflow"])
    train(cfg, tmp_path, progress=False, stop_after=2)
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    del meta["config"]["ema"]  # as written by a version without the field
    (tmp_path / "checkpoint.json").write_text(json.dumps(meta))
    train(Config(**TINY["dflow"]), tmp_path, progress=False, stop_after=1)
    with pytest.raises(OptionError, match="ema"):
        train(Config(**{**TINY["dflow"], "ema": 0.5}), tmp_path, progress=False)
