"""Speed options of the gradient samplers (issue 6): batch_size="auto", compile, cuda_graph, autocast,
no host synchronisation inside step loops, and streaming to disk. Timings are benchmark claims
(benchmarks/throughput.py), never tests."""

import logging

import pytest
import torch

import latentflow as lf
from latentflow import nets, stream
from latentflow.errors import OptionError
from latentflow.samplers import _auto_batch, _driver, _engine

HAS_CUDA = torch.cuda.is_available()


def _mlp_pair(seed=0, k=2, hidden=(32, 32), dtype=torch.float32, device="cpu"):
    with torch.random.fork_rng():  # weight init uses the global RNG; leave it as it was
        torch.manual_seed(seed)
        G = nets.build("mlp_g", latent_dim=k, hidden=list(hidden), out_dim=2).to(device, dtype)
        D = nets.build("mlp_d", in_dim=2, hidden=list(hidden)).to(device, dtype)
    return G, D


@pytest.fixture
def pair():
    return _mlp_pair()


def _tD(hidden=16):
    """A tiny time-conditioned discriminator f(x, t) for dflow / noise-conditioned dg_langevin."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    class TD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, t):
            return self.net(torch.cat([x, t[:, None]], 1))[:, 0]

    return TD()


def _z(n=40, k=2, seed=5):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


# -- batch_size="auto" --------------------------------------------------------------------------------

GRAD_CASES = {
    "ddls": dict(steps=6, step_size=0.05, d_output="critic"),
    "ddls-mala": dict(steps=6, step_size=0.05, d_output="critic", mala=True, adapt_steps=2),
    "dot": dict(steps=5, lr=0.01),
    "dg_langevin": dict(steps=5, step_size=1e-2, d_output="critic"),
    "drs": dict(pilot=50, gamma_percentile=None),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_batch_size_auto_gives_the_same_samples_as_none(pair, case):
    G, D = pair
    method = case.split("-")[0]
    opts = GRAD_CASES[case]
    z = _z()
    a = lf.refine(G, D, z, method=method, seed=3, progress=False, batch_size=None, **opts)
    b = lf.refine(G, D, z, method=method, seed=3, progress=False, batch_size="auto", **opts)
    assert torch.equal(a.x, b.x)  # small n: the automatic chunk is all rows on the CPU
    assert a.info["n_G_backward"] <= b.info["n_G_backward"]  # the probe is counted, honestly


def test_batch_size_auto_with_a_small_memory_cap_chunks_and_stays_invariant(pair, monkeypatch):
    G, D = pair
    monkeypatch.setattr(_auto_batch, "AUTO_CPU_MAX_ROWS", 7)
    seen = []
    orig = _engine.chunk_slices
    monkeypatch.setattr(_engine, "chunk_slices", lambda n, bs: seen.append(bs) or orig(n, bs))
    z = _z(30)
    a = lf.refine(G, D, z, method="ddls", steps=5, d_output="critic", seed=1, progress=False)
    b = lf.refine(G, D, z, method="ddls", steps=5, d_output="critic", seed=1, progress=False, batch_size="auto")
    assert 7 in seen and b.info["auto_batch_size"] == {"grad": 7}
    torch.testing.assert_close(a.x, b.x, rtol=1e-5, atol=1e-6)


def test_batch_size_auto_dflow(pair):
    D = _tD()
    x0 = _z(24)
    a = lf.refine(None, D, x0, method="dflow", steps=4, eta=1.0, progress=False)
    b = lf.refine(None, D, x0, method="dflow", steps=4, eta=1.0, progress=False, batch_size="auto")
    assert torch.equal(a.x, b.x)


@pytest.mark.parametrize("bad", [0, -3, "big", 2.5, True])
def test_batch_size_rejects_bad_values(pair, bad):
    G, D = pair
    with pytest.raises(OptionError, match="batch_size"):
        lf.refine(G, D, _z(4), method="ddls", steps=1, seed=0, progress=False, batch_size=bad)


# -- option checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ddls", "dot", "dg_langevin", "dflow"])
def test_speed_options_are_listed_for_the_gradient_samplers(method):
    opts = lf.methods()[method].options
    assert {"compile", "cuda_graph", "autocast", "batch_size"} <= set(opts)
    assert opts["compile"] is False and opts["cuda_graph"] is False and opts["autocast"] is None


def test_cuda_graph_on_cpu_is_a_clear_error(pair):
    G, D = pair
    with pytest.raises(OptionError, match="cuda_graph=True .* needs CUDA tensors; z is on cpu"):
        lf.refine(G, D, _z(4), method="ddls", steps=1, seed=0, progress=False, cuda_graph=True)


@pytest.mark.parametrize("bad", dict(autocast="fp8", compile="yes").items(), ids=lambda kv: kv[0])
def test_bad_speed_option_values(pair, bad):
    G, D = pair
    k, v = bad
    with pytest.raises(OptionError, match=k):
        lf.refine(G, D, _z(4), method="ddls", steps=1, seed=0, progress=False, **{k: v})


# -- autocast -----------------------------------------------------------------------------------------


def test_autocast_bf16_on_cpu_runs_stays_finite_and_keeps_the_chain_in_fp32(pair):
    G, D = pair
    z = _z(64)
    ref = lf.refine(
        G, D, z, method="ddls", steps=10, step_size=0.05, d_output="critic", mala=True, seed=2, progress=False
    )
    res = lf.refine(
        G,
        D,
        z,
        method="ddls",
        steps=10,
        step_size=0.05,
        d_output="critic",
        mala=True,
        seed=2,
        progress=False,
        autocast="bf16",
    )
    assert res.z.dtype == torch.float32 and res.x.dtype == torch.float32
    assert res.info["energy"].dtype == torch.float32
    assert torch.isfinite(res.z).all() and torch.isfinite(res.x).all() and not res.diverged.any()
    # bf16 keeps ~3 significant digits of D: the chains stay close to the fp32 ones over 10 steps
    assert (res.z - ref.z).abs().median() < 0.05


@pytest.mark.parametrize("method,opts", [("dot", dict(steps=4)), ("dflow", dict(steps=3, eta=1.0))])
def test_autocast_bf16_other_gradient_samplers(pair, method, opts):
    G, D = pair
    if method == "dflow":
        G, D = None, _tD()
    res = lf.refine(G, D, _z(16), method=method, seed=0, progress=False, autocast="bf16", **opts)
    assert res.x.dtype == torch.float32 and torch.isfinite(res.x).all()


def test_autocast_fp16_on_cpu_or_skip(pair):
    G, D = pair
    try:
        res = lf.refine(
            G, D, _z(16), method="ddls", steps=3, d_output="critic", seed=0, progress=False, autocast="fp16"
        )
    except RuntimeError as e:  # older CPU builds have no fp16 kernels under autocast
        pytest.skip(f"fp16 autocast unsupported on this CPU build: {e}")
    assert res.z.dtype == torch.float32 and torch.isfinite(res.z).all()


# -- compile --------------------------------------------------------------------------------------------


def test_compile_falls_back_to_eager_with_a_warning(pair, monkeypatch, caplog):
    G, D = pair

    def broken_compile(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("no compiler here")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    z = _z(16)
    a = lf.refine(G, D, z, method="ddls", steps=4, d_output="critic", seed=0, progress=False)
    with caplog.at_level(logging.WARNING, logger="latentflow"):
        b = lf.refine(G, D, z, method="ddls", steps=4, d_output="critic", seed=0, progress=False, compile=True)
    assert torch.equal(a.x, b.x)
    assert sum("falling back to eager" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.slow
def test_compiled_step_equals_eager_within_tolerance(pair, caplog):
    """torch.compile on this CPU takes ~12 s warm and ~1 min with a cold inductor cache: slow."""
    G, D = pair
    z = _z(32)
    opts = dict(
        method="ddls", steps=8, step_size=0.05, d_output="critic", mala=True, seed=4, progress=False, batch_size=20
    )  # two chunk shapes: two compiled graphs
    a = lf.refine(G, D, z, **opts)
    with caplog.at_level(logging.WARNING, logger="latentflow"):
        b = lf.refine(G, D, z, compile=True, **opts)
    assert not any("eager" in r.getMessage() for r in caplog.records), "compile fell back to eager"
    torch.testing.assert_close(b.z, a.z, rtol=1e-4, atol=1e-5)
    assert b.info["n_G_backward"] == a.info["n_G_backward"] and b.info["n_D_forward"] == a.info["n_D_forward"]


# -- no host synchronisation, no parameter graphs ---------------------------------------------------------


class _SyncTrap:
    """Makes every host read-back of a tensor raise while armed: ``item``, ``tolist``, ``__bool__``,
    ``__int__``, ``__float__``, ``__index__``, ``nonzero`` and ``numpy``."""

    NAMES = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "numpy")

    def __init__(self, monkeypatch):
        self.armed = False
        self.hits = []
        for name in self.NAMES:
            orig = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, orig))
        orig_nz = torch.nonzero
        monkeypatch.setattr(torch, "nonzero", self._wrap("torch.nonzero", orig_nz))

    def disarm_at_finish(self, monkeypatch, owner=None) -> "_SyncTrap":
        """Disarm when ``owner.finish`` (the driver's by default; a kernel class for a kernel's own finish)
        starts: the run's one read-back happens there."""
        from latentflow.samplers import _driver

        owner = owner or _driver.Driver
        orig, trap = owner.finish, self

        def finish(obj, *a, **k):
            trap.armed = False
            return orig(obj, *a, **k)

        monkeypatch.setattr(owner, "finish", finish)
        return self

    def _wrap(self, name, orig):
        trap = self

        def f(*a, **k):
            if trap.armed:
                trap.hits.append(name)
                raise AssertionError(f"host synchronisation inside the step loop: {name}")
            return orig(*a, **k)

        return f


SYNC_CASES = {
    "ddls": (False, dict(steps=5, step_size=0.05, d_output="critic")),
    "ddls-mala": (False, dict(steps=5, step_size=0.05, d_output="critic", mala=True, adapt_steps=2)),
    "ddls-chunked": (False, dict(steps=4, d_output="critic", batch_size=7)),
    "dot": (False, dict(steps=4, optimizer="adam")),
    "dg_langevin": (False, dict(steps=4, d_output="critic", clip=3.0)),
    "dflow-heun": (True, dict(steps=4, eta=1.0, solver="heun", entropy_reg=0.1)),
}


@pytest.mark.parametrize("case", sorted(SYNC_CASES))
def test_step_loops_do_no_host_sync(pair, monkeypatch, case):
    """Armed from the first step's callback until ``finish`` (which does the run's one read-back)."""
    G, D = pair
    tconditioned, opts = SYNC_CASES[case]
    if tconditioned:
        G, D = None, _tD()
    trap = _SyncTrap(monkeypatch).disarm_at_finish(monkeypatch)

    def arm(step):
        trap.armed = True

    res = lf.refine(G, D, _z(20), method=case.split("-")[0], seed=0, progress=False, callback=arm, **opts)
    assert trap.hits == [] and res.x.shape[0] == 20


def test_no_parameter_graphs_and_no_second_order_graphs(pair):
    G, D = pair
    params = list(G.parameters()) + list(D.parameters())
    seen = []

    class Watch(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.d = d

        def forward(self, x):
            seen.append(all(not p.requires_grad for p in params))
            return self.d(x)

    states = []
    lf.refine(
        G,
        Watch(D),
        _z(8),
        method="ddls",
        steps=3,
        d_output="critic",
        seed=0,
        progress=False,
        mala=True,
        callback=lambda s: states.append((s.state.requires_grad, s.state.grad_fn, s.energy.requires_grad)),
    )
    assert seen and all(seen)  # frozen: no graph over parameters is ever built
    assert all(p.grad is None and p.requires_grad for p in params)  # and restored afterwards
    assert all(s == (False, None, False) for s in states)  # no graph survives a step


# -- streaming -------------------------------------------------------------------------------------


def test_refine_to_disk_equals_in_memory_refine_per_block(pair, tmp_path):
    G, D = pair
    z = _z(50)
    opts = dict(steps=4, step_size=0.05, d_output="critic", mala=True, progress=False)
    idx = stream.refine_to_disk(G, D, z, "ddls", tmp_path / "run", chunk=20, seed=9, **opts)
    assert [s["stop"] - s["start"] for s in idx["shards"]] == [20, 20, 10]
    got = stream.load_shards(tmp_path / "run")
    parts = [
        lf.refine(G, D, z[lo : lo + 20], method="ddls", seed=9, chain_offset=lo, **opts) for lo in range(0, 50, 20)
    ]
    assert torch.equal(got["x"], torch.cat([p.x for p in parts]))
    assert torch.equal(got["z"], torch.cat([p.z for p in parts]))
    assert torch.equal(got["info.accept_rate"], torch.cat([p.info["accept_rate"] for p in parts]))
    assert idx["totals"]["n_G_backward"] == sum(p.info["n_G_backward"] for p in parts)
    # resume: the same run keeps its shards; a different seed rewrites them (with overwrite=True)
    mtimes = [(tmp_path / "run" / s["file"]).stat().st_mtime_ns for s in idx["shards"]]
    stream.refine_to_disk(G, D, z, "ddls", tmp_path / "run", chunk=20, seed=9, **opts)
    assert mtimes == [(tmp_path / "run" / s["file"]).stat().st_mtime_ns for s in idx["shards"]]
    stream.refine_to_disk(G, D, z, "ddls", tmp_path / "run", chunk=20, seed=10, overwrite=True, **opts)
    assert not torch.equal(stream.load_shards(tmp_path / "run")["x"], got["x"])
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_refine_to_disk_one_block_equals_refine_with_the_seed_and_counts_draw_latents(pair, tmp_path):
    G, D = pair
    opts = dict(steps=3, d_output="critic", progress=False)
    stream.refine_to_disk(G, D, 12, "ddls", tmp_path / "a", chunk=100, seed=5, **opts)  # G.latent_dim = 2
    got = stream.load_shards(tmp_path / "a")
    z = stream.chain_latents(5, 0, 12, 2)
    ref = lf.refine(G, D, z, method="ddls", seed=5, **opts)
    assert torch.equal(got["x"], ref.x)
    # the layout, not batch_size, is what the samples depend on
    stream.refine_to_disk(G, D, 12, "ddls", tmp_path / "b", chunk=100, seed=5, batch_size=5, **opts)
    torch.testing.assert_close(stream.load_shards(tmp_path / "b")["x"], ref.x, rtol=1e-5, atol=1e-6)


def test_refine_to_disk_checks_its_arguments(pair, tmp_path):
    G, D = pair
    with pytest.raises(OptionError, match="seed="):
        stream.refine_to_disk(G, D, _z(4), "ddls", tmp_path, generator=0)
    with pytest.raises(OptionError, match="chain_offset"):
        stream.refine_to_disk(G, D, _z(4), "ddls", tmp_path, chain_offset=3)
    with pytest.raises(OptionError, match="chunk"):
        stream.refine_to_disk(G, D, _z(4), "ddls", tmp_path, chunk=0)
    with pytest.raises(OptionError, match="latent_dim"):
        stream.refine_to_disk(lambda z: z, D, 4, "ddls", tmp_path)
    with pytest.raises(OptionError, match="unknown option"):
        stream.refine_to_disk(G, D, _z(4), "ddls", tmp_path, stepz=3)


# -- GPU (skipped without CUDA) ------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("gen_device", ["cuda", "cpu"])
def test_cuda_step_loop_has_no_synchronising_calls(gen_device):
    G, D = _mlp_pair(device="cuda", hidden=(64, 64))
    z = torch.randn(256, 2, device="cuda")
    gen = torch.Generator(gen_device).manual_seed(0)
    armed = []

    def arm(step):
        if not armed:
            torch.cuda.set_sync_debug_mode("error")
            armed.append(True)

    orig_finish = _driver.Driver.finish

    def finish(self, *a, **k):
        torch.cuda.set_sync_debug_mode("default")
        return orig_finish(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_driver.Driver, "finish", finish)
        try:
            res = lf.refine(
                G,
                D,
                z,
                method="ddls",
                steps=5,
                d_output="critic",
                mala=True,
                generator=gen,
                progress=False,
                callback=arm,
            )
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(res.z).all()


@pytest.mark.gpu
def test_cuda_graph_equals_eager_and_auto_equals_none_on_cuda():
    G, D = _mlp_pair(device="cuda", hidden=(64, 64))
    z = torch.randn(300, 2, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    opts = dict(method="ddls", steps=5, d_output="critic", mala=True, seed=1, progress=False)
    a = lf.refine(G, D, z, **opts)
    b = lf.refine(G, D, z, cuda_graph=True, batch_size=128, **opts)
    torch.testing.assert_close(b.z, a.z, rtol=1e-4, atol=1e-5)
    c = lf.refine(G, D, z, batch_size="auto", **opts)
    torch.testing.assert_close(c.z, a.z, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_autocast_bf16_and_fp16_on_cuda_stay_finite():
    G, D = _mlp_pair(device="cuda", hidden=(64, 64))
    z = torch.randn(128, 2, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    for mode in ("bf16", "fp16"):
        res = lf.refine(G, D, z, method="ddls", steps=5, d_output="critic", seed=1, progress=False, autocast=mode)
        assert res.z.dtype == torch.float32 and torch.isfinite(res.z).all()
