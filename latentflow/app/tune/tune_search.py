"""``tune``'s search on a budget: the plan (rung sizes and candidates fitted to ``time_budget``), a feature-free
screen, the rungs of successive halving on the shortlist, and the pooled confirmation.

Cost is dominated by feature extraction, so every candidate first runs on a small batch (``SCREEN_N``
latents, the same for all) judged by signals that need no features: chains that diverged, an acceptance rate
of about 0 (nothing moved), samples identical to the generator's, and D's own verdict (the mean logit of D,
calibrated where a calibration exists, on the candidate's samples below the generator's by more than a tenth
of its spread: the method moved its samples to where D rates them worse). The survivors are ranked by how
close D's values on their samples come to D's values on real validation samples (1-D W1 of the logits, in
units of the generator's spread): a D-logit gain alone would favour samples collapsed on D's maximum, which
real data does not sit on either. Only the best
``SHORTLIST`` of them and every surviving published setting go on to feature scoring (KID on early rungs,
FID on the last), so the feature budget buys larger rungs for fewer candidates.

Confirmation: the best ``CONFIRM_TOP`` survivors of the last rung (one rung's ranking is noisy, so its best
is often merely lucky) and the generator alone run on ``CONFIRM`` fresh paired draws (the same latents and
labels for all); the features of each draw are computed once and pooled, and the decision is on the pooled
metric: a survivor must beat the generator alone by more than ``z_win(k)`` standard errors of the pooled
difference (``Z_WIN`` = 2 for one survivor, Bonferroni-raised for ``k``: 2.39 for 3), and of those that do
the one with the best pooled metric wins. For FID the standard error is a paired bootstrap over chains (``BOOT`` resamples of
the chain indices, the same indices for both, the real rows fixed); for KID and EMD (too costly to bootstrap)
it is the spread of the differences on the split halves of every draw, divided by √(number of halves).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ...energy import chunk_slices, d_values, frozen, to_logit
from ...errors import LatentflowError
from ...rng import sample_labels, sample_latents
from ...samplers import Candidate
from .tune_plan import CONFIRM, SCREEN_N, SHORTLIST, run_cost, survivors

log = logging.getLogger("latentflow.app.tune")

BOOT = 200  # paired bootstrap resamples of the pooled FID difference
Z_WIN = 2.0  # the pooled difference must exceed Z_WIN standard errors (Bonferroni-raised for several)
D_DROP = 0.1  # prune when D's mean logit falls below the generator's by this fraction of its spread


@dataclass
class Setup:
    """What every run of the search shares: the models, the run function and the chains' labels."""

    D: Callable  # the D whose verdict prunes (calibrated where available), with its output kind
    d_kind: str
    latent_dim: int
    prior: str
    num_classes: int
    label_pool: Tensor | None  # real labels to draw the chains' classes from (matched classes), else uniform
    y: int | None  # one class for every chain
    seed: int
    budget: int
    score: Any  # a tune_metrics.Scorer: (x, final) -> dict, .rows, .value, .recall
    run: Any = None  # (candidate, z, y, seed) -> Result; set once the calibration is known (None before)
    deadline: float | None = None  # process time after which no further candidate starts
    n_use: int | None = None  # chains the budget is judged at: once-per-run evaluations are shared by these
    bar: Any = None  # a tqdm bar, or None when quiet
    table: list = field(default_factory=list)
    real_d: Tensor | None = None  # D's logits on validation samples: the screen's target distribution

    def draw(self, n: int, stream: int) -> tuple[Tensor, Tensor | None]:
        """Latents and per-chain labels of one rung or confirmation draw: the same for every candidate."""
        z = sample_latents(n, self.latent_dim, self.prior, generator=stream)
        if self.num_classes <= 0:
            return z, None
        if self.y is not None:
            return z, torch.full((n,), self.y, dtype=torch.long)
        if self.label_pool is not None:
            g = torch.Generator().manual_seed(stream)
            return z, self.label_pool[torch.randint(0, self.label_pool.shape[0], (n,), generator=g)]
        return z, sample_labels(n, self.num_classes, generator=stream)

    def key(self, final: bool) -> str:
        """The metric's name at a rung (``final``: the last rung and the confirmation)."""
        return self.score.key(final)

    def over_time(self) -> bool:
        return self.deadline is not None and time.process_time() > self.deadline

    def within_budget(self, c: Candidate, evals: float, n: int) -> bool:
        """Whether ``evals`` D evaluations per sample measured at ``n`` chains fit the budget at ``n_use``
        chains: a once-per-run cost (a probe, an estimate) is shared by the chains a user runs, not by a
        small rung's."""
        return evals - run_cost(c, n) + run_cost(c, self.n_use or n) <= self.budget


def d_vals(D, x: Tensor, y: Tensor | None, d_kind: str) -> Tensor:
    """D's finite logits (critic values) on ``x``, float64."""
    vals = []
    with torch.no_grad(), frozen(D):
        for sl in chunk_slices(x.shape[0], 1024):
            out = D(x[sl], *(() if y is None else (y[sl],)))
            vals.append(to_logit(d_values(out, sl.stop - sl.start), d_kind).double())
    v = torch.cat(vals)
    return v[torch.isfinite(v)]


def d_mean(D, x: Tensor, y: Tensor | None, d_kind: str) -> tuple[float, float]:
    """Mean and standard deviation of D's logit (critic) over the finite values on ``x``."""
    v = d_vals(D, x, y, d_kind)
    return (float(v.mean()), float(v.std())) if v.numel() > 1 else (math.nan, math.nan)


def w1_1d(a: Tensor, b: Tensor) -> float:
    """W1 between two 1-D samples (by quantiles on a common grid)."""
    q = torch.linspace(0, 1, 101, dtype=torch.float64)
    return float((torch.quantile(a, q) - torch.quantile(b, q)).abs().mean())


def _prune(res, x_none: Tensor | None, d_none, s: Setup, y) -> str | None:
    acc = res.info.get("accept_rate")
    if acc is not None and float(torch.as_tensor(acc, dtype=torch.float64).mean()) < 0.01:
        return "pruned: acceptance ~0"
    if x_none is not None and bool((res.x - x_none).abs().max() < 1e-6):
        return "pruned: the generator's samples"
    if d_none is not None and math.isfinite(d_none[0]):
        m, _ = d_mean(s.D, res.x, y, s.d_kind)
        if not m >= d_none[0] - D_DROP * d_none[1]:
            return "pruned: D rates its samples below the generator's"
    return None


def screen(s: Setup, none: Candidate, cands: list[Candidate]) -> list[Candidate]:
    """Run every candidate on ``SCREEN_N`` shared latents, no features: prune (``_prune``), rank the rest by the
    W1 distance of D's logits on its samples to D's logits on validation samples (``real_d``; without it, by
    D's mean logit gain over the generator's), in units of the generator's spread; returns the best
    ``SHORTLIST`` and every surviving published setting, in that order."""
    z, y = s.draw(SCREEN_N, s.seed * 1009 + 999)
    x_none = s.run(none, z, y, s.seed).x
    d_none = d_mean(s.D, x_none, y, s.d_kind)
    v_none = d_vals(s.D, x_none, y, s.d_kind)
    target = s.real_d if s.real_d is not None and s.real_d.numel() > 1 else None
    sd = d_none[1] if math.isfinite(d_none[1]) and d_none[1] > 0 else 1.0
    gap: dict = {}
    for c in cands:
        if s.over_time():
            break
        t0 = time.process_time()
        row = dict(label=c.label, method=c.method, options=c.options, calibrated=c.calibrated, rung=-1, n=SCREEN_N)
        if c.name:
            row["published"] = c.name
        evals, g = None, None
        try:
            res = s.run(c, z, y, s.seed)
            evals = float(res.evals.n_D_forward) / SCREEN_N
            ok = bool(torch.isfinite(res.x).all())
            status = "screened" if ok and s.within_budget(c, evals, SCREEN_N) else ("over_budget" if ok else "diverged")
            if status == "screened":
                status = _prune(res, x_none, d_none, s, y) or status
            v = d_vals(s.D, res.x, y, s.d_kind) if status == "screened" else torch.zeros(0)
            if v.numel() > 1 and v_none.numel() > 1:  # closer to real data's D values: better; else D's gain
                g = w1_1d(v, target) / sd if target is not None else -(float(v.mean()) - d_none[0]) / sd
                gap[c.label] = g if math.isfinite(g) else math.inf
        except LatentflowError as e:
            status = f"error: {e}"
        row.update(metric=None, metric_name="d_gap", d_gap=g, d_evals_per_sample=evals, status=status)
        s.table.append(dict(row, cpu_s=time.process_time() - t0))
        if s.bar is not None:
            s.bar.update(1)
    ranked = sorted((c for c in cands if c.label in gap), key=lambda c: gap[c.label])
    short = ranked[:SHORTLIST] + [c for c in ranked[SHORTLIST:] if c.name]
    log.info("tune screen: %d candidates, %d pass, shortlist %s", len(cands), len(ranked), [c.label for c in short])
    return short


def run_rungs(s: Setup, none: Candidate, cands: list[Candidate], sizes: list[int]):
    """The screen, then successive halving of the shortlist over ``sizes``; returns (scores of the last rung
    run, ranked survivors, rung reached)."""
    alive = [none] + [c for c in screen(s, none, [c for c in cands if c != none])]
    scores: dict = {}
    ranked: list = []
    for rung, n in enumerate(sizes):
        final = rung == len(sizes) - 1
        z, y = s.draw(n, s.seed * 1009 + rung + 1)
        scores, x_none, d_none = {}, None, None
        for c in alive:
            if c != none and s.over_time():
                s.table.append(
                    dict(label=c.label, method=c.method, options=c.options, calibrated=c.calibrated, rung=rung, n=n,
                         metric=None, d_evals_per_sample=None, cpu_s=0.0, status="skipped: time_budget")
                )  # fmt: skip
                continue
            t0 = time.process_time()
            row = dict(label=c.label, method=c.method, options=c.options, calibrated=c.calibrated, rung=rung, n=n)
            if c.name:  # the method's published setting
                row["published"] = c.name
            m, evals = None, None
            try:
                res = s.run(c, z, y, s.seed + rung)
                evals = float(res.evals.n_D_forward) / n
                ok = bool(torch.isfinite(res.x).all())
                status = "ok" if ok and s.within_budget(c, evals, n) else ("over_budget" if ok else "diverged")
                if status == "ok" and c == none:
                    x_none, d_none = res.x, d_mean(s.D, res.x, y, s.d_kind)
                elif status == "ok":
                    status = _prune(res, x_none, d_none, s, y) or status
                if status == "ok":
                    got = s.score(res.x, final)
                    m = got.get(s.key(final))
                    row.update({k: v for k, v in got.items() if k != s.key(final)})
                    status = "ok" if m is not None else "features not finite"
            except LatentflowError as e:
                status = f"error: {e}"
            row.update(metric=m, metric_name=s.key(final), d_evals_per_sample=evals, cpu_s=time.process_time() - t0)
            row["status"] = status
            s.table.append(row)
            if m is not None and math.isfinite(m):
                scores[c.label] = (m, row.get("recall"))
            if s.bar is not None:
                s.bar.update(1)
        ranked = sorted((c for c in alive if c.label in scores and c != none), key=lambda c: scores[c.label][0])
        log.info(
            "tune rung %d: n=%d, %d candidates, best %s (%.4g), generator alone %.4g",
            rung,
            n,
            len(alive),
            ranked[0].label if ranked else "-",
            scores[ranked[0].label][0] if ranked else float("nan"),
            scores[none.label][0] if none.label in scores else float("nan"),
        )
        if none.label not in scores:
            why = next((r["status"] for r in reversed(s.table) if r["label"] == none.label), "no score")
            raise LatentflowError(f"the model failed: the generator's own samples could not be scored: {why}")
        if final or s.over_time():
            return scores, ranked, rung
        alive = [none] + ranked[: survivors(len(ranked), rung, len(sizes) - 1)]
    return scores, ranked, len(sizes) - 1


def keeps_recall(scores: dict, label: str, none_label: str, n: int) -> bool:
    from ...metrics.manifold import keeps_recall as keeps

    r0, r1 = scores[none_label][1], scores[label][1]
    return r0 is None or r1 is None or keeps({"recall": r0}, {"recall": r1}, n)


def confirm(s: Setup, none: Candidate, top: list[Candidate], n: int) -> dict:
    """``CONFIRM`` paired draws of ``n`` fresh latents (and labels) for the generator alone and each of ``top``,
    pooled: ``{label: {generator, best, diff, se, recall_none, recall_best, n}}`` (the metric's value, lower is
    better; ``best`` is that candidate's)."""
    rows: dict = {c.label: [] for c in [none, *top]}
    for r in range(CONFIRM):
        z, y = s.draw(n, s.seed * 1009 + 100 + r)
        for c in (none, *top):
            rows[c.label].append(s.score.rows(s.run(c, z, y, s.seed + 100 + r).x))
            if s.bar is not None:
                s.bar.update(1)
    return {c.label: pooled_test(s.score, rows[none.label], rows[c.label], s.seed) for c in top}


def z_win(k: int) -> float:
    """Standard errors a pooled difference must exceed when ``k`` candidates are confirmed: ``Z_WIN`` for one,
    raised (Bonferroni) so that the chance a candidate no better than the generator wins stays that of one."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - (1 - NormalDist().cdf(Z_WIN)) / max(k, 1))


def paired_bootstrap_se(value: Callable[[Tensor], float], fa: Tensor, fb: Tensor, boot: int, seed: int) -> float:
    """Standard error of ``value(fa) - value(fb)`` over ``boot`` resamples of the rows, the same row indices
    for both (paired: ``fa[i]`` and ``fb[i]`` come from the same latents)."""
    g = torch.Generator().manual_seed(seed)
    idx = [torch.randint(0, fa.shape[0], (fa.shape[0],), generator=g) for _ in range(boot)]
    return float(torch.tensor([value(fa[i]) - value(fb[i]) for i in idx], dtype=torch.float64).std())


def pooled_test(score, a: list[Tensor], b: list[Tensor], seed: int) -> dict:
    """The pooled metric of the paired draws ``a`` (generator) and ``b`` (candidate) and the standard error of
    their difference: a paired bootstrap over chains for FID, the split halves of every draw otherwise."""
    fa, fb = torch.cat(a), torch.cat(b)
    out = {"n": int(fa.shape[0]), "generator": score.value(fa), "best": score.value(fb)}
    out["diff"] = out["generator"] - out["best"]
    if not (bool(torch.isfinite(fa).all()) and bool(torch.isfinite(fb).all()) and math.isfinite(out["diff"])):
        return {**out, "se": math.inf}
    if score.key(True) == "fid":
        se = paired_bootstrap_se(score.value, fa, fb, BOOT, seed + 4242)
    else:  # split halves of every draw
        hs = [(x[: x.shape[0] // 2], y[: x.shape[0] // 2]) for x, y in zip(a, b)]
        hs += [(x[x.shape[0] // 2 :], y[x.shape[0] // 2 :]) for x, y in zip(a, b)]
        d = torch.tensor([score.value(h0) - score.value(h1) for h0, h1 in hs], dtype=torch.float64)
        se = float(d.std()) / math.sqrt(d.numel()) if d.numel() > 1 else math.inf
    if score.metric == "fid_recall":
        out["recall_none"], out["recall_best"] = score.recall(fa), score.recall(fb)
    return {**out, "se": se}


def decide(conf: dict, recall: bool, n: int, k: int = 1) -> bool:
    """Whether a confirmed survivor wins: its pooled metric beats the generator's by more than ``z_win(k)``
    standard errors of the pooled difference, ``k`` survivors confirmed (and, with ``recall``, it keeps the
    generator's pooled recall within noise)."""
    from ...metrics.manifold import keeps_recall as keeps

    ok = bool(conf) and conf["diff"] > z_win(k) * conf["se"] and conf["diff"] > 0
    if ok and recall and conf.get("recall_none") is not None and conf.get("recall_best") is not None:
        ok = keeps({"recall": conf["recall_none"]}, {"recall": conf["recall_best"]}, conf["n"])
    return ok
