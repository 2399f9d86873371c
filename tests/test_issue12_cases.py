"""Every case of "nothing silent", reproduced as a user meets it (the CLI through click's runner, the Python
API as documented): one test per case, named after it. ``case1`` .. ``case8`` are the silent wrong results;
``err_*`` are the errors that must be one line (exit code 1, no traceback) and be raised before any compute.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import latentflow as lf
from latentflow.cli import main
from latentflow.errors import DivergenceError, LatentflowError, OptionError, ShapeError
from latentflow.models import export, make_pair
from latentflow.nets import build

ARCH_G = {"name": "mlp_g", "kwargs": {"latent_dim": 2, "hidden": [16], "out_dim": 2}}
ARCH_D = {"name": "mlp_d", "kwargs": {"in_dim": 2, "hidden": [16]}}


def _tiny_modules():
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # module init draws from the global RNG; keep it untouched
        G = build("mlp_g", **ARCH_G["kwargs"])
        D = build("mlp_d", **ARCH_D["kwargs"])
    for p in list(G.parameters()) + list(D.parameters()):
        p.data = 0.3 * torch.randn(p.shape, generator=g)
    return G.eval(), D.eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    G, D = _tiny_modules()
    pair = make_pair(
        G,
        D,
        arch_g=ARCH_G,
        arch_d=ARCH_D,
        name="tiny",
        latent_dim=2,
        d_output="critic",
        output_range=None,
        output_shape=[2],
        dataset="grid25",
        sampling={"ddls": {"steps": 7, "step_size": 0.01}},
    )
    out = tmp_path_factory.mktemp("tiny")
    export(pair, out)
    return str(out)


def cli(args):
    return CliRunner().invoke(main, args)


def one_line_error(r, *needles):
    """Exit code 1 and exactly one line ``error: ...`` containing every needle; no traceback."""
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if ``latentflow sample`` gets as far as loading a model or sampling."""
    import latentflow.app.sample as s

    def boom(*a, **k):
        raise AssertionError("compute started before the arguments were checked")

    monkeypatch.setattr(s, "_run", boom)


# -- the silent wrong results ---------------------------------------------------------------------


def test_case1_total_divergence_exits_nonzero_with_advice_and_leaves_no_report(tiny, tmp_path):
    out = tmp_path / "o"
    ok = cli(["sample", "--model", tiny, "-n", "20", "--out", str(out), "--quiet"])
    assert ok.exit_code == 0, ok.output
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = cli(
        ["sample", "--model", tiny, "-n", "20", "--steps", "30", "--step-size", "1e6", "--out", str(out), "--quiet"]
    )
    line = one_line_error(r, "20 of 20 chains diverged", "To avoid this, reduce step_size", 'on_divergence="warn"')
    assert "initial state" not in line
    # the previous set is untouched (no report with NaN was written over it), and nothing is left beside it
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    # on_divergence="warn" keeps the run: its report is strict JSON, non-finite numbers as null with a reason
    r = cli(
        [
            "sample",
            "--model",
            tiny,
            "-n",
            "20",
            "--steps",
            "30",
            "--step-size",
            "1e6",
            "--out",
            str(out),
            "--quiet",
            "--opt",
            "on_divergence=warn",
        ]
    )
    assert r.exit_code == 0, r.output
    text = (out / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    rep = json.loads(text)
    assert rep["result"]["n_diverged"] == 20


def test_case1_nan_generator_at_step_0_is_blamed_on_the_model():
    G, D = _tiny_modules()
    bad = lambda z: G(z) * float("nan")  # noqa: E731
    z = lf.sample_latents(8, 2, generator=0)
    with pytest.raises(DivergenceError) as ei:
        lf.refine(bad, D, z, "ddls", steps=3, seed=0, progress=False, d_output="critic")
    msg = str(ei.value)
    assert "non-finite values on the initial state of 8 chain(s)" in msg
    assert "check the model and z, not the step size" in msg and "reduce step_size" not in msg


@pytest.mark.rng_ok  # a trainer seeds the global RNG for weight init (torch.manual_seed)
def test_case2_training_that_produces_nan_exits_nonzero_and_keeps_the_last_finite_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "gan",
        "--steps",
        "40",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "lr_g=1e9",
        "--set",
        "lr_d=1e9",
        "--set",
        "n_critic=1",
        "--set",
        'arch_g_kwargs={"latent_dim": 2, "hidden": [8], "out_dim": 2}',
        "--set",
        'arch_d_kwargs={"in_dim": 2, "hidden": [8]}',
    ]
    with torch.random.fork_rng(devices=[]):
        r = cli(args)
    line = one_line_error(r, "training diverged at step", "non-finite loss")
    assert not (out / "G.safetensors").exists()  # no final model with NaN weights
    ck = out / "checkpoint.safetensors"
    if ck.exists():  # a checkpoint, when one was written, holds only finite weights
        assert all(bool(v.isfinite().all()) for v in load_file(str(ck)).values() if v.is_floating_point())
    assert "lr_g" in line


def test_case3_nonfinite_d_is_defined_and_reported_in_drs_mh_and_dot():
    # D is NaN for x0 > 1 and +inf for x0 < -1.5 (a +inf logit means "accept")
    def D(x):
        d = -(x**2).sum(1)
        d = torch.where(x[:, 0] > 1, torch.full_like(d, float("nan")), d)
        return torch.where(x[:, 0] < -1.5, torch.full_like(d, float("inf")), d)

    G = lambda z: z  # noqa: E731
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    drs = lf.refine(G, D, z, "drs", gamma_percentile=None, pilot=500, seed=0, progress=False)
    assert drs.x.shape == (200, 2) and not (drs.x[:, 0] > 1).any()  # exactly B rows, none where D is NaN
    assert drs.info["n_nonfinite_d"] > 0
    first_inf = z[:, 0] < -1.5
    assert torch.equal(drs.x[first_inf], z[first_inf])  # +inf on the first proposal: kept
    mh = lf.refine(G, D, z, "mh", k=20, seed=0, progress=False)
    assert mh.info["n_nonfinite_d"] > 0 and not (mh.x[:, 0] > 1).any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the critic -x0 moves every chain away from the NaN region x0 > 1
        dot = lf.refine(
            None,
            lambda x: torch.where(x[:, 0] > 1, torch.full_like(x[:, 0], float("nan")), -x[:, 0]),
            z,
            "dot",
            space="target",
            steps=5,
            lr=0.1,
            seed=0,
            progress=False,
        )
    nan_rows = z[:, 0] > 1
    assert torch.equal(dot.diverged, nan_rows) and (dot.info["diverged_step"][nan_rows] == 0).all()  # per row
    assert bool((dot.x[~nan_rows, 0] < z[~nan_rows, 0]).all())  # the other chains are not frozen


def test_case4_samples_do_not_depend_on_chunking_or_on_a_split_across_calls():
    G, D = _tiny_modules()
    z = lf.sample_latents(24, 2, generator=3)
    opts = dict(steps=5, step_size=0.05, d_output="critic", mala=True, seed=7, progress=False)
    ref = lf.refine(G, D, z, "ddls", **opts)
    for bs in (1, 7):
        torch.testing.assert_close(lf.refine(G, D, z, "ddls", batch_size=bs, **opts).x, ref.x, rtol=1e-4, atol=1e-4)
    a = lf.refine(G, D, z[:10], "ddls", **opts)  # "another process": rows 10..23
    b = lf.refine(G, D, z[10:], "ddls", chain_offset=10, **opts)
    torch.testing.assert_close(torch.cat([a.x, b.x]), ref.x, rtol=1e-4, atol=1e-4)
    assert torch.equal(torch.cat([a.info["accept_rate"], b.info["accept_rate"]]), ref.info["accept_rate"])


def test_case5_a_plain_function_d_around_a_train_mode_module_warns_and_a_4d_d_output_is_accepted():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    stats = net[1].running_mean.clone()
    z = lf.sample_latents(16, 2, generator=0)
    with pytest.warns(UserWarning, match="train mode"):
        a = lf.refine(lambda v: v, lambda x: net(x).view(-1, 1, 1, 1), z, "ddls", steps=3, seed=0, progress=False)
    assert torch.equal(net[1].running_mean, stats) and net.training  # statistics untouched, mode restored
    b = lf.refine(lambda v: v, net.eval(), z, "ddls", steps=3, seed=0, progress=False)
    torch.testing.assert_close(a.x, b.x)


def test_case6_refine_to_disk_resume_refuses_the_shards_of_another_run(tmp_path):
    grid, roll = lf.load("grid25-wgangp"), lf.load("swissroll-wgangp")
    out = tmp_path / "run"
    opts = dict(steps=2, step_size=0.01, progress=False, chunk=8, seed=0)
    lf.refine_to_disk(grid.G, grid.D, 16, "ddls", out, **opts)
    x_grid = lf.load_shards(out)["x"]
    with pytest.raises(OptionError, match="other settings"):
        lf.refine_to_disk(roll.G, roll.D, 16, "ddls", out, **opts)
    assert torch.equal(lf.load_shards(out)["x"], x_grid)
    # the same G and D but another option is another run too
    with pytest.raises(OptionError, match="other settings"):
        lf.refine_to_disk(grid.G, grid.D, 16, "ddls", out, **{**opts, "steps": 3})


def test_case7_sample_outputs_are_one_set_and_a_concurrent_run_is_refused(tiny, tmp_path, monkeypatch):
    import latentflow.app.sample as s

    out = tmp_path / "o"
    assert cli(["sample", "--model", tiny, "-n", "10", "--out", str(out), "--quiet", "--seed", "1"]).exit_code == 0
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    real = s.write_json

    def killed(*a, **k):  # the samples and the picture are written, then the run dies before the report
        raise KeyboardInterrupt

    monkeypatch.setattr(s, "write_json", killed)
    r = cli(["sample", "--model", tiny, "-n", "10", "--out", str(out), "--quiet", "--seed", "2"])
    assert r.exit_code != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old  # never new samples beside an old report
    monkeypatch.setattr(s, "write_json", real)
    # a second run while the first holds the lock is refused, before any compute
    lock = tmp_path / ".o.lock"
    lock.write_text(json.dumps({"pid": __import__("os").getpid(), "host": __import__("socket").gethostname()}))
    one_line_error(cli(["sample", "--model", tiny, "-n", "10", "--out", str(out), "--quiet"]), "is writing")
    lock.unlink()


def test_case8_models_reports_the_files_on_disk_not_the_manifest(monkeypatch, tmp_path):
    import latentflow.models.table as table

    r = cli(["models", "--json"])
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["grid25-wgangp"]["checkpoints"] == "verified"  # the bundled files, hashed now
    r = cli(["models"])
    assert "| grid25-wgangp |" in r.output and "verified" in r.output.split("| grid25-wgangp |")[1].splitlines()[0]
    bad = tmp_path / "tampered.safetensors"
    bad.write_bytes(b"not the file the manifest hashed")
    monkeypatch.setattr(table, "local_path", lambda entry, role: bad)
    rows = {row["name"]: row for row in json.loads(cli(["models", "--json"]).output)}
    assert rows["grid25-wgangp"]["checkpoints"] == "mismatch"
    line = cli(["models"]).output.split("| grid25-wgangp |")[1].splitlines()[0]
    assert "MISMATCH" in line and "verified" not in line


# -- errors that are one line, before any compute ---------------------------------------------------


def test_err_out_that_is_a_file_or_unwritable(tiny, tmp_path, no_compute):
    f = tmp_path / "f"
    f.write_text("x")
    one_line_error(cli(["sample", "--model", tiny, "--out", str(f), "--quiet"]), "is a file")
    one_line_error(cli(["sample", "--model", tiny, "--out", str(f / "sub"), "--quiet"]), "cannot be created")
    if Path("/proc/self").is_dir():  # writable by os.access for root, but no file can be created there
        one_line_error(cli(["sample", "--model", tiny, "--out", "/proc/latentflow-out", "--quiet"]), "not writable")
    one_line_error(cli(["export", "grid25-wgangp", "--out", str(f)]), "is a file")


def test_err_opt_of_the_wrong_type(tiny, tmp_path, no_compute):
    one_line_error(
        cli(["sample", "--model", tiny, "--opt", "mala=maybe", "--out", str(tmp_path / "o")]),
        "mala must be bool",
        "'maybe'",
    )
    one_line_error(
        cli(["sample", "--model", tiny, "--opt", "steps=1.5", "--out", str(tmp_path / "o")]), "steps must be int"
    )
    with pytest.raises(OptionError, match="steps must be int"):
        lf.refine(lambda z: z, lambda x: x[:, 0], torch.zeros(2, 2), "ddls", steps="3")


def test_err_seed_out_of_range(tiny, tmp_path, no_compute):
    for seed in ("-1", str(2**63)):
        one_line_error(
            cli(["sample", "--model", tiny, "--seed", seed, "--out", str(tmp_path / "o")]),
            "seed must be an int in 0..2**63-1",
        )
    one_line_error(cli(["train", "gan", "--seed", "-5", "--out", str(tmp_path / "t")]), "seed must be an int")
    with pytest.raises(OptionError, match="seed must be in"):
        lf.refine(lambda z: z, lambda x: x[:, 0], torch.zeros(2, 2), "ddls", seed=2**70)


def test_err_convert_kwargs_not_json_and_a_latent_size_that_does_not_fit(tmp_path):
    G, D = _tiny_modules()
    src = tmp_path / "pair.pt"
    torch.save({"netG": G.state_dict(), "netD": D.state_dict()}, src)
    base = [
        "convert",
        str(src),
        "--out",
        str(tmp_path / "c"),
        "--arch-g",
        "mlp_g",
        "--arch-d",
        "mlp_d",
        "--kwargs-d",
        json.dumps(ARCH_D["kwargs"]),
    ]
    one_line_error(cli(base + ["--kwargs-g", "notjson"]), "--kwargs-g must be JSON", "'notjson'")
    kg = json.dumps(ARCH_G["kwargs"])
    one_line_error(
        cli(base + ["--kwargs-g", kg, "--latent-dim", "5"]), "latent_dim=5 does not fit G", "latents of size 2"
    )
    one_line_error(
        cli(base + ["--kwargs-g", json.dumps({**ARCH_G["kwargs"], "latent_dim": 3})]), "does not fit G", "mis-shaped"
    )
    assert not (tmp_path / "c").exists()
    assert cli(base + ["--kwargs-g", kg]).exit_code == 0


def test_err_train_set_of_the_wrong_type_or_shape(tmp_path):
    base = ["train", "gan", "--out", str(tmp_path / "t"), "--steps", "2", "--quiet"]
    one_line_error(cli(base + ["--set", "betas=[0.5]"]), "betas", "must be 2 numbers", "[0.5]")
    one_line_error(cli(base + ["--set", "lr_g=abc"]), "lr_g", "must be float", "'abc'")
    assert not (tmp_path / "t").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_err_load_on_cuda_without_cuda(tiny, tmp_path, monkeypatch):
    with pytest.raises(OptionError, match='device "cuda": CUDA is not available'):
        lf.load("grid25-wgangp", device="cuda")
    monkeypatch.setenv("LATENTFLOW_DISABLE_CUDA", "1")
    one_line_error(
        cli(["sample", "--model", tiny, "--device", "cuda", "--out", str(tmp_path / "o")]), "CUDA is not available"
    )


def test_err_z_whose_dtype_or_latent_size_does_not_match_g():
    pair = lf.load("grid25-wgangp")
    z = lf.sample_latents(4, 2, generator=0)
    with pytest.raises(ShapeError, match=r"latent size 3 but G expects 2"):
        lf.refine(pair.G, pair.D, torch.zeros(4, 3), "ddls", steps=1, seed=0, progress=False)
    with pytest.raises(ShapeError, match=r"dtype torch.float64.*G's parameters are torch.float32"):
        lf.refine(pair.G, pair.D, z.double(), "ddls", steps=1, seed=0, progress=False)
    with pytest.raises(ShapeError, match="floating-point"):
        lf.refine(pair.G, pair.D, z.long(), "ddls", steps=1, seed=0, progress=False)


def test_err_G_none_for_a_method_that_needs_a_generator():
    needs = [m for m, info in lf.methods().items() if info.needs.generator == "required"]
    assert {"ddls", "drs", "mh"} <= set(needs)
    calls = []
    D = lambda x: calls.append(1) or x[:, 0]  # noqa: E731
    for m in needs:
        with pytest.raises(OptionError, match=f'method "{m}" needs a generator G.*got G=None'):
            lf.refine(None, D, torch.zeros(3, 2), m, progress=False)
    assert not calls  # refused before any evaluation


def test_err_sample_latents_with_a_non_int_count():
    for args in ((2.5, 2), (2, 2.5), (True, 2), ("3", 2)):
        with pytest.raises(OptionError, match="sample_latents: (n|dim) must be an int"):
            lf.sample_latents(*args)
    with pytest.raises(OptionError, match="n >= 1"):
        lf.sample_latents(0, 2)


def test_err_unknown_names_get_a_close_match(tiny, tmp_path):
    one_line_error(
        cli(["sample", "--model", "grid25-wgangpp", "--out", str(tmp_path / "o")]),
        'Unknown model "grid25-wgangpp"',
        'Did you mean "grid25-wgangp"?',
    )
    one_line_error(
        cli(["sample", "--model", tiny, "--opt", "stepz=3", "--out", str(tmp_path / "o")]),
        "unknown option(s) stepz",
        'Did you mean "steps"?',
    )
    r = cli(["sample", "--method", "dddls"])  # a usage error of click (exit code 2), with the suggestion
    assert r.exit_code == 2 and 'Did you mean "ddls"?' in r.output and "Traceback" not in r.output
    r = cli(["train", "gan", "--out", str(tmp_path / "t"), "--set", "lr_gg=1"])
    assert r.exit_code == 2 and 'Did you mean "lr_g"?' in r.output
    with pytest.raises(OptionError, match='Did you mean "ddls"'):
        lf.refine(None, None, torch.zeros(2, 2), "ddsl")
    with pytest.raises(OptionError, match='Did you mean "steps"'):
        lf.refine(None, None, torch.zeros(2, 2), "ddls", stepz=1)
    with pytest.raises(LatentflowError, match='Did you mean "grid25-wgangp"'):
        lf.load("grid25-wgangq")


def test_err_a_path_that_does_not_exist_says_so(tmp_path):
    missing = tmp_path / "nope"
    one_line_error(
        cli(["sample", "--model", str(missing), "--out", str(tmp_path / "o")]), "no such folder or file", "nope"
    )
    with pytest.raises(LatentflowError, match="no such folder or file") as ei:
        lf.load(str(missing))
    assert "Unknown model" not in str(ei.value)
