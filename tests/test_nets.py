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
