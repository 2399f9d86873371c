"""``latentflow.load`` and ``latentflow sample`` on the folders ``latentflow train dflow|scoregan|flowgan|dgd`` write.

Each kind is trained for a few steps on tiny networks (once per module), loaded back, compared weight by
weight with what the trainer returned, and sampled through ``refine`` and the CLI."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import latentflow as lf
from latentflow.cli import main
from latentflow.errors import IntegrityError, ManifestError, OptionError
from latentflow.models import export, list_models
from latentflow.nets import build
from latentflow.train import get_trainer

TINY = {
    "dflow": dict(
        data="grid25", arch_kwargs={"in_dim": 2, "width": 16, "depth": 2}, flow_steps=4, eta=6.0, batch_size=16, steps=3
    ),
    "scoregan": dict(
        data="grid25",
        arch_g_kwargs={"latent_dim": 4, "hidden": [8], "out_dim": 2, "slope": 0.0},
        arch_s_kwargs={"in_dim": 2, "width": 8, "depth": 2},
        latent_dim=4,
        k=2,
        batch_size=16,
        steps=4,
    ),
    "flowgan": dict(
        data="ring8", arch_g_kwargs={"latent_dim": 2, "hidden": [8], "out_dim": 2}, batch_size=16, n_data=16, steps=3
    ),
    "dgd": dict(
        data="ring8",
        arch_kwargs={"in_dim": 2, "width": 8, "depth": 2, "ref_std": 3.0},
        n_levels=3,
        langevin_steps=2,
        batch_size=16,
        steps=3,
    ),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``kind -> (folder, {role: trained module})``; the trainers' global seeding is undone afterwards."""
    root = tmp_path_factory.mktemp("trained")
    out = {}
    with torch.random.fork_rng(devices=[]):
        for kind, kw in TINY.items():
            Config, train = get_trainer(kind)
            folder = root / kind
            ret = train(Config(**kw), str(folder), progress=False)
            modules = {
                "dflow": lambda r: {"D": r},
                "dgd": lambda r: {"D": r},
                "flowgan": lambda r: {"G": r},
                "scoregan": lambda r: {"G": r[0], "S": r[1]},
            }[kind](ret)
            out[kind] = (folder, modules)
    return out


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def cli(args):
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("kind", list(TINY))
def test_load_each_kind_gives_the_trained_weights(trained, kind):
    folder, modules = trained[kind]
    pair = lf.load(folder)
    G, D, meta = pair  # the ModelPair API of G/D pairs still holds
    assert meta["trainer"] == kind and meta["roles"] == [r for r in ("G", "D", "S") if r in modules]
    assert meta["dataset"] == TINY[kind]["data"] and meta["name"] == f"{TINY[kind]['data']}-{kind}"
    assert meta["output_shape"] == [2] and meta["verified"] is False
    assert set(meta["files"]) == set(modules) and all(len(f["sha256"]) == 64 for f in meta["files"].values())
    assert (G is None) == ("G" not in modules) and (D is None) == ("D" not in modules)
    loaded = {"G": G, "D": D, **pair.extra}
    for role, m in modules.items():
        _same_weights(loaded[role], m)
        assert not loaded[role].training and not any(p.requires_grad for p in loaded[role].parameters())
    assert set(pair.extra) == ({"S"} if kind == "scoregan" else set())
    spec = json.loads((folder / "latentflow.json").read_text())
    assert meta["spec"] == spec and json.loads(meta["recipe"])["trainer"] == kind
    if "G" in modules:
        assert pair.latent_dim == TINY[kind]["arch_g_kwargs"]["latent_dim"] and meta["x0"] is None
        assert meta["d_conditioning"] is None and meta["d_output"] is None and meta["sampling"] == {}
    else:
        with pytest.raises(ManifestError, match="has no generator, so no latent"):
            pair.latent_dim
        assert meta["d_conditioning"] == {"dflow": "time", "dgd": "sigma"}[kind]
        assert meta["d_output"] == "logit" and meta["sampling"] == spec["sampling"]
        assert meta["x0"] == {"prior": "normal", "std": 3.0 if kind == "dgd" else 1.0, "shape": [2]}


def test_refine_the_loaded_models_like_the_trained_ones(trained):
    pair = lf.load(trained["dflow"][0])
    x0 = pair.initial_state(64, generator=0)
    torch.testing.assert_close(x0, torch.randn(64, 2, generator=torch.Generator().manual_seed(0)))
    opts = pair.meta["sampling"]["dflow"]
    assert opts == {"eta": 6.0, "steps": 4, "loss": "ns"}
    a = lf.refine(pair.G, pair.D, x0, method="dflow", progress=False, **opts)
    b = lf.refine(None, trained["dflow"][1]["D"], x0, method="dflow", progress=False, **opts)
    assert torch.equal(a.x, b.x) and a.info["n_D_backward"] == 64 * 4

    pair = lf.load(trained["dgd"][0])
    x0 = pair.initial_state(32, generator=1)
    torch.testing.assert_close(x0, 3.0 * torch.randn(32, 2, generator=torch.Generator().manual_seed(1)))
    opts = pair.meta["sampling"]["dg_langevin"]
    assert len(opts["sigmas"]) == 3 and opts["steps"] == 2
    a = lf.refine(None, pair.D, x0, method="dg_langevin", generator=5, progress=False, **opts)
    b = lf.refine(None, trained["dgd"][1]["D"], x0, method="dg_langevin", generator=5, progress=False, **opts)
    assert torch.equal(a.x, b.x) and torch.isfinite(a.x).all()

    pair = lf.load(trained["scoregan"][0])
    z = pair.initial_state(8, generator=2)
    assert z.shape == (8, 4)
    torch.testing.assert_close(pair.G(z), trained["scoregan"][1]["G"](z))
    S, x, sig = pair.extra["S"], torch.zeros(8, 2), torch.full((8,), 0.5)
    torch.testing.assert_close(S(x, sig), trained["scoregan"][1]["S"](x, sig))


def test_cli_samples_each_kind(trained, tmp_path):
    runs = {"dflow": "dflow", "dgd": "dg_langevin", "scoregan": "none", "flowgan": "none"}
    for kind, method in runs.items():
        out = tmp_path / kind
        r = cli(
            [
                "sample",
                "--model",
                str(trained[kind][0]),
                "--method",
                method,
                "--num",
                "40",
                "--seed",
                "3",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        assert r.exit_code == 0, r.output
        assert {p.name for p in out.iterdir()} >= {"samples.safetensors", "samples.png", "report.json"}
        rep = json.loads((out / "report.json").read_text())
        assert rep["method"] == method and rep["metrics"]["after"]["modes"] >= 0
        s = load_file(str(out / "samples.safetensors"))
        assert s["x"].shape == s["x_before"].shape == (40, 2)
        gen = torch.Generator().manual_seed(3)
        if method == "none":
            assert rep["start"] == "generator" and "| metric | generator | none |" in r.output
            z = torch.randn(40, TINY[kind]["arch_g_kwargs"]["latent_dim"], generator=gen)
            torch.testing.assert_close(s["x"], trained[kind][1]["G"](z).detach())
            assert torch.equal(s["x"], s["x_before"]) and torch.equal(s["z"], z)
            assert rep["evaluations_per_sample"] == {
                "n_G_forward": 1,
                "n_G_backward": 0,
                "n_D_forward": 0,
                "n_D_backward": 0,
            }
        else:
            assert rep["start"] == "x0" and "| metric | x0 |" in r.output and "z" not in s
            std = 3.0 if kind == "dgd" else 1.0
            torch.testing.assert_close(s["x_before"], std * torch.randn(40, 2, generator=gen))
            spec = json.loads((trained[kind][0] / "latentflow.json").read_text())["sampling"][method]
            used = rep["result"]["options"]
            assert all(used[k] == pytest.approx(v) for k, v in spec.items()), (used, spec)
    # a CLI option overrides the spec's recommendation
    r = cli(
        [
            "sample",
            "--model",
            str(trained["dflow"][0]),
            "--method",
            "dflow",
            "--steps",
            "2",
            "--num",
            "8",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
            "--json",
        ]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["result"]["options"]["steps"] == 2


@pytest.mark.rng_ok  # `latentflow train` seeds the global RNG for the initial weights
def test_cli_train_then_sample(tmp_path):
    out = tmp_path / "dgd"
    r = cli(
        [
            "train",
            "dgd",
            "--data",
            "ring8",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--quiet",
            "--set",
            'arch_kwargs={"in_dim": 2, "width": 8, "depth": 2, "ref_std": 2.0}',
            "--set",
            "n_levels=2",
            "--set",
            "langevin_steps=3",
        ]
    )
    assert r.exit_code == 0, r.output
    r = cli(
        [
            "sample",
            "--model",
            str(out),
            "--method",
            "dg_langevin",
            "--num",
            "16",
            "--out",
            str(tmp_path / "s"),
            "--quiet",
            "--json",
        ]
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["start"] == "x0" and rep["result"]["options"]["steps"] == 3
    assert rep["evaluations_per_sample"]["n_D_backward"] == 6 and rep["metrics"]["after"]["modes"] >= 0


def test_methods_that_do_not_fit_are_refused_clearly(trained, tmp_path):
    cases = [
        ("dflow", "ddls", ['method "ddls" needs a generator G', "grid25-dflow", 'fit it: "dflow"']),
        ("dflow", "dg_langevin", ['method "dg_langevin" calls D(x) or D(x, sigma)', "time-conditioned D(x, t)"]),
        ("dgd", "dflow", ['method "dflow" calls D(x, t)', "noise-conditioned D(x, sigma)", '"dg_langevin"']),
        (
            "scoregan",
            "ddls",
            ['method "ddls" needs a discriminator D', "scoregan model with G + S", '"none" (no refinement)'],
        ),
        ("flowgan", "dflow", ['method "dflow" needs a discriminator D', "flowgan model with G only"]),
    ]
    for kind, method, needles in cases:
        r = cli(
            [
                "sample",
                "--model",
                str(trained[kind][0]),
                "--method",
                method,
                "--num",
                "4",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        for n in needles:
            assert n in r.output, (n, r.output)
    r = cli(
        [
            "sample",
            "--model",
            str(trained["flowgan"][0]),
            "--method",
            "none",
            "--steps",
            "3",
            "--num",
            "4",
            "--out",
            str(tmp_path / "o"),
            "--quiet",
        ]
    )
    assert r.exit_code == 1 and 'method "none" got unknown option(s) steps' in r.output
    r = cli(
        ["sample", "--model", str(trained["dgd"][0]), "--method", "dflow", "--num", "4", "--out", str(tmp_path / "o")]
    )
    assert not (tmp_path / "o").exists()  # refused before anything is written
    # the manifest listing is untouched by trained folders
    assert [row["name"] for row in json.loads(cli(["models", "--json"]).output)] == list_models()


def _copy(trained, kind, tmp_path, name):
    d = tmp_path / name
    shutil.copytree(trained[kind][0], d)
    return d


def _edit(d, **changes):
    spec = json.loads((d / "latentflow.json").read_text())
    for k, v in changes.items():
        if v is None:
            spec.pop(k)
        else:
            spec[k] = v
    (d / "latentflow.json").write_text(json.dumps(spec))


def test_bad_trained_folders_give_clear_errors(trained, tmp_path):
    d = _copy(trained, "dflow", tmp_path, "unfinished")
    (d / "latentflow.json").unlink()
    with pytest.raises(ManifestError, match=r"unfinished has no latentflow.json: .*training has not finished"):
        lf.load(d)
    d = _copy(trained, "dflow", tmp_path, "nofile")
    (d / "D.safetensors").unlink()
    with pytest.raises(ManifestError, match=r"D file .*nofile/D.safetensors .* does not exist"):
        lf.load(d)
    d = _copy(trained, "scoregan", tmp_path, "corrupt")
    (d / "S.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(IntegrityError, match=r"corrupt/S.safetensors is not a valid safetensors file"):
        lf.load(d)
    d = _copy(trained, "dflow", tmp_path, "badjson")
    (d / "latentflow.json").write_text("{oops")
    with pytest.raises(ManifestError, match="badjson: cannot read latentflow.json"):
        lf.load(d)
    d = _copy(trained, "dgd", tmp_path, "arch")
    _edit(d, arch={"D": {"name": "no_such_d", "kwargs": {}}})
    with pytest.raises(ManifestError, match=r'arch: latentflow.json.arch.D.name: unknown architecture "no_such_d"'):
        lf.load(d)
    d = _copy(trained, "dgd", tmp_path, "kwargs")
    _edit(d, arch={"D": {"name": "nmlp_d", "kwargs": {"in_dim": 2, "width": 9, "depth": 2, "ref_std": 3.0}}})
    with pytest.raises(IntegrityError, match=r"does not fit D of .*kwargs/D.safetensors.*\n.*mis-shaped"):
        lf.load(d)
    cases = {
        "x0": ({"x0": None}, "missing field x0"),
        "cond": ({"d_conditioning": "class"}, "d_conditioning: expected one of time, sigma or null"),
        "field": ({"colour": "red"}, "unknown field.s. colour"),
        "latent": ({"latent": {"dim": 2}}, "latent: does not apply: the model has no generator G"),
        "opts": ({"sampling": {"dflow": {"etta": 1}}}, r"sampling.dflow: unknown option.s. etta"),
        "alone": ({"arch": {"S": {"name": "mlp_den"}}}, "needs a generator G or a discriminator D"),
        "roles": ({"arch": {"D": {"name": "tmlp_d"}, "S": {"name": "mlp_den"}}}, "comes with a generator G"),
    }
    for name, (change, msg) in cases.items():
        d = _copy(trained, "dflow", tmp_path, name)
        _edit(d, **change)
        with pytest.raises(ManifestError, match=f"{name}: latentflow.json.*{msg}"):
            lf.load(d)
    # a folder whose spec names G and D is a pair, validated as strictly as before
    d = _copy(trained, "dflow", tmp_path, "pair")
    _edit(d, arch={"G": {"name": "mlp_g"}, "D": {"name": "tmlp_d"}})
    with pytest.raises(ManifestError, match=r'manifest entry "unnamed": missing field\(s\) latent, output'):
        lf.load(d)
    # trained files are not a (G, D) file pair; export writes pairs only
    folder = trained["scoregan"][0]
    with pytest.raises(ManifestError, match="roles G, S, not a G/D pair; load its folder"):
        lf.load((folder / "G.safetensors", folder / "S.safetensors"))
    with pytest.raises(ManifestError, match="export writes G/D pairs"):
        export(lf.load(folder), tmp_path / "exported")


def test_image_shaped_generator_free_model(tmp_path):
    """The data shape comes from recipe.config.data: (1, 28, 28) for fashion-mnist, range [-1, 1]."""
    with torch.random.fork_rng(devices=[]):
        D = build("tconv28_d", ch=4)
    save_file({k: v.contiguous() for k, v in D.state_dict().items()}, str(tmp_path / "D.safetensors"))
    spec = {
        "arch": {"D": {"name": "tconv28_d", "kwargs": {"ch": 4}}},
        "d_output": "logit",
        "d_conditioning": "time",
        "x0": {"prior": "normal"},
        "sampling": {"dflow": {"eta": 2.0, "steps": 2}},
        "recipe": {"trainer": "dflow", "config": {"data": "fashion-mnist"}},
    }
    (tmp_path / "latentflow.json").write_text(json.dumps(spec))
    pair = lf.load(tmp_path, dtype=torch.float64)
    assert pair.meta["output_shape"] == [1, 28, 28] and pair.meta["output_range"] == [-1.0, 1.0]
    x0 = pair.initial_state(3, generator=0)
    assert x0.shape == (3, 1, 28, 28) and x0.dtype == torch.float64
    res = lf.refine(None, pair.D, x0, method="dflow", progress=False, **pair.meta["sampling"]["dflow"])
    assert res.x.shape == x0.shape and torch.isfinite(res.x).all()
    with pytest.raises(OptionError, match="n must be an int >= 1"):
        pair.initial_state(0)
