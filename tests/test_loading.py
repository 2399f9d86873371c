"""latentflow.models.loading / resolve: one-line errors for a device the machine lacks, a mistyped model
name (with a close-match suggestion) and a path that does not exist."""

from __future__ import annotations

import pytest
import torch

import latentflow
from latentflow.errors import ManifestError, OptionError
from latentflow.models import load
from latentflow.models.loading import check_device


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_one_option_error():
    with pytest.raises(OptionError, match=r'device "cuda": CUDA is not available on this machine') as ei:
        load("grid25-wgangp", device="cuda")
    assert "\n" not in str(ei.value)


def test_bad_device_strings():
    check_device("cpu")
    with pytest.raises(OptionError, match=r"device must be a torch device .*got 'gpu0'"):
        check_device("gpu0")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n:
        with pytest.raises(OptionError, match=f"has {n} CUDA device"):
            check_device(f"cuda:{n}")


def test_unknown_name_gets_a_close_match():
    with pytest.raises(ManifestError, match=r'Unknown model "grid25-wgan".*Did you mean "grid25-wgangp"\?'):
        latentflow.load("grid25-wgan")
    with pytest.raises(ManifestError) as ei:
        load("zzzzzz")
    assert "Did you mean" not in str(ei.value)


@pytest.mark.parametrize("ref", ["runs/no-such-run", "./nothing-here", "~/nope-latentflow-xyz", "model.safetensors"])
def test_a_missing_path_says_no_such_folder_or_file(ref):
    with pytest.raises(ManifestError, match=r"no such folder or file: ") as ei:
        load(ref)
    assert "Unknown model" not in str(ei.value)


def test_one_record_type_for_pairs_and_trained_folders(tmp_path):
    from latentflow.models import ModelEntry, get_entry, resolve
    from latentflow.models.trained import validate_trained

    pair = get_entry("grid25-wgangp")
    assert pair.is_pair and pair.roles == ("G", "D") and pair.latent_dim == 2 and pair.raw is None
    assert resolve(pair) is pair
    dflow = validate_trained(
        {
            "arch": {"D": {"name": "tmlp_d", "kwargs": {"in_dim": 2}}},
            "d_output": "logit",
            "d_conditioning": "time",
            "x0": {"std": 1.0},
            "dataset": "grid25",
        },
        "test",
        source={"kind": "local", "root": str(tmp_path)},
    )
    assert isinstance(dflow, ModelEntry) and not dflow.is_pair and dflow.roles == ("D",)
    assert dflow.latent_dim is None and dflow.x0 == {"prior": "normal", "std": 1.0, "shape": [2]}
    assert dflow.spec()["d_conditioning"] == "time" and "files" not in dflow.spec()
