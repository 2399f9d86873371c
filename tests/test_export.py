"""latentflow.models.export: files follow the umask; bad architecture kwargs and a latent size the
architecture cannot take are one-line errors raised before anything is written."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from latentflow.errors import LatentflowError, OptionError, ShapeError
from latentflow.models import convert, export, make_pair
from latentflow.nets import build

KW_G = {"latent_dim": 3, "hidden": [8], "out_dim": 2}
KW_D = {"in_dim": 2, "hidden": [8]}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path / "cache"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _pair():
    G, D = build("mlp_g", **KW_G), build("mlp_d", **KW_D)
    return make_pair(
        G,
        D,
        arch_g={"name": "mlp_g", "kwargs": KW_G},
        arch_d={"name": "mlp_d", "kwargs": KW_D},
        d_output="critic",
        output_range=None,
    )


def _modes(folder):
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def test_export_and_convert_follow_the_umask(tmp_path, umask_022):
    assert _modes(export(_pair(), tmp_path / "e")) == {
        "G.safetensors": 0o644,
        "D.safetensors": 0o644,
        "latentflow.json": 0o644,
    }
    p = _pair()
    torch.save({"G": p.G.state_dict(), "D": p.D.state_dict()}, tmp_path / "gd.pt")
    out = convert(tmp_path / "gd.pt", tmp_path / "c", arch_g="mlp_g", arch_d="mlp_d", kwargs_g=KW_G, kwargs_d=KW_D)
    assert set(_modes(out).values()) == {0o644}


def test_export_under_a_stricter_umask(tmp_path):
    old = os.umask(0o077)
    try:
        assert set(_modes(export(_pair(), tmp_path / "e")).values()) == {0o600}
    finally:
        os.umask(old)


def test_kwargs_as_json_text_and_bad_json(tmp_path):
    p = _pair()
    torch.save({"G": p.G.state_dict(), "D": p.D.state_dict()}, tmp_path / "gd.pt")
    out = convert(
        tmp_path / "gd.pt",
        tmp_path / "ok",
        arch_g="mlp_g",
        arch_d="mlp_d",
        kwargs_g='{"latent_dim": 3, "hidden": [8], "out_dim": 2}',
        kwargs_d='{"in_dim": 2, "hidden": [8]}',
    )
    assert (out / "latentflow.json").is_file()
    with pytest.raises(OptionError, match=r"kwargs_g must be a JSON object .*got 'notjson'") as ei:
        convert(tmp_path / "gd.pt", tmp_path / "bad", arch_g="mlp_g", arch_d="mlp_d", kwargs_g="notjson")
    assert "\n" not in str(ei.value)
    with pytest.raises(OptionError, match=r"kwargs_d must be a mapping .*got list"):
        convert(tmp_path / "gd.pt", tmp_path / "bad", arch_g="mlp_g", arch_d="mlp_d", kwargs_g=KW_G, kwargs_d="[1]")
    assert not (tmp_path / "bad").exists()


def test_a_latent_size_the_architecture_cannot_take(tmp_path):
    p = _pair()
    torch.save({"G": p.G.state_dict(), "D": p.D.state_dict()}, tmp_path / "gd.pt")
    with pytest.raises(ShapeError, match=r"latent_dim=5 does not fit G \(mlp_g\), which takes latents of size 3"):
        convert(
            tmp_path / "gd.pt",
            tmp_path / "x",
            arch_g="mlp_g",
            arch_d="mlp_d",
            kwargs_g=KW_G,
            kwargs_d=KW_D,
            latent_dim=5,
        )
    G = build("dcgan32_g", latent_dim=8, ch=4)
    del G.latent_dim  # a G that does not say its latent size
    D = build("dcgan32_d", ch=4)
    with pytest.raises(ShapeError, match=r"latent_dim=5 does not fit G \(dcgan32_g\): G\(z \[1, 5\]\) failed: ") as ei:
        make_pair(
            G,
            D,
            arch_g={"name": "dcgan32_g", "kwargs": {"latent_dim": 8, "ch": 4}},
            arch_d={"name": "dcgan32_d", "kwargs": {"ch": 4}},
            latent_dim=5,
        )
    assert "\n" not in str(ei.value) and isinstance(ei.value, LatentflowError)
    assert not (tmp_path / "x").exists()


def test_pair_metadata_keywords_recorded_and_a_misspelt_one_refused(tmp_path):
    p = _pair()
    spec = p.meta["spec"]
    assert spec["d_output"] == "critic" and spec["output"]["range"] is None and spec["latent"]["prior"] == "normal"
    G, D = build("mlp_g", **KW_G), build("mlp_d", **KW_D)
    arch = dict(arch_g={"name": "mlp_g", "kwargs": KW_G}, arch_d={"name": "mlp_d", "kwargs": KW_D})
    with pytest.raises(TypeError, match="make_pair\\(\\) got an unexpected keyword argument 'lisence'"):
        make_pair(G, D, **arch, lisence="MIT")
    torch.save({"G": G.state_dict(), "D": D.state_dict()}, tmp_path / "gd.pt")
    with pytest.raises(TypeError, match="convert\\(\\) got an unexpected keyword argument 'prio'"):
        convert(
            tmp_path / "gd.pt", tmp_path / "x", arch_g="mlp_g", arch_d="mlp_d", kwargs_g=KW_G, kwargs_d=KW_D, prio="x"
        )
    assert not (tmp_path / "x").exists()
