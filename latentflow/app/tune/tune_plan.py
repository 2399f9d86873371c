"""``tune``'s plan: what the search will cost (rung sizes, the candidates that fit ``time_budget``, the
estimate logged before it starts), each candidate's declared D evaluations, and the model's own scales (one
D∘G gradient's time, the feature time, the step-size scale from the latent gradient norm)."""

from __future__ import annotations

import logging
import math
import time

import torch
from torch import Tensor

from ...energy import d_values, frozen, to_logit
from ...rng import sample_latents
from ...samplers import Candidate, kernel

log = logging.getLogger("latentflow.app.tune")

ETA = 3  # successive halving keeps the best 1/ETA of the candidates at each rung
MIN_N = 64  # the smallest rung
CONFIRM = 2  # paired confirmation draws of the best survivors against the generator alone, pooled
CONFIRM_TOP = 3  # survivors of the last rung confirmed (one rung's ranking is noisy: its best is often lucky)
SCREEN_N = 32  # latents per candidate in the feature-free screen
SHORTLIST = 3  # candidates the screen sends on to feature scoring, beside every surviving published setting


def run_cost(c: Candidate, n: int | None = None) -> float:
    """D forward evaluations per sample the candidate's method declares for its options at ``n`` chains."""
    return float(kernel(c.method).cost(c.options, n=n).n_D_forward)


def sizes_for(n_final: int) -> list[int]:
    sizes = [n_final]
    while len(sizes) < 4 and sizes[0] // 2 >= MIN_N:
        sizes.insert(0, sizes[0] // 2)
    return sizes


def survivors(n: int, rung: int, last: int) -> int:
    """Candidates rung ``rung`` of ``last`` sends on: the best 1/``ETA``, never fewer than the ``CONFIRM_TOP``
    the confirmation takes (a small rung's ranking is too noisy to cut to one)."""
    return max(min(CONFIRM_TOP, n), math.ceil(n / ETA)) if rung < last - 1 else min(CONFIRM_TOP, n)


def rung_runs(n_cands: int, sizes: list[int], n_pub: int = 0) -> list[int]:
    """Runs on each rung at most (the shortlisted candidates that survive to it, and the generator alone)."""
    out, alive = [], min(n_cands, SHORTLIST + n_pub)
    for r in range(len(sizes)):
        out.append(alive + 1)
        alive = survivors(alive, r, len(sizes) - 1)
    return out


def confirm_runs(n_cands: int) -> int:
    """Runs of the confirmation: the generator alone and the best survivors, on each of ``CONFIRM`` draws."""
    return (1 + min(CONFIRM_TOP, max(n_cands, 1))) * CONFIRM


def estimate(n_cands: int, sizes: list[int], t_run: float, t_feat: float, n_pub: int = 0, t_score=None) -> float:
    """Seconds the search takes: the screen (every candidate at ``SCREEN_N``, no features), every rung's
    shortlisted candidates (and the generator alone) at its size, then the confirmation, at ``t_run`` +
    ``t_feat`` seconds per sample, and ``t_score(n)`` seconds per metric value on ``n`` rows (the pooled
    test of each confirmed survivor: two values on the pooled draws, two on each half of every draw)."""
    t_score = t_score or (lambda n: 0.0)
    total = (n_cands + 1) * SCREEN_N * t_run
    for k, n in zip(rung_runs(n_cands, sizes, n_pub), sizes):
        total += k * (n * (t_run + t_feat) + t_score(n))
    n = sizes[-1]
    pooled = 2 * t_score(CONFIRM * n) + 4 * CONFIRM * t_score(n // 2)
    return total + confirm_runs(n_cands) * n * (t_run + t_feat) + min(CONFIRM_TOP, n_cands) * pooled


def fit_plan(
    cands: list[Candidate], n_final: int, time_budget: float | None, t_run, t_feat, t_score=None
) -> tuple[list, list]:
    """Drop grid candidates (never the published settings), then halve the final size, until the estimate
    fits ``time_budget``; when even half of it is left over, start at a larger rung instead (drop the
    smallest: a small rung's ranking is the noisiest cut of the search); where halving overshot, grow the
    final size again to the largest that fits (at most ``n_final``): the budget's time goes to a larger
    validation sample, whose ranking is less noisy. ``t_score``: as for :func:`estimate`. Returns
    (candidates, rung sizes)."""
    sizes = sizes_for(n_final)
    if time_budget is None:
        return cands, sizes
    n_pub = sum(1 for c in cands if c.name)  # only grid candidates are dropped: this count stays

    def cost(sz: list[int]) -> float:  # the estimate of the plan with the candidates kept so far
        return estimate(len(cands), sz, t_run(cands), t_feat, n_pub, t_score)

    while cost(sizes) > time_budget:
        grid = [c for c in cands if not c.name]
        if len(cands) > 12 and len(grid) > 6:
            drop = set(map(id, grid[1::2]))
            cands = [c for c in cands if id(c) not in drop]
        elif sizes[-1] >= 2 * MIN_N:
            sizes = sizes_for(sizes[-1] // 2)
        else:
            log.warning("tune: the smallest search exceeds time_budget=%gs; it stops when the time is up", time_budget)
            break
    skip = 0  # the smallest rungs left out
    while len(sizes) - skip > 2 and cost(sizes[skip + 1 :]) <= time_budget / 2:
        skip += 1
    if sizes[-1] < n_final and cost(sizes[skip:]) <= time_budget:
        lo, hi = sizes[-1], n_final + 1  # lo fits; the largest final size < hi that fits, by bisection
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if cost(sizes_for(mid)[skip:]) <= time_budget else (lo, mid)
        sizes = sizes_for(lo)
    return cands, sizes[skip:]


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


def timings(G, D, x: Tensor, features, latent_dim, prior, y, n: int = 64) -> tuple[float, float]:
    """CPU seconds per sample of one value-and-gradient evaluation of D∘G (on ``n`` chains, after a 2-chain
    warm-up: a 16-chain call overstated small models' batched cost several times), and of the features."""
    z = sample_latents(n, latent_dim, prior, generator=2).requires_grad_(True)
    cond = () if y is None else (y.repeat(n // y.shape[0] + 1)[:n],)
    with frozen(G, D):
        for m in (2, n):
            t0 = time.process_time()
            out = D(G(z[:m], *(c[:m] for c in cond)), *(c[:m] for c in cond))
            torch.autograd.grad(out.sum(), z, allow_unused=True)
    t_d = (time.process_time() - t0) / n
    t0 = time.process_time()
    if features is not None:
        features(x[:16])
    return t_d, (time.process_time() - t0) / min(16, x.shape[0])
