"""Class labels: per-chain ``y`` travels with ``z`` through every chunk and sampler; a conditional model given
no labels samples every class uniformly; the app, the CLI and ``refine_to_disk`` carry the labels."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import latentflow as lf
from latentflow.errors import OptionError, ShapeError
from latentflow.rng import sample_labels

K = 10


class CondG(nn.Module):
    """``G(z, y) = z[:, :2] * 0.3 + m_y``, with class means ``m_y`` on a circle; checks every call's labels."""

    num_classes = K

    def __init__(self):
        super().__init__()
        a = torch.arange(K, dtype=torch.float32) * (2 * torch.pi / K)
        self.register_buffer("means", 3 * torch.stack([a.cos(), a.sin()], 1))
        self.calls = 0

    def forward(self, z, y):
        assert y.dtype == torch.long and y.shape == (z.shape[0],)
        self.calls += 1
        return 0.3 * z[:, :2] + self.means[y]


class CondD(nn.Module):
    """``D(x, y) = -||x - m_y||² / 2``: a logit that depends on the label (wrong labels give big negatives)."""

    def __init__(self, means):
        super().__init__()
        self.register_buffer("means", means)

    def forward(self, x, y):
        assert y.dtype == torch.long and y.shape == (x.shape[0],)
        return -0.5 * (x - self.means[y]).pow(2).sum(1)


@pytest.fixture
def model():
    G = CondG()
    return G, CondD(G.means)


def chi_square(y: torch.Tensor, k: int) -> float:
    counts = torch.bincount(y, minlength=k).double()
    expected = y.numel() / k
    return float(((counts - expected) ** 2 / expected).sum())


# χ²(9) 0.999 quantile: a uniform label draw exceeds it with probability 1e-3
CHI2_9_999 = 27.88


def test_default_labels_cover_all_classes_uniformly(model):
    G, D = model
    z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    res = lf.refine(G, D, z, method="ddls", steps=2, step_size=0.01, seed=0, progress=False)
    assert res.y.shape == (1000,) and res.y.dtype == torch.long
    assert torch.bincount(res.y, minlength=K).min() > 0
    assert chi_square(res.y, K) < CHI2_9_999
    # the chains were sampled under their own labels: x = G(z, y) for the final z
    torch.testing.assert_close(res.x, G(res.z, res.y))
    assert res.info["options"]["num_classes"] == K and "y" not in res.info["options"]
    # the same labels as the public helper draws (per-chain streams of the same generator)
    torch.testing.assert_close(res.y, sample_labels(1000, K, generator=torch.Generator().manual_seed(0)))


def test_sample_labels_is_uniform_and_split_invariant():
    y = sample_labels(20000, 7, generator=3)
    # χ²(6) 0.999 quantile 22.46
    assert y.min() == 0 and y.max() == 6 and chi_square(y, 7) < 22.46
    torch.testing.assert_close(
        torch.cat([sample_labels(5000, 7, generator=3), sample_labels(15000, 7, generator=3, chain_offset=5000)]), y
    )


@pytest.mark.parametrize(
    "method,opts",
    [
        ("ddls", dict(steps=3, step_size=0.05, mala=True)),
        ("dot", dict(steps=3, lr=0.05)),
        ("drs", dict(pilot=200, gamma_percentile=50.0)),
        ("mh", dict(k=5)),
        ("dgflow", dict(steps=3, step_size=0.05)),
        ("ex2mcmc", dict(steps=2, n_particles=4, mala_steps=1, step_size=0.05)),
    ],
)
def test_labels_survive_chunking_and_chain_offset_splits(model, method, opts):
    G, D = model
    z = torch.randn(30, 2, generator=torch.Generator().manual_seed(1))
    full = lf.refine(G, D, z, method=method, seed=5, progress=False, **opts)
    for bs in (1, 7, None):
        r = lf.refine(G, D, z, method=method, seed=5, progress=False, batch_size=bs, **opts)
        assert torch.equal(r.y, full.y)
        torch.testing.assert_close(r.x, full.x)
    a = lf.refine(G, D, z[:11], method=method, seed=5, progress=False, **opts)
    b = lf.refine(G, D, z[11:], method=method, seed=5, progress=False, chain_offset=11, **opts)
    assert torch.equal(torch.cat([a.y, b.y]), full.y)
    if method in ("ddls", "mh", "dgflow", "ex2mcmc"):  # per-chain maths and streams: the split is the full run
        torch.testing.assert_close(torch.cat([a.x, b.x]), full.x)
    torch.testing.assert_close(full.x, G(full.z, full.y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "method,opts",
    [
        ("drs", dict(pilot=200, gamma_percentile=50.0)),
        ("mh", dict(k=8)),
        ("ddls", dict(steps=2)),
        ("dot", dict(steps=2)),
        ("dgflow", dict(steps=2)),
        ("ex2mcmc", dict(steps=2, n_particles=6)),
    ],
)
def test_given_labels_are_kept_and_proposals_use_them(model, method, opts):
    G, D = model
    z = torch.randn(40, 2, generator=torch.Generator().manual_seed(2))
    y = torch.arange(40) % K
    res = lf.refine(G, D, z, method=method, y=y, seed=0, progress=False, **opts)
    assert torch.equal(res.y, y)
    # every output is G(z_out, y[b]): a proposal under another label would sit near another class mean
    torch.testing.assert_close(res.x, G(res.z, y), rtol=1e-5, atol=1e-5)
    nearest = torch.cdist(res.x, G.means).argmin(1)
    assert torch.equal(nearest, y)
    const = lf.refine(G, D, z, method=method, y=3, seed=0, progress=False, **opts)
    assert torch.equal(const.y, torch.full((40,), 3))


def test_plain_callables_get_y_when_given():
    seen = []

    def G(z, y):
        seen.append(y.clone())
        return z + y[:, None].float()

    def D(x, y):
        return -(x - y[:, None].float()).pow(2).sum(1)

    z = torch.zeros(6, 2)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    res = lf.refine(G, D, z, method="ddls", y=y, steps=1, step_size=1e-3, seed=0, progress=False, batch_size=4)
    assert torch.equal(res.y, y) and all(s.shape[0] <= 4 for s in seen)
    assert torch.equal(torch.cat(seen[-2:]), y)  # the last step's two chunks carried their rows' labels
    # no labels and no num_classes: called as G(z), D(x) (an unconditional callable)
    res = lf.refine(lambda z: z, lambda x: -x.pow(2).sum(1), z, method="ddls", steps=1, seed=0, progress=False)
    assert res.y is None
    # num_classes declared for a plain callable: labels drawn for it
    res = lf.refine(G, D, z, method="ddls", steps=1, seed=0, progress=False, num_classes=3)
    assert res.y.shape == (6,) and int(res.y.max()) < 3


def test_bad_labels_are_refused(model):
    G, D = model
    z = torch.zeros(4, 2)
    with pytest.raises(ShapeError, match=r"y must have one label per chain, shape \(4,\); got shape \(3,\)"):
        lf.refine(G, D, z, y=torch.zeros(3, dtype=torch.long), steps=1, progress=False)
    with pytest.raises(OptionError, match="y must be integer class labels"):
        lf.refine(G, D, z, y=torch.zeros(4), steps=1, progress=False)
    with pytest.raises(OptionError, match=r"y must hold class labels in \[0, 9\]; got values 0\.\.10"):
        lf.refine(G, D, z, y=torch.tensor([0, 1, 2, 10]), steps=1, progress=False)


def test_studiogan_nets_sample_with_labels():
    from latentflow.nets import build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G = build("studiogan_resnet32_g", z_dim=16, g_conv_dim=4, num_classes=10).eval()
        D = build("studiogan_resnet32_d", d_conv_dim=4, num_classes=10).eval()
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    for method, opts in (
        ("ddls", dict(steps=2, d_output="critic")),
        ("mh", dict(k=3, d_output="critic")),
        ("drs", dict(pilot=20, gamma_percentile=0.0, d_output="critic")),
    ):
        res = lf.refine(G, D, z, method=method, seed=0, progress=False, **opts)
        assert res.x.shape == (6, 3, 32, 32) and res.y.shape == (6,) and torch.isfinite(res.x).all()
    with torch.no_grad():
        torch.testing.assert_close(res.x, G(res.z, res.y))


def _conditional_folder(tmp_path):
    from latentflow.models import export, make_pair
    from latentflow.nets import build

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
        name="cond-test",
        d_output="critic",
    )
    return export(pair, tmp_path / "cond")


def test_sample_model_and_cli_write_labels(tmp_path):
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from latentflow import app
    from latentflow.cli import main

    folder = _conditional_folder(tmp_path)
    rep = app.sample_model(
        str(folder),
        "ddls",
        num=12,
        seed=0,
        device="cpu",
        out=tmp_path / "o1",
        options={"steps": 1},
        progress=False,
        class_label=3,
    )
    s = load_file(str(tmp_path / "o1" / "samples.safetensors"))
    assert torch.equal(s["y"], torch.full((12,), 3)) and rep["classes"]["class"] == 3
    assert rep["classes"]["counts"][3] == 12
    r = CliRunner().invoke(
        main,
        [
            "sample",
            "--model",
            str(folder),
            "--method",
            "mh",
            "-n",
            "40",
            "--opt",
            "k=2",
            "--class",
            "random",
            "--device",
            "cpu",
            "--quiet",
            "--json",
            "--out",
            str(tmp_path / "o2"),
        ],
    )
    assert r.exit_code == 0, r.output
    s = load_file(str(tmp_path / "o2" / "samples.safetensors"))
    assert s["y"].shape == (40,) and len(set(s["y"].tolist())) > 3
    assert json.loads(r.output)["classes"]["class"] == "random"
    r = CliRunner().invoke(
        main, ["sample", "--model", str(folder), "-n", "4", "--class", "ten", "--out", str(tmp_path / "o3")]
    )
    assert r.exit_code != 0 and "--class" in r.output
    with pytest.raises(OptionError, match="not class-conditional"):
        app.sample_model("grid25-wgangp", "ddls", num=4, class_label=1, device="cpu", progress=False)
    with pytest.raises(OptionError, match=r"class_label must be an int in \[0, 9\]"):
        app.sample_model(str(folder), "ddls", num=4, class_label=10, device="cpu", progress=False)


def test_refine_to_disk_stores_labels(model, tmp_path):
    G, D = model
    z = torch.randn(25, 2, generator=torch.Generator().manual_seed(3))
    y = torch.arange(25) % K
    idx = lf.refine_to_disk(G, D, z, "mh", tmp_path / "a", chunk=10, seed=0, k=3, progress=False, y=y)
    got = lf.load_shards(tmp_path / "a")
    assert torch.equal(got["y"], y) and len(idx["shards"]) == 3
    torch.testing.assert_close(got["x"], G(got["z"], y))
    # other labels are another run (refused without overwrite); default labels are drawn per block
    with pytest.raises(OptionError, match="other settings"):
        lf.refine_to_disk(G, D, z, "mh", tmp_path / "a", chunk=10, seed=0, k=3, progress=False, y=(y + 1) % K)
    lf.refine_to_disk(G, D, z, "mh", tmp_path / "b", chunk=10, seed=0, k=3, progress=False)
    got = lf.load_shards(tmp_path / "b")
    assert got["y"].shape == (25,)
    torch.testing.assert_close(got["x"], G(got["z"], got["y"]))


def test_pair_labels_helper(tmp_path):
    pair = lf.load(_conditional_folder(tmp_path))
    assert pair.num_classes == 10
    assert torch.equal(pair.labels(5, 2), torch.full((5,), 2))
    y = pair.labels(200, generator=0)
    assert torch.equal(y, sample_labels(200, 10, generator=0))
    res = lf.refine(
        pair.G,
        pair.D,
        pair.initial_state(40, generator=0),
        y=y[:40],
        method="drs",
        pilot=50,
        gamma_percentile=0.0,
        d_output="critic",
        seed=0,
        progress=False,
    )
    assert torch.equal(res.y, y[:40])


def test_data_space_samplers_pass_labels_last(model):
    G, D = model
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(4))
    y = torch.arange(8) % K
    res = lf.refine(G, D, z, method="dg_langevin", y=y, steps=3, step_size=1e-3, seed=0, progress=False)
    assert torch.equal(res.y, y)
    # no label term would pull x away from its class mean: D(x, y) = -||x - m_y||²/2 pulls it in
    assert (res.x - G.means[y]).norm(dim=1).mean() < (G(z, y) - G.means[y]).norm(dim=1).mean()
    seen = []

    def Dt(x, t, yy):  # a time-conditioned, class-conditional D(x, t, y)
        seen.append(yy)
        return -(x - G.means[yy]).pow(2).sum(1)

    x0 = torch.zeros(8, 2)
    res = lf.refine(None, Dt, x0, method="dflow", y=y, steps=4, eta=0.5, seed=0, progress=False)
    assert torch.equal(res.y, y) and all(torch.equal(s, y[: s.shape[0]]) for s in seen)  # the probe: 2 rows
    assert (res.x - G.means[y]).norm(dim=1).max() < (x0 - G.means[y]).norm(dim=1).min()
