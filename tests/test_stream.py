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
    assert stream.load_shards(out)["x"].shape == (16, 2)  # the grid-25 run is untouched
    idx2 = stream.refine_to_disk(roll.G, roll.D, 16, "ddls", out, chunk=8, seed=0, overwrite=True, **OPTS)
    assert idx2["run_key"] != idx["run_key"]
    ref = lf.refine(roll.G, roll.D, stream.chain_latents(0, 0, 16, 2)[:8], method="ddls", seed=0, **OPTS)
    assert torch.equal(stream.load_shards(out)["x"][:8], ref.x)


def test_the_key_ignores_progress_and_batch_size_but_not_options_or_weights(toys, tmp_path):
    grid, _ = toys
    out = tmp_path / "run"
    a = stream.refine_to_disk(grid.G, grid.D, 8, "ddls", out, chunk=8, seed=0, **OPTS)
    b = stream.refine_to_disk(
        grid.G, grid.D, 8, "ddls", out, chunk=8, seed=0, batch_size=3, **{**OPTS, "progress": True}
    )
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


# -- chunk-independent samples ---------------------------------------------------------------------


def _run(pair, out, chunk, method="ddls", n=48, batch_size=None, **opts):
    kw = dict(progress=False, **opts)
    if batch_size is not None:
        kw["batch_size"] = batch_size
    stream.refine_to_disk(pair.G, pair.D, n, method, out, chunk=chunk, seed=3, **kw)
    return stream.load_result(out)


@pytest.mark.parametrize(
    "method,opts",
    [
        ("ddls", dict(steps=5, step_size=0.01, d_output="critic")),
        ("dot", dict(steps=5)),
        ("drs", dict(pilot=200, gamma_percentile=None)),
        ("mh", dict(k=5)),
    ],
)
def test_chunk_8_and_24_and_batch_sizes_give_the_same_samples(toys, tmp_path, method, opts):
    grid, _ = toys
    a = _run(grid, tmp_path / "a", 8, method, **opts)
    b = _run(grid, tmp_path / "b", 24, method, **opts)
    c = _run(grid, tmp_path / "c", 24, method, batch_size=5, **opts)
    one = lf.refine(grid.G, grid.D, stream.chain_latents(3, 0, 48, 2), method=method, seed=3, progress=False, **opts)
    for r in (b, c, one):
        torch.testing.assert_close(r.x, a.x, rtol=1e-4, atol=1e-4)
        if a.z is not None:
            torch.testing.assert_close(r.z, a.z, rtol=1e-4, atol=1e-4)
    # and the seed is really used: another seed gives other samples
    d = stream.refine_to_disk(grid.G, grid.D, 48, method, tmp_path / "d", chunk=8, seed=4, progress=False, **opts)
    assert d["n"] == 48 and not torch.allclose(stream.load_result(tmp_path / "d").x, a.x, atol=1e-3)


def test_mala_accept_decisions_acceptance_and_moments_do_not_depend_on_chunk(toys, tmp_path):
    grid, _ = toys
    opts = dict(steps=20, step_size=0.05, d_output="critic", mala=True)
    a = _run(grid, tmp_path / "a", 8, n=96, **opts)
    b = _run(grid, tmp_path / "b", 24, n=96, batch_size=7, **opts)
    ra, rb = a.info["accept_rate"], b.info["accept_rate"]
    assert 0.05 < float(ra.mean()) < 0.999  # a real mixture of accepts and rejects
    # every chain has 20 accept decisions: equal rates mean equal decisions up to round-off flips
    assert (ra != rb).sum() <= 1, (ra - rb).abs().max()
    torch.testing.assert_close(a.x.mean(0), b.x.mean(0), rtol=0, atol=1e-4)
    torch.testing.assert_close(a.x.var(0), b.x.var(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.x, b.x, rtol=1e-4, atol=1e-4)


def test_chain_latents_are_per_chain_and_not_the_samplers_noise():
    full = stream.chain_latents(7, 0, 30, 4)
    torch.testing.assert_close(
        torch.cat([stream.chain_latents(7, 0, 11, 4), stream.chain_latents(7, 11, 30, 4)]), full, rtol=0, atol=0
    )
    assert abs(float(full.mean())) < 0.4 and 0.6 < float(full.std()) < 1.4  # 120 N(0, 1) draws
    u = stream.chain_latents(7, 0, 30, 4, "uniform")
    assert float(u.min()) >= -1 and float(u.max()) <= 1
    from latentflow.rng import stream_key

    assert stream.latent_key(7) != stream_key(7)
    with pytest.raises(OptionError, match="start"):
        stream.chain_latents(0, 5, 5, 2)


def test_load_result_matches_one_refine_call_in_counts_and_info(toys, tmp_path):
    grid, _ = toys
    opts = dict(steps=3, step_size=0.01, d_output="critic", mala=True, progress=False)
    stream.refine_to_disk(grid.G, grid.D, 20, "ddls", tmp_path / "r", chunk=6, seed=3, **opts)
    got = stream.load_result(tmp_path / "r")
    ref = lf.refine(grid.G, grid.D, stream.chain_latents(3, 0, 20, 2), method="ddls", seed=3, **opts)
    blocks = [
        lf.refine(
            grid.G,
            grid.D,
            stream.chain_latents(3, lo, min(lo + 6, 20), 2),
            method="ddls",
            seed=3,
            chain_offset=lo,
            **opts,
        )
        for lo in range(0, 20, 6)
    ]
    for k in ("n_G_forward", "n_G_backward", "n_D_forward", "n_D_backward"):  # summed over the 4 blocks
        assert got.info[k] == sum(b.info[k] for b in blocks), k
    assert got.info["method"] == "ddls" and got.info["langevin_temperature"] == ref.info["langevin_temperature"]
    assert torch.equal(got.info["diverged"], ref.info["diverged"])
    torch.testing.assert_close(got.info["accept_rate"], ref.info["accept_rate"])
    assert got.to_dict()["n"] == 20


def test_a_generator_as_seed_samples_every_block_from_its_state_and_keys_the_run(toys, tmp_path):
    grid, _ = toys
    z = lf.sample_latents(20, 2, generator=5)
    g = torch.Generator().manual_seed(11)
    torch.rand(3, generator=g)  # some state other than a fresh seed's
    before = g.get_state()
    ref = lf.refine(grid.G, grid.D, z, "ddls", generator=g, **OPTS)  # what one call gives (advances g)
    g.set_state(before)
    idx = stream.refine_to_disk(grid.G, grid.D, z, "ddls", tmp_path / "a", chunk=6, seed=g, **OPTS)
    assert torch.equal(g.get_state(), before)  # not advanced
    torch.testing.assert_close(stream.load_result(tmp_path / "a").x, ref.x, rtol=1e-5, atol=1e-6)
    assert str(idx["seed"]).startswith("generator:")
    other = torch.Generator().manual_seed(12)
    with pytest.raises(OptionError, match="other settings"):
        stream.refine_to_disk(grid.G, grid.D, z, "ddls", tmp_path / "a", chunk=6, seed=other, **OPTS)
    with pytest.raises(OptionError, match="seed must be"):
        stream.refine_to_disk(grid.G, grid.D, z, "ddls", tmp_path / "b", chunk=6, seed="0", **OPTS)


def test_a_rerun_removes_the_temporary_files_of_a_killed_write(toys, tmp_path):
    grid, _ = toys
    out = tmp_path / "run"
    stream.refine_to_disk(grid.G, grid.D, 16, "ddls", out, chunk=8, seed=0, **OPTS)
    stale = [out / ".shard-00001-of-00002.safetensors.k1l2.tmp", out / ".index.json.x9.tmp"]
    for p in stale:  # what a SIGKILL inside an atomic write leaves behind
        p.write_bytes(b"partial")
    keep = out / "notes.txt"
    keep.write_text("mine")
    stream.refine_to_disk(grid.G, grid.D, 16, "ddls", out, chunk=8, seed=0, **OPTS)
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "mine"
    assert stream.load_shards(out)["x"].shape == (16, 2)


def test_resume_refuses_the_shards_of_another_run_or_other_options(tmp_path):
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
