"""The corrector trainer: a logit D of real vs G(z) for a generator whose own D is useless, written as a
model folder every sampler refines. Affine G (``mlp_g`` without hidden layers) and real data that is the
push-forward of N(m, I), so the optimal logit is known exactly."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import latentflow as lf
from latentflow.cli import main
from latentflow.errors import OptionError, ShapeError
from latentflow.models import export, make_pair
from latentflow.nets import build
from latentflow.train.corrector import CorrectorConfig, default_arch, load_real, train_corrector

pytestmark = pytest.mark.rng_ok  # a trainer seeds the global RNG for the initial weights (torch.manual_seed)

M = torch.tensor([1.2, -0.8])


@pytest.fixture(scope="module")
def affine_model(tmp_path_factory):
    """A folder with an affine G (z -> W z + b) and a D that knows nothing (zero weights)."""
    torch.manual_seed(0)
    G = build("mlp_g", latent_dim=2, hidden=[], out_dim=2)
    with torch.no_grad():
        G.net[0].weight.copy_(torch.tensor([[1.0, 0.4], [-0.2, 0.7]]))
        G.net[0].bias.copy_(torch.tensor([0.3, -0.1]))
    D = build("mlp_d", in_dim=2, hidden=[8])
    for p in D.parameters():
        torch.nn.init.zeros_(p)
    pair = make_pair(
        G,
        D,
        arch_g={"name": "mlp_g", "kwargs": {"latent_dim": 2, "hidden": [], "out_dim": 2}},
        arch_d={"name": "mlp_d", "kwargs": {"in_dim": 2, "hidden": [8]}},
        name="affine",
        latent_dim=2,
        output_shape=[2],
        output_range=None,
    )
    root = tmp_path_factory.mktemp("corrector")
    export(pair, root / "model")
    gen = torch.Generator().manual_seed(1)
    z_real = torch.randn(20000, 2, generator=gen) + M
    with torch.no_grad():
        real = G(z_real)
    np.save(root / "real.npy", real.numpy())
    return root, G


def _exact_logit(G, x):
    """log N(x; W m + b, W Wᵀ) - log N(x; b, W Wᵀ) for the affine G."""
    W, b = G.net[0].weight.detach(), G.net[0].bias.detach()
    P = torch.linalg.inv(W @ W.T)

    def q(v):
        r = x - v
        return -0.5 * ((r @ P) * r).sum(1)

    return q(W @ M + b) - q(b)


def test_corrector_learns_the_density_ratio_and_samplers_use_it(affine_model, tmp_path):
    root, G = affine_model
    cfg = CorrectorConfig(
        model=str(root / "model"),
        real=str(root / "real.npy"),
        steps=600,
        batch_size=256,
        lr=2e-3,
        arch_kwargs={"hidden": [32, 32]},
    )
    _, D = train_corrector(cfg, str(tmp_path / "out"), progress=False)
    pair = lf.load(str(tmp_path / "out"))
    assert pair.meta["d_output"] == "logit" and pair.meta["trainer"] == "corrector"
    assert pair.meta["spec"]["arch"]["D"]["name"] == "mlp_d"
    # G is written back unchanged
    for a, b in zip(G.state_dict().values(), pair.G.state_dict().values()):
        assert torch.equal(a, b)
    # the logit is the log density ratio: within 0.2 (mean abs; measured 0.06) where the two laws have their mass
    gen = torch.Generator().manual_seed(5)
    z = torch.cat([torch.randn(2000, 2, generator=gen), torch.randn(2000, 2, generator=gen) + M])
    with torch.no_grad():
        x = G(z)
        err = (pair.D(x) - _exact_logit(G, x)).abs().mean()
    spread = _exact_logit(G, x).std()
    assert float(err) < 0.2 and float(spread) > 1.0
    # and DGflow (KL) with the corrector moves G's latents onto N(m, I): the mean within 0.15 of m
    z0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(7))
    res = lf.refine(pair.G, pair.D, z0, method="dgflow", steps=20, step_size=0.05, gamma=0.0, progress=False)
    assert torch.all((res.z.mean(0) - M).abs() < 0.15), res.z.mean(0)
    assert torch.all((z0.mean(0) - M).abs() > 0.7)


def test_cli_train_corrector_writes_a_loadable_model(affine_model, tmp_path):
    root, G = affine_model
    out = tmp_path / "cli"
    r = CliRunner().invoke(
        main,
        [
            "train",
            "corrector",
            "--model",
            str(root / "model"),
            "--real",
            str(root / "real.npy"),
            "--steps",
            "20",
            "--set",
            'arch_kwargs={"hidden": [8]}',
            "--out",
            str(out),
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    pair = lf.load(str(out))
    assert pair.G is not None and pair.D is not None
    spec = json.loads((out / "latentflow.json").read_text())
    assert spec["d_output"] == "logit"
    assert json.loads(spec["recipe"])["config"]["steps"] == 20
    # --real / --model belong to the corrector only
    r = CliRunner().invoke(main, ["train", "gan", "--real", "x.npy", "--out", str(tmp_path / "g"), "--dry-run"])
    assert r.exit_code != 0 and "unknown config field(s) real" in r.output


def test_default_architecture_by_shape():
    assert default_arch((2,)) == ("mlp_d", {"in_dim": 2, "hidden": [256, 256]})
    assert default_arch((1, 28, 28))[0] == "dcgan28_d"
    assert default_arch((3, 32, 32)) == ("dcgan32_d", {"channels": 3, "norm": "sn"})
    assert default_arch((3, 64, 64))[0] == "dcgan64_d"
    with pytest.raises(OptionError, match=r"no default corrector architecture for samples of shape \[3, 48, 48\]"):
        default_arch((3, 48, 48))
    # the chosen D takes the shape and returns one logit per sample
    for shape in ((2,), (1, 28, 28), (3, 32, 32)):
        name, kw = default_arch(shape)
        torch.manual_seed(0)
        D = build(name, **kw).eval()
        assert D(torch.zeros(3, *shape)).shape == (3,)


def test_real_files_and_errors(tmp_path):
    x = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "img.npy", x.numpy())
    r = load_real(str(tmp_path / "img.npy"), (1, 28, 28), (-1.0, 1.0))
    assert r.shape == (5, 1, 28, 28) and float(r.min()) >= -1 and float(r.max()) <= 1
    torch.save({"x": torch.zeros(4, 2)}, tmp_path / "r.pt")
    assert load_real(str(tmp_path / "r.pt"), (2,)).shape == (4, 2)
    with pytest.raises(
        ShapeError, match=r"real samples must have shape \[N, 3\] \(the generator's output\); got \[4, 2\]"
    ):
        load_real(str(tmp_path / "r.pt"), (3,))
    with pytest.raises(OptionError, match="is neither"):
        load_real(str(tmp_path / "missing.npy"), (2,))
    (tmp_path / "r.csv").write_text("1,2\n")
    with pytest.raises(OptionError, match=r"must be \.safetensors, \.npy, \.npz or \.pt"):
        load_real(str(tmp_path / "r.csv"), (2,))
    with pytest.raises(OptionError, match="model is required"):
        CorrectorConfig(real="grid25").validate()
    with pytest.raises(OptionError, match="steps must be a positive int"):
        CorrectorConfig(model="m", real="grid25", steps=0).validate()
