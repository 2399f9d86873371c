"""``tune``'s search on a budget: the plan (rung sizes and candidates fitted to ``time_budget``), the rungs of
successive halving with cheap pruning before any feature is computed, and the confirmation draws.

Cost is dominated by feature extraction, so a candidate's samples are first judged by signals that need no
features: chains that diverged, an acceptance rate of about 0 (nothing moved), samples identical to the
generator's, and D's own verdict (the mean logit of D, calibrated where a calibration exists, on the
candidate's samples below the generator's by more than a tenth of its spread: the method moved its samples
to where D rates them worse). Only the rest are scored (KID on early rungs, FID on the last).
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
from ...samplers import Candidate, kernel

log = logging.getLogger("latentflow.app.tune")

ETA = 3  # successive halving keeps the best 1/ETA of the candidates at each rung
MIN_N = 64  # the smallest rung
CONFIRM = 3  # paired confirmation draws of the best survivor against the generator alone
D_DROP = 0.1  # prune when D's mean logit falls below the generator's by this fraction of its spread


@dataclass
class Setup:
    """What every run of the search shares: the models, the run function and the chains' labels."""

    run: Callable  # (candidate, z, y, seed) -> Result
    D: Callable  # the D whose verdict prunes (calibrated where available), with its output kind
    d_kind: str
    latent_dim: int
    prior: str
    num_classes: int
    label_pool: Tensor | None  # real labels to draw the chains' classes from (matched classes), else uniform
    y: int | None  # one class for every chain
    seed: int
    budget: int
    score: Callable  # (x, final) -> dict
    key: Callable  # final -> metric name
    deadline: float | None = None  # process time after which no further candidate starts
    bar: Any = None  # a tqdm bar, or None when quiet
    table: list = field(default_factory=list)

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

    def over_time(self) -> bool:
        return self.deadline is not None and time.process_time() > self.deadline


def d_mean(D, x: Tensor, y: Tensor | None, d_kind: str) -> tuple[float, float]:
    """Mean and standard deviation of D's logit (critic) over the finite values on ``x``."""
    vals = []
    with torch.no_grad(), frozen(D):
        for sl in chunk_slices(x.shape[0], 1024):
            out = D(x[sl], *(() if y is None else (y[sl],)))
            vals.append(to_logit(d_values(out, sl.stop - sl.start), d_kind).double())
    v = torch.cat(vals)
    v = v[torch.isfinite(v)]
    return (float(v.mean()), float(v.std())) if v.numel() > 1 else (math.nan, math.nan)


def sizes_for(n_final: int) -> list[int]:
    sizes = [n_final]
    while len(sizes) < 4 and sizes[0] // 2 >= MIN_N:
        sizes.insert(0, sizes[0] // 2)
    return sizes


def survivors(n: int, rung: int, last: int) -> int:
    return max(1, math.ceil(n / ETA)) if rung < last - 1 else min(3, n)


def estimate(n_cands: int, sizes: list[int], t_run: float, t_feat: float) -> float:
    """Seconds the search takes: every rung's candidates (and the generator alone) at its size, then the
    confirmation, at ``t_run`` + ``t_feat`` seconds per sample."""
    total, alive = 0.0, n_cands
    for r, n in enumerate(sizes):
        total += (alive + 1) * n * (t_run + t_feat)
        alive = survivors(alive, r, len(sizes) - 1)
    return total + 2 * CONFIRM * sizes[-1] * (t_run + t_feat)


def fit_plan(cands: list[Candidate], n_final: int, time_budget: float | None, t_run, t_feat) -> tuple[list, list]:
    """Drop grid candidates (never the published settings), then halve the final size, until the estimate
    fits ``time_budget``; returns (candidates, rung sizes)."""
    sizes = sizes_for(n_final)
    if time_budget is None:
        return cands, sizes
    while estimate(len(cands), sizes, t_run(cands), t_feat) > time_budget:
        grid = [c for c in cands if not c.name]
        if len(cands) > 12 and len(grid) > 6:
            drop = set(map(id, grid[1::2]))
            cands = [c for c in cands if id(c) not in drop]
        elif sizes[-1] >= 2 * MIN_N:
            sizes = sizes_for(sizes[-1] // 2)
        else:
            log.warning("tune: the smallest search exceeds time_budget=%gs; it stops when the time is up", time_budget)
            break
    return cands, sizes


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


def run_rungs(s: Setup, none: Candidate, cands: list[Candidate], sizes: list[int]):
    """Successive halving over ``sizes``; returns (scores of the last rung run, ranked survivors, rung reached)."""
    alive = [none] + [c for c in cands if c != none]
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
                status = "ok" if ok and evals <= s.budget else ("over_budget" if ok else "diverged")
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


def confirm(s: Setup, none: Candidate, best: Candidate, n: int) -> list[tuple]:
    """CONFIRM paired draws on fresh latents (and labels): (generator's, best's) final metric, recall."""
    out = []
    for r in range(CONFIRM):
        z, y = s.draw(n, s.seed * 1009 + 100 + r)
        got = [s.score(s.run(c, z, y, s.seed + 100 + r).x, True) for c in (none, best)]
        k = s.key(True)
        out.append((got[0].get(k, math.nan), got[1].get(k, math.nan), got[0].get("recall"), got[1].get("recall")))
        if s.bar is not None:
            s.bar.update(2)
    return out


def kernel_cost(c: Candidate) -> float:
    return float(kernel(c.method).cost(c.options).n_D_forward)


def step_scale(G, D, latent_dim: int, prior: str, d_output: str, y) -> float:
    """√latent_dim over the median norm of ∇_z (-d(G(z))) + the prior's gradient at 16 prior samples: the
    factor that puts a grid's step sizes on this model's scale (1 when it is within 2x of it)."""
    z = sample_latents(16, latent_dim, prior, generator=1).requires_grad_(True)
    cond = () if y is None else (y[:16],)
    with frozen(G, D):
        d = to_logit(d_values(D(G(z, *cond), *cond), 16), d_output)
        (g,) = torch.autograd.grad(d.sum(), z, allow_unused=True)
    if g is None:
        return 1.0
    norm = (-g + (z.detach() if prior == "normal" else 0)).norm(dim=1).median()
    s = math.sqrt(latent_dim) / max(float(norm), 1e-12)
    return 1.0 if 0.5 <= s <= 2 or not math.isfinite(s) else min(max(s, 1e-4), 1e4)


def timings(G, D, x: Tensor, features, latent_dim, prior, y) -> tuple[float, float]:
    """CPU seconds per sample of one value-and-gradient evaluation of D∘G, and of the features."""
    z = sample_latents(16, latent_dim, prior, generator=2).requires_grad_(True)
    cond = () if y is None else (y[:16],)
    t0 = time.process_time()
    with frozen(G, D):
        out = D(G(z, *cond), *cond)
        torch.autograd.grad(out.sum(), z, allow_unused=True)
    t_d = (time.process_time() - t0) / 16
    t0 = time.process_time()
    if features is not None:
        features(x[:16])
    return t_d, (time.process_time() - t0) / min(16, x.shape[0])


def decide(conf: list[tuple], recall: bool, n: int) -> tuple[bool, float, float]:
    """Whether the best survivor wins: it beats the generator on each paired draw and on average by more than
    two standard errors of the differences (and, with ``recall``, keeps the generator's mean recall within
    noise); returns (wins, mean difference, its standard error)."""
    from ...metrics.manifold import keeps_recall as keeps

    diffs = [c[0] - c[1] for c in conf]
    mean = sum(diffs) / len(diffs) if diffs else 0.0
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs)) if len(diffs) > 1 else math.inf
    ok = bool(diffs) and min(diffs) > 0 and mean > 2 * se
    if ok and recall and all(c[2] is not None and c[3] is not None for c in conf):
        r0, r1 = (sum(c[i] for c in conf) / len(conf) for i in (2, 3))
        ok = keeps({"recall": r0}, {"recall": r1}, n)
    return ok, mean, se
