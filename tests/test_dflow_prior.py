"""The fitted Gaussian starting distribution of a Discriminator Flow (``prior="gaussian"``, role ``P``)."""

import json

import pytest
import torch

import latentflow
from latentflow.errors import LatentflowError, OptionError, ShapeError
from latentflow.nets import build
from latentflow.train.dflow import DFlowConfig, train_dflow

pytestmark = pytest.mark.rng_ok  # building networks draws their initial weights from the global RNG


def test_gaussian_prior_fit_reproduces_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 6, generator=g)
    cov = A @ A.T + 0.5 * torch.eye(6)
    mu = torch.randn(6, generator=g)
    n = 200_000
    x = (mu + torch.randn(n, 6, generator=g) @ torch.linalg.cholesky(cov).T).reshape(n, 1, 2, 3)
    P = build("gaussian_prior", shape=[1, 2, 3]).fit(x, eps=1e-6)
    y = P(torch.randn(n, 6, generator=g))
    assert y.shape == (n, 1, 2, 3)
    flat = y.reshape(n, 6)
    # sample mean / covariance of n draws: standard errors sqrt(diag(cov)/n) and about sqrt(2/n)·cov scale
    se = (torch.diag(cov) / n).sqrt()
    assert ((flat.mean(0) - mu).abs() < 6 * se).all()
    rel = (torch.cov(flat.T) - cov).abs().max() / cov.abs().max()
    assert rel < 6 * (2 / n) ** 0.5 * 3
    # the fitted factor is lower-triangular with L Lᵀ = cov + eps I of the sample
    assert torch.equal(P.scale_tril, torch.tril(P.scale_tril))


def test_gaussian_prior_checks_its_inputs():
    P = build("gaussian_prior", shape=[2, 2])
    with pytest.raises(ShapeError, match=r"z must have shape \[n, 4\]"):
        P(torch.zeros(3, 5))
    with pytest.raises(ShapeError, match="x must have shape"):
        P.fit(torch.zeros(10, 3))
    with pytest.raises(ShapeError, match="at least 2 samples"):
        P.fit(torch.zeros(1, 2, 2))
    with pytest.raises(OptionError, match="shape must be"):
        build("gaussian_prior", shape=[0])
    with pytest.raises(OptionError, match="prior must be one of"):
        DFlowConfig(prior="uniform").validate()


def test_train_dflow_with_gaussian_prior_writes_P_and_loads_it(tmp_path):
    cfg = DFlowConfig(
        data="ring8",
        steps=4,
        batch_size=16,
        flow_steps=4,
        eta=2.0,
        prior="gaussian",
        arch_kwargs={"in_dim": 2, "width": 16, "depth": 3},
    )
    train_dflow(cfg, tmp_path, progress=False)
    spec = json.loads((tmp_path / "latentflow.json").read_text())
    assert spec["x0"] == {"prior": "gaussian"} and spec["arch"]["P"]["name"] == "gaussian_prior"
    assert (tmp_path / "P.safetensors").exists()
    pair = latentflow.load(str(tmp_path))
    assert pair.G is None and "P" in pair.extra and pair.meta["x0"]["prior"] == "gaussian"
    x0 = pair.initial_state(20_000, generator=0)
    assert x0.shape == (20_000, 2)
    # ring8: radius-2 ring of 8 modes, centred at 0 -> the fitted prior has mean ≈ 0 and a wide,
    # isotropic covariance (2 per axis plus the modes' spread), unlike N(0, I)
    ring = latentflow.data.toy("ring8").sample(20_000, torch.Generator().manual_seed(1), "cpu")
    assert (x0.mean(0) - ring.mean(0)).abs().max() < 0.1
    assert ((x0.var(0) / ring.var(0)) - 1).abs().max() < 0.1
    a = pair.initial_state(8, generator=3)
    assert torch.equal(a, pair.initial_state(8, generator=3))
    r = pair.refine(n=16, method="dflow", seed=0)
    assert r.x.shape == (16, 2) and torch.isfinite(r.x).all()


def test_trained_spec_needs_P_and_gaussian_prior_together(tmp_path):
    from latentflow.models.trained import validate_trained

    base = {
        "arch": {"D": {"name": "tmlp_d", "kwargs": {"in_dim": 2, "width": 8, "depth": 2}}},
        "d_output": "critic",
        "d_conditioning": "time",
        "recipe": {"trainer": "dflow", "config": {"data": "ring8"}},
    }
    with pytest.raises(LatentflowError, match="go together"):
        validate_trained({**base, "x0": {"prior": "gaussian"}}, "m", source={"kind": "local", "path": str(tmp_path)})
    with pytest.raises(LatentflowError, match="go together"):
        validate_trained(
            {
                **base,
                "arch": {**base["arch"], "P": {"name": "gaussian_prior", "kwargs": {"shape": [2]}}},
                "x0": {"prior": "normal"},
            },
            "m",
            source={"kind": "local", "path": str(tmp_path)},
        )


def test_cli_samples_a_gaussian_prior_dflow_from_its_fitted_x0(tmp_path):
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from latentflow.cli import main

    cfg = DFlowConfig(
        data="grid25",
        steps=3,
        batch_size=16,
        flow_steps=4,
        eta=2.0,
        prior="gaussian",
        arch_kwargs={"in_dim": 2, "width": 16, "depth": 2},
    )
    with torch.random.fork_rng(devices=[]):
        train_dflow(cfg, tmp_path / "m", progress=False)
    out = tmp_path / "s"
    r = CliRunner().invoke(
        main,
        [
            "sample",
            "--model",
            str(tmp_path / "m"),
            "--method",
            "dflow",
            "--num",
            "40",
            "--seed",
            "3",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    s = load_file(str(out / "samples.safetensors"))
    pair = latentflow.load(str(tmp_path / "m"))
    z = torch.randn(40, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(s["x_before"], pair.extra["P"](z))
    assert json.loads((out / "report.json").read_text())["start"] == "x0"


def _write_idx(path, arr):
    import gzip
    import struct

    import numpy as np

    arr = np.asarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def test_mnist32_source_pads_to_32_and_the_seed_preset_trains_on_it(tmp_path, monkeypatch):
    import numpy as np

    from latentflow.data import find_mnist, load_mnist32
    from latentflow.train.data_source import DataSource
    from latentflow.train.dflow import preset

    rs = np.random.RandomState(0)
    for stem, n in (("train", 12), ("t10k", 6)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", rs.randint(1, 256, size=(n, 28, 28)))
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", rs.randint(0, 10, size=(n,)))
    monkeypatch.delenv("LATENTFLOW_MNIST", raising=False)
    with pytest.raises(LatentflowError, match="MNIST not found"):
        find_mnist()
    x, y = load_mnist32("test", tmp_path)
    assert x.shape == (6, 1, 32, 32) and y.shape == (6,)
    assert (x[:, :, :2] == 0).all() and (x[:, :, :, -2:] == 0).all() and (x[:, :, 2:30, 2:30] > 0).all()
    monkeypatch.setenv("LATENTFLOW_MNIST", str(tmp_path))
    d = DataSource("mnist32")
    assert d.shape == (1, 32, 32) and d.images.min() == -1.0 and d.images.max() <= 1.0
    # seed 000's MNIST configuration, shrunk to seconds on a CPU: the same code path as the GPU run
    cfg = preset(
        "mnist32-seed000", device="cpu", steps=2, batch_size=4, flow_steps=3, arch_kwargs={"ch": 4, "n_freq": 4}
    )
    train_dflow(cfg, tmp_path / "m", progress=False)
    pair = latentflow.load(str(tmp_path / "m"))
    assert pair.meta["output_shape"] == [1, 32, 32] and pair.initial_state(3, generator=0).shape == (3, 1, 32, 32)
