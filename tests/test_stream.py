"""``refine_to_disk`` run keys (which G and D, which options), refusal on mismatch, no stale index,
and file modes under the umask. The equality-with-``refine`` tests are in test_speed.py."""
import os

import pytest
import torch

import latentflow as lf
from latentflow import stream
from latentflow.errors import OptionError

OPTS = dict(steps=2, step_size=0.01, progress=False)


@pytest.fixture(scope="module")
def toys():
    return lf.load("grid25-wgangp"), lf.load("swissroll-wgangp")


def test_a_swissroll_run_into_a_finished_grid25_folder_is_refused(toys, tmp_path):
    grid, roll = toys
    out = tmp_path / "run"
    idx = stream.refine_to_disk(grid.G, grid.D, 16, "ddls", out, chunk=8, seed=0, **OPTS)
    # the same latent size and options: only the models differ, and the key sees it
    assert grid.latent_dim == roll.latent_dim
    with pytest.raises(OptionError, match="other settings.*new folder.*overwrite=True"):
        stream.refine_to_disk(roll.G, roll.D, 16, "ddls", out, chunk=8, seed=0, **OPTS)
    assert stream.load_shards(out)["x"].shape == (16, 2)           # the grid-25 run is untouched
    idx2 = stream.refine_to_disk(roll.G, roll.D, 16, "ddls", out, chunk=8, seed=0, overwrite=True, **OPTS)
    assert idx2["run_key"] != idx["run_key"]
    ref = lf.refine(roll.G, roll.D, lf.sample_latents(16, 2, generator=stream.latent_generator(0))[:8],
                    method="ddls", generator=stream.block_generator(0, 0), **OPTS)
    assert torch.equal(stream.load_shards(out)["x"][:8], ref.x)


def test_the_key_ignores_progress_and_batch_size_but_not_options_or_weights(toys, tmp_path):
    grid, _ = toys
    out = tmp_path / "run"
    a = stream.refine_to_disk(grid.G, grid.D, 8, "ddls", out, chunk=8, seed=0, **OPTS)
    b = stream.refine_to_disk(grid.G, grid.D, 8, "ddls", out, chunk=8, seed=0, batch_size=3,
                              **{**OPTS, "progress": True})
    assert a["run_key"] == b["run_key"]
    with pytest.raises(OptionError, match="other settings"):
        stream.refine_to_disk(grid.G, grid.D, 8, "ddls", out, chunk=8, seed=0, **{**OPTS, "step_size": 0.02})
    ident = stream.model_identity(grid.D)
    assert ident.startswith("module:") and ident == stream.model_identity(grid.D)
    assert stream.model_identity(len) == "callable:builtins.len"
    assert stream.model_identity(None) == "none"


def test_a_killed_rerun_leaves_no_stale_index(toys, tmp_path, monkeypatch):
    grid, _ = toys
    out = tmp_path / "run"
    stream.refine_to_disk(grid.G, grid.D, 16, "ddls", out, chunk=8, seed=0, **OPTS)
    import latentflow.api as api

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "refine", killed)
    with pytest.raises(KeyboardInterrupt):
        stream.refine_to_disk(grid.G, grid.D, 16, "ddls", out, chunk=8, seed=0, resume=False, **OPTS)
    assert not (out / stream.INDEX).exists()
    with pytest.raises(OptionError, match="not a finished"):
        stream.load_shards(out)


def test_shards_and_index_honour_the_umask(toys, tmp_path):
    grid, _ = toys
    old = os.umask(0o022)
    try:
        stream.refine_to_disk(grid.G, grid.D, 8, "ddls", tmp_path / "run", chunk=4, seed=0, **OPTS)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


def test_out_path_that_is_a_file_is_refused(toys, tmp_path):
    grid, _ = toys
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OptionError, match="must be a folder"):
        stream.refine_to_disk(grid.G, grid.D, 4, "ddls", f, chunk=4, **OPTS)
