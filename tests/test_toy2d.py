import pytest
import torch

from latentflow.data import TOY, toy
from latentflow.errors import OptionError, ShapeError
from latentflow.metrics.toy2d import emd, mode_metrics, toy_metrics


def test_fresh_data_scores_perfectly():
    ds = toy("grid25")
    x = ds.sample(10000, generator=0)
    m = mode_metrics(x, ds.centers, ds.std)
    assert m["modes"] == 25
    # P(|N(0, .1^2 I_2)| > 0.4) = exp(-8) = 0.03%: essentially every sample is high quality
    assert m["high_quality_pct"] > 99.5
    assert abs(m["hq_std"] - 0.1) < 0.005


def test_mode_metrics_count_dropped_modes():
    ds = toy("ring8")
    x = ds.sample(2000, generator=0)
    keep = torch.cdist(x, ds.centers).argmin(1) < 6
    m = mode_metrics(x[keep], ds.centers, ds.std)
    assert m["modes"] == 6
    far = torch.full((10, 2), 10.0)
    assert mode_metrics(far, ds.centers, ds.std)["high_quality_pct"] == 0


def test_emd_exact_on_shifted_sets():
    a = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    assert emd(a, a) == pytest.approx(0.0, abs=1e-12)
    # translating a set by t costs exactly |t| under the optimal (identity) matching
    assert emd(a, a + torch.tensor([0.3, 0.4])) == pytest.approx(0.5, rel=1e-6)


def test_toy_metrics_and_errors():
    m = toy_metrics(toy("swissroll").sample(500, generator=1), "swissroll")
    assert set(m) == {"emd", "precision", "recall", "density", "coverage"} and m["emd"] < 0.2
    with pytest.raises(ShapeError, match=r"\[N, 2\]"):
        mode_metrics(torch.zeros(3, 3), TOY["grid25"].centers, 0.1)
    with pytest.raises(OptionError, match='Unknown toy dataset "grid"'):
        toy("grid")


def test_bench_rows_carry_prdc_and_truncation_costs_one_g_forward():
    from latentflow.app.bench.toy2d import TOY2D_VARIANTS, toy2d, toy2d_table

    rows = [v for v in TOY2D_VARIANTS if v.method in ("none", "truncation")]
    assert [v.label for v in rows] == ["generator", "truncation ψ=1", "truncation ψ=0.5"]
    doc = toy2d(("grid25-wgangp",), rows, num=300, seeds=(0,))
    for r in doc["rows"]:
        assert "error" not in r
        assert {"precision", "recall", "density", "coverage"} <= set(r["metrics"])
        assert r["budget_per_sample"]["n_D_forward"] == 0
    assert doc["rows"][2]["options"]["psi"] == 0.5
    assert doc["rows"][2]["budget_per_sample"]["n_G_forward"] == pytest.approx(1, abs=0.01)
    table = toy2d_table(doc)
    assert "| precision | recall | density | coverage |" in table and table.count("\n| grid25-wgangp |") == 3
