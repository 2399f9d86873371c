import json

import pytest
import torch
from analytic import gaussian_problem

import latentflow as lf
from latentflow.errors import LatentflowError, OptionError


def test_methods_lists_every_sampler_with_real_defaults():
    ms = lf.methods()
    assert (
        list(ms)
        == sorted(ms)
        == ["ddls", "dflow", "dg_langevin", "dg_score", "dgflow", "dot", "drs", "ex2mcmc", "mh", "none", "truncation"]
    )
    assert ms["ddls"].options["step_size"] == 0.003
    assert ms["ddls"].options["mala"] is False
    assert ms["drs"].options["gamma_percentile"] == 50.0
    for m in ms.values():
        assert {"generator", "progress", "batch_size", "callback"} <= set(m.options)
        assert m.summary
        json.dumps(m.to_dict())


def test_refine_dispatches_and_result_serialises():
    G, D, *_ = gaussian_problem()
    z = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for method, opts in [
        ("ddls", {"steps": 3}),
        ("ddls", {"steps": 3, "mala": True}),
        ("dot", {"steps": 2}),
        ("drs", {"pilot": 100}),
        ("mh", {"k": 3}),
        ("dg_langevin", {"steps": 2}),
    ]:
        res = lf.refine(G, D, z, method=method, seed=0, progress=False, **opts)
        assert res.x.shape[0] == 16
        d = res.to_dict()
        json.dumps(d)
        assert d["method"] == method and d["n"] == 16 and d["n_diverged"] == 0
        assert {"n_G_forward", "n_D_forward", "wall_s"} <= set(d)


def test_seed_and_generator_are_exclusive_and_errors_are_valueerrors():
    G, D, *_ = gaussian_problem()
    z = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(OptionError, match="either seed or generator"):
        lf.refine(G, D, z, seed=1, generator=torch.Generator())
    assert issubclass(LatentflowError, ValueError)
    with pytest.raises(ValueError):
        lf.refine(G, D, z, method="nope")


def test_cpu_generator_serves_any_device_and_float32_works():
    G, D, *_ = gaussian_problem()
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    res = lf.refine(G.float(), D.float(), z, method="ddls", steps=3, seed=0, progress=False)
    assert res.x.dtype == torch.float32 and res.z.dtype == torch.float32


@pytest.mark.gpu
def test_cuda_matches_cpu_start_and_runs():
    G, D, *_ = gaussian_problem()
    z = torch.randn(64, 2, dtype=torch.float64)
    a = lf.refine(G, D, z, method="ddls", steps=5, seed=0, progress=False)
    b = lf.refine(G.cuda(), D.cuda(), z.cuda(), method="ddls", steps=5, seed=0, progress=False)
    torch.testing.assert_close(a.z, b.z.cpu(), rtol=1e-6, atol=1e-6)
    for dtype in (torch.float16, torch.bfloat16):
        r = lf.refine(
            G.cuda().to(dtype), D.cuda().to(dtype), z.cuda().to(dtype), method="ddls", steps=5, seed=0, progress=False
        )
        assert torch.isfinite(r.x).all()
