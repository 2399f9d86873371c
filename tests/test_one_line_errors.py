"""Errors a user meets, each one line (exit code 1, no traceback, on the command line) naming the argument
and what was expected, raised before any compute: unwritable outputs, wrong option types, seeds out of range,
unknown names (with a close match), paths that do not exist, latents that do not fit G."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_pair import ARCH_D, ARCH_G, cli, one_line_error, tiny_modules

import latentflow as lf
from latentflow.errors import LatentflowError, OptionError, ShapeError


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if ``latentflow sample`` gets as far as loading a model or sampling."""
    import latentflow.app.sample.sample as s

    def boom(*a, **k):
        raise AssertionError("compute started before the arguments were checked")

    monkeypatch.setattr(s, "_run", boom)


def test_out_that_is_a_file_or_unwritable(tiny_model, tmp_path, no_compute):
    f = tmp_path / "f"
    f.write_text("x")
    one_line_error(cli(["sample", "--model", tiny_model, "--out", str(f), "--quiet"]), "is a file")
    one_line_error(cli(["sample", "--model", tiny_model, "--out", str(f / "sub"), "--quiet"]), "cannot be created")
    if Path("/proc/self").is_dir():  # writable by os.access for root, but no file can be created there
        one_line_error(
            cli(["sample", "--model", tiny_model, "--out", "/proc/latentflow-out", "--quiet"]), "not writable"
        )
    one_line_error(cli(["export", "grid25-wgangp", "--out", str(f)]), "is a file")


def test_opt_of_the_wrong_type(tiny_model, tmp_path, no_compute):
    one_line_error(
        cli(["sample", "--model", tiny_model, "--opt", "mala=maybe", "--out", str(tmp_path / "o")]),
        "mala must be bool",
        "'maybe'",
    )
    one_line_error(
        cli(["sample", "--model", tiny_model, "--opt", "steps=1.5", "--out", str(tmp_path / "o")]), "steps must be int"
    )
    with pytest.raises(OptionError, match="steps must be int"):
        lf.refine(lambda z: z, lambda x: x[:, 0], torch.zeros(2, 2), "ddls", steps="3")


def test_seed_out_of_range(tiny_model, tmp_path, no_compute):
    for seed in ("-1", str(2**63)):
        one_line_error(
            cli(["sample", "--model", tiny_model, "--seed", seed, "--out", str(tmp_path / "o")]),
            "seed must be an int in 0..2**63-1",
        )
    one_line_error(cli(["train", "gan", "--seed", "-5", "--out", str(tmp_path / "t")]), "seed must be an int")
    with pytest.raises(OptionError, match="seed must be in"):
        lf.refine(lambda z: z, lambda x: x[:, 0], torch.zeros(2, 2), "ddls", seed=2**70)


def test_convert_kwargs_not_json_and_a_latent_size_that_does_not_fit(tmp_path):
    G, D = tiny_modules()
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


def test_train_set_of_the_wrong_type_or_shape(tmp_path):
    base = ["train", "gan", "--out", str(tmp_path / "t"), "--steps", "2", "--quiet"]
    one_line_error(cli(base + ["--set", "betas=[0.5]"]), "betas", "must be 2 numbers", "[0.5]")
    one_line_error(cli(base + ["--set", "lr_g=abc"]), "lr_g", "must be float", "'abc'")
    assert not (tmp_path / "t").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_load_on_cuda_without_cuda(tiny_model, tmp_path, monkeypatch):
    with pytest.raises(OptionError, match='device "cuda": CUDA is not available'):
        lf.load("grid25-wgangp", device="cuda")
    monkeypatch.setenv("LATENTFLOW_DISABLE_CUDA", "1")
    one_line_error(
        cli(["sample", "--model", tiny_model, "--device", "cuda", "--out", str(tmp_path / "o")]),
        "CUDA is not available",
    )


def test_z_whose_dtype_or_latent_size_does_not_match_g():
    pair = lf.load("grid25-wgangp")
    z = lf.sample_latents(4, 2, generator=0)
    with pytest.raises(ShapeError, match=r"latent size 3 but G expects 2"):
        lf.refine(pair.G, pair.D, torch.zeros(4, 3), "ddls", steps=1, seed=0, progress=False)
    with pytest.raises(ShapeError, match=r"dtype torch.float64.*G's parameters are torch.float32"):
        lf.refine(pair.G, pair.D, z.double(), "ddls", steps=1, seed=0, progress=False)
    with pytest.raises(ShapeError, match="floating-point"):
        lf.refine(pair.G, pair.D, z.long(), "ddls", steps=1, seed=0, progress=False)


def test_G_none_for_a_method_that_needs_a_generator():
    needs = [m for m, info in lf.methods().items() if info.needs.generator == "required"]
    assert {"ddls", "drs", "mh"} <= set(needs)
    calls = []
    D = lambda x: calls.append(1) or x[:, 0]  # noqa: E731
    for m in needs:
        with pytest.raises(OptionError, match=f'method "{m}" needs a generator G.*got G=None'):
            lf.refine(None, D, torch.zeros(3, 2), m, progress=False)
    assert not calls  # refused before any evaluation


def test_sample_latents_with_a_non_int_count():
    for args in ((2.5, 2), (2, 2.5), (True, 2), ("3", 2)):
        with pytest.raises(OptionError, match="sample_latents: (n|dim) must be an int"):
            lf.sample_latents(*args)
    with pytest.raises(OptionError, match="n >= 1"):
        lf.sample_latents(0, 2)


def test_unknown_names_get_a_close_match(tiny_model, tmp_path):
    one_line_error(
        cli(["sample", "--model", "grid25-wgangpp", "--out", str(tmp_path / "o")]),
        'Unknown model "grid25-wgangpp"',
        'Did you mean "grid25-wgangp"?',
    )
    one_line_error(
        cli(["sample", "--model", tiny_model, "--opt", "stepz=3", "--out", str(tmp_path / "o")]),
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


def test_a_path_that_does_not_exist_says_so(tmp_path):
    missing = tmp_path / "nope"
    one_line_error(
        cli(["sample", "--model", str(missing), "--out", str(tmp_path / "o")]), "no such folder or file", "nope"
    )
    with pytest.raises(LatentflowError, match="no such folder or file") as ei:
        lf.load(str(missing))
    assert "Unknown model" not in str(ei.value)
