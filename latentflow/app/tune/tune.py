"""``tune``: pick the method and settings that improve a given GAN, by successive halving on held-out data.

The real samples are split into a calibration part (Platt scaling of D, ``latentflow.calibrate``) and a
validation part. The candidates are the methods' own search spaces (``Kernel.search_space``: every registered
method that can sample a G with an unconditioned D(x), plug-ins included, each with its grid and its
published settings; raw and calibrated D where a calibration applies) and the generator alone (the ``none``
method, the baseline); step sizes also on the model's own scale (``SearchContext.step_scale`` = √latent_dim /
the median latent gradient norm of the energy at the prior's samples). A candidate whose declared D
evaluations per sample (``Kernel.cost``, once-per-run costs shared by as many chains as the validation set
has) exceed ``budget`` is refused. Every candidate first runs on a small
batch without features (``tune_search.screen``): divergence, acceptance ~0 and D's verdict prune, and the
closeness of the calibrated D's logits on the samples to its logits on real data ranks; only the best few and every
surviving published setting are scored on features, by successive halving (Jamieson & Talwalkar 2016) until
the survivors and the generator alone meet on the largest sample. ``time_budget`` (CPU seconds) thins the
grid and shrinks the rungs until the logged estimate fits; no candidate starts after it is spent.

Metrics: ``"fid"`` — Fréchet distance ``||μ_a - μ_b||² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^{1/2})`` between
feature Gaussians on the last rung and the confirmation, KID (unbiased at small n) on the earlier rungs;
``"kid"`` — unbiased MMD² with the kernel ``(a·b / F + 1)³`` over subsets; ``"emd"`` — exact W1 on 2-D
points; ``"fid_recall"`` — the best FID among the candidates whose PRDC recall is no worse than the
generator's minus its noise margin. Features: :mod:`latentflow.app.tune.tune_features` (Inception for images by
default). Class-conditional models: every run (candidates, the generator alone, the confirmation and the
calibration) uses the same per-chain labels, uniform or drawn from ``real_labels``.

Confirmation rule: the best ``CONFIRM_TOP`` survivors and the generator alone run on ``CONFIRM`` fresh paired
draws (same latents and labels), pooled; a survivor wins when it lowers the pooled metric by more than
``z_win`` standard errors of the pooled difference (FID: a paired bootstrap over chains; KID/EMD: the split
halves of each draw), the best such one, else the generator alone is recommended, so the recipe is never
worse than the generator on validation.

A calibrated D applies as each method declares (``Kernel.calibration``): a ``"temperature"`` method (DDLS)
needs no wrapped D: with ``d_cal = a·s + b`` the energy ``-d_cal/T`` has the gradient of ``-s/(T/a)``, so it
runs on the raw D at temperature ``T/a`` (and saves as plain options); a ``"discriminator"`` method (DRS,
MH-GAN) runs on the calibrated D itself.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import Tensor

from ..._io import atomic_write_json, atomic_write_text
from ...api import refine
from ...calibration import calibrate
from ...errors import LatentflowError, OptionError
from ...result import Result
from ...samplers import NO_REFINEMENT, Candidate, SearchContext, generate, kernel
from ...samplers import methods as _methods
from ..fit import misfit
from .tune_checks import as_float, check_args, check_models
from .tune_features import resolve_features
from .tune_metrics import Scorer, frechet, kid  # noqa: F401
from .tune_plan import CONFIRM_TOP, confirm_runs, estimate, fit_plan, run_cost, rung_runs, step_scale, timings
from .tune_search import Setup, confirm, d_vals, decide, keeps_recall, run_rungs

log = logging.getLogger(__name__)
METRICS = ("fid", "kid", "emd", "fid_recall")
#: the model ``tune`` searches for: a generator with an unconditioned D(x)
GD_MODEL = {"roles": ["G", "D"], "d_conditioning": None}


def searched_methods() -> tuple[str, ...]:
    """The methods ``tune`` searches by default: every registered refinement that can sample a G with D(x)."""
    ms = _methods()
    return tuple(m for m, info in ms.items() if info.kernel.refines and misfit(m, GD_MODEL) is None)


def candidates(
    budget: int, methods=None, calibrated: bool = True, prior: str = "normal", step_scale: float = 1.0
) -> list[Candidate]:
    """The search: the generator alone, then each method's search space (``Kernel.search_space``) at
    ``budget`` D evaluations per sample, restricted to ``methods``; calibrated candidates when ``calibrated``;
    with ``step_scale`` != 1 the grids once more with their step sizes scaled (published settings as given)."""
    out = list(kernel(NO_REFINEMENT).search_space(SearchContext(budget=budget)))
    for scale in (1.0, step_scale) if step_scale != 1.0 else (1.0,):
        ctx = SearchContext(budget=budget, calibrated=calibrated, prior=prior, step_scale=scale)
        for m in methods or searched_methods():
            if kernel(m).refines:
                out += [c for c in kernel(m).search_space(ctx) if scale == 1.0 or not c.name]
    return list({c.label: c for c in reversed(out)}.values())[::-1]


@dataclass
class TuneResult:
    """The winner of ``tune`` and every candidate's score (``table``)."""

    method: str
    options: dict
    calibrated: bool
    calibration: dict | None
    table: list
    G: Callable = field(repr=False)
    D: Callable = field(repr=False)
    cal_D: Callable | None = field(repr=False)
    d_output: str = "logit"
    prior: str = "normal"
    metric: str = "fid"
    summary: dict = field(default_factory=dict)
    num_classes: int = 0
    y: int | None = None

    def run_options(self) -> dict:
        """The options ``refine`` gets for the winner (``d_output``/``prior`` included)."""
        return _run_options(Candidate(self.method, self.options, self.calibrated), self.d_output, self.prior)

    def refine(self, z: Tensor, seed: int | None = 0, y=None) -> Result:
        """Run the winner on latents ``z`` (calibration included); the generator alone returns ``G(z)``. A
        class-conditional model takes labels ``y`` (``[B]`` or one int; default: the class ``tune`` was given,
        else uniform per chain)."""
        cand = Candidate(self.method, self.options, self.calibrated)
        y = self.y if y is None else y
        return _run(self.G, self.D, self.cal_D, cand, z, seed, self.d_output, self.prior, y, self.num_classes)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "options": dict(self.options),
            "run_options": self.run_options(),
            "calibrated": self.calibrated,
            "calibration": self.calibration,
            "metric": self.metric,
            "num_classes": self.num_classes,
            "labels": None if not self.num_classes else ("uniform" if self.y is None else self.y),
            "summary": self.summary,
            "table": self.table,
        }

    def save(self, folder) -> Path:
        """Write ``tune.json`` into ``folder``; when it holds a model (``latentflow.json``), also set the
        winner's options as that model's ``sampling`` block, which ``latentflow sample --model FOLDER
        --method M`` applies (the generator alone leaves it). A method that runs on the calibrated D itself
        (DRS, MH-GAN) gets the calibration as ``calibration_a`` and ``calibration_b`` beside its options, with
        the model's own ``d_output``: ``sample`` runs it on the same calibrated D."""
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "tune.json", self.to_dict())
        spec = folder / "latentflow.json"
        k = kernel(self.method)
        if spec.exists() and k.refines:
            doc = json.loads(spec.read_text())
            # the block names D's own d_output; a calibrated D is the model's D with the fit beside it
            raw = _run_options(Candidate(self.method, self.options), self.d_output, self.prior)
            opts = {k: v for k, v in raw.items() if k not in ("progress", "generator")}
            if self.calibrated and k.calibration == "discriminator":
                cal = self.calibration or {}  # a calibrated pick always has its fit; a hand-made result may not
                if "a" not in cal or "b" not in cal:
                    raise OptionError(f"calibrated {self.method}: calibration needs a and b; got {cal!r}")
                opts.update(calibration_a=float(cal["a"]), calibration_b=float(cal["b"]))
            doc["sampling"] = {**(doc.get("sampling") or {}), self.method: opts}
            atomic_write_text(spec, json.dumps(doc, indent=2) + "\n")
        return folder


def _uses_calibrated_d(c: Candidate) -> bool:
    return c.calibrated and kernel(c.method).calibration == "discriminator"


def _run_options(c: Candidate, d_output: str, prior: str) -> dict:
    valid = kernel(c.method).defaults()
    opts = dict(c.options)
    if "d_output" in valid:
        opts["d_output"] = "logit" if _uses_calibrated_d(c) else d_output
    if "prior" in valid:
        opts["prior"] = prior
    return opts


def _run(G, D, cal_D, c, z: Tensor, seed, d_output: str, prior: str, y=None, k: int = 0, cap=None) -> Result:
    """Run candidate ``c``; ``cap``: D evaluations per sample after which a method that draws proposals until
    it accepts (its ``max_proposals`` option) gives up, so no search run exceeds the budget by far."""
    opts = _run_options(c, d_output, prior)
    if k > 0:
        opts["num_classes"] = k
    if cap is not None and "max_proposals" in kernel(c.method).defaults() and "max_proposals" not in c.options:
        opts["max_proposals"] = max(1, int(cap * z.shape[0]))
    Dc = cal_D if _uses_calibrated_d(c) else D
    return refine(G, Dc, z, method=c.method, y=y, seed=seed, progress=False, **opts)


def tune(
    G,
    D,
    real: Tensor,
    *,
    latent_dim: int,
    prior: str = "normal",
    d_output: str = "logit",
    budget: int = 100,
    features=None,
    metric: str = "fid",
    methods=None,
    seed: int = 0,
    progress: bool = True,
    time_budget: float | None = None,
    num_classes: int | None = None,
    y: int | None = None,
    real_labels: Tensor | None = None,
) -> TuneResult:
    """Search methods and settings for ``G``/``D`` on the metric against ``real``; returns a ``TuneResult``.

    ``budget`` caps D evaluations per sample (``n_D_forward / n``); ``features``: ``"inception"``, ``"raw"``,
    a callable ``x -> [B, ...]`` (run under ``no_grad``) or None (Inception for images, the Fashion-MNIST
    classifier for 1x28x28, raw coordinates for points; :mod:`latentflow.app.tune.tune_features`); ``metric``:
    ``"fid"``, ``"kid"``, ``"emd"`` (2-D points) or ``"fid_recall"``; ``methods`` restricts the search (the
    generator alone always competes); ``time_budget``: CPU seconds the search fits into. A class-conditional
    model (G or D has ``num_classes``, or ``num_classes=``) runs every candidate on the same per-chain
    labels: the class ``y`` for all, else drawn from ``real_labels`` (the real samples' labels, which the
    calibration also uses), else uniform. Deterministic for a ``seed``. ``progress``: a bar with ETA."""
    args = (G, D, latent_dim, prior, d_output, budget, metric, features, methods, seed, time_budget, num_classes)
    check_args(*args, metrics=METRICS, searched=searched_methods())
    chk = check_models(G, D, as_float(real), latent_dim, prior, num_classes, y, real_labels)
    real, k, labels = chk.real, chk.num_classes, chk.real_labels
    t_start = time.process_time()
    perm = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(seed))
    n_cal = max(10, int(0.3 * real.shape[0]))
    real_cal, real_val = real[perm[:n_cal]], real[perm[n_cal:]]
    feats = None if metric == "emd" else resolve_features(features, tuple(real.shape[1:]), chk.value_range)
    t_d, t_f = timings(G, D, real_val, feats, latent_dim, prior, None if not k else torch.arange(16) % k)
    if time_budget is not None and real_val.shape[0] > (cap := max(256, int(0.3 * time_budget / max(t_f, 1e-9)))):
        log.info("tune: %d of the %d validation samples fit time_budget", cap, real_val.shape[0])
        real_val, perm = real_val[:cap], perm[: n_cal + cap]
    score = Scorer(metric, feats, real_val, seed)
    s = Setup(
        D=D,
        d_kind=d_output,
        latent_dim=latent_dim,
        prior=prior,
        num_classes=k,
        label_pool=None if labels is None else labels[perm[n_cal:]],
        y=y,
        seed=seed,
        budget=budget,
        score=score,
    )
    cal_D, calib = None, None
    z_cal, y_cal = s.draw(n_cal, seed + 7919)
    if k and labels is None and y is None:
        log.warning("tune: no real_labels for a class-conditional model: the calibrated candidates are skipped")
    else:
        try:
            y_real = (
                None if not k else (labels[perm[:n_cal]] if labels is not None else torch.full((n_cal,), cast(int, y)))
            )
            y_cal = y_cal if labels is None else y_real
            fake = generate(G, z_cal, y=y_cal)
            cal_D = calibrate(D, real_cal, fake, d_output=d_output, real_labels=y_real, fake_labels=y_cal)
            calib = dict(cal_D.fit_info)
        except LatentflowError as e:
            log.warning("tune: calibration failed (%s); calibrated candidates are skipped", e)
    a = calib["a"] if calib else 0.0
    if cal_D is not None and a > 1e-8:  # D's verdict prunes; a calibration that flips D's order does not apply
        s.D, s.d_kind = cal_D, "logit"
    scale = step_scale(G, D, latent_dim, prior, d_output, s.draw(16, 1)[1])
    cands = candidates(budget, methods, calibrated=a > 1e-8, prior=prior, step_scale=scale)
    cands = [
        Candidate(c.method, kernel(c.method).calibrated_options(c.options, a), True, c.name)
        if c.calibrated and kernel(c.method).calibration == "temperature"
        else c
        for c in cands
    ]
    yv = None if not k else (s.label_pool[:256] if s.label_pool is not None else s.draw(256, 3)[1])
    s.real_d = d_vals(s.D, real_val[:256], None if yv is None else yv[: real_val[:256].shape[0]], s.d_kind)
    s.run = lambda c, z, yy, sd: _run(G, D, cal_D, c, z, sd, d_output, prior, yy, k, cap=budget)
    none, rest = cands[0], [c for c in cands[1:] if run_cost(c) <= budget]
    n_final = real_val.shape[0] if metric != "emd" else min(real_val.shape[0], 2000)
    t_run = lambda cs: t_d * sum(min(run_cost(c), budget) for c in cs) / max(len(cs), 1)  # noqa: E731
    left = None if time_budget is None else time_budget - (time.process_time() - t_start)
    rest, sizes = fit_plan(rest, n_final, left, t_run, t_f, score.seconds)
    # the budget is judged at the validation set's size, the chains the plan was sized for: a once-per-run cost
    # (a probe, DOT's K_eff estimate) is shared by a user's chains, not by a rung that time_budget thinned
    s.n_use = max(n_final, sizes[-1])
    for c in (c for c in cands[1:] if run_cost(c, s.n_use) > budget):  # refused before any run
        s.table.append(
            dict(label=c.label, method=c.method, options=c.options, calibrated=c.calibrated, rung=0, n=s.n_use,
                 metric=None, d_evals_per_sample=run_cost(c, s.n_use), cpu_s=0.0, status="over_budget")
        )  # fmt: skip
    rest = [c for c in rest if run_cost(c, s.n_use) <= budget]
    n_pub = sum(1 for c in rest if c.name)
    est = estimate(len(rest), sizes, t_run(rest), t_f, n_pub, score.seconds)
    log.info(
        "tune: %d candidates, rungs %s, features %s, step scale %.3g: about %.0f CPU s (%.2g s/sample of D∘G, "
        "%.2g s/sample of features)", len(rest), sizes, feats.name if feats else "-", scale, est, t_d, t_f,
    )  # fmt: skip
    s.deadline = None if time_budget is None else t_start + time_budget
    from tqdm.auto import tqdm

    total = len(rest) + sum(rung_runs(len(rest), sizes, n_pub)) + confirm_runs(len(rest))  # at most
    with tqdm(total=total, desc="tune", unit="run", disable=not progress) as bar:
        s.bar = bar
        scores, ranked, rung = run_rungs(s, none, rest, sizes)
        n = sizes[rung]
        if metric == "fid_recall":
            ranked = [c for c in ranked if keeps_recall(scores, c.label, none.label, n)]
        top = ranked[:CONFIRM_TOP]
        confs = confirm(s, none, top, n) if top and not s.over_time() else {}
        bar.total = bar.n  # pruned and skipped runs never came: the bar ends full
    won = [c for c in top if decide(confs.get(c.label, {}), metric == "fid_recall", n, len(top))]
    win = min(won, key=lambda c: confs[c.label]["best"]) if won else none
    best = win if won else (top[0] if top else none)
    conf = confs.get(best.label, {})
    m_none = conf["generator"] if conf else scores[none.label][0]
    m_win = conf["best"] if (conf and win != none) else m_none
    summary = dict(
        metric=metric,
        n_validation=n,
        none=m_none,
        best_candidate=best.label,
        best_metric=scores[best.label][0],
        confirm=conf,
        confirmed={c: {k: v[k] for k in ("best", "diff", "se")} for c, v in confs.items()},
        diff_mean=conf.get("diff", 0.0),
        diff_se=conf.get("se", math.inf),
        winner=win.label,
        winner_metric=m_win,
        improvement_pct=100 * (1 - m_win / m_none) if m_none else 0.0,
        n_candidates=len(cands),
        rung_sizes=sizes,
        budget_n=s.n_use,
        features=feats.name if feats else None,
        step_scale=scale,
        estimate_cpu_s=est,
        cpu_s=time.process_time() - t_start,
        time_budget=time_budget,
        time_out=s.over_time(),  # the search stopped early (no confirmation: the generator alone is kept)
        metric_name=s.key(rung == len(sizes) - 1),
        verdict=(
            "refinement beats the generator alone beyond noise"
            if win != none
            else f"nothing beats the generator alone beyond noise: use {NO_REFINEMENT}"
        ),
    )
    log.info("tune: %s", summary["verdict"])
    return TuneResult(
        method=win.method,
        options=dict(win.options),
        calibrated=win.calibrated,
        calibration=calib,
        table=s.table,
        G=G,
        D=D,
        cal_D=cal_D,
        d_output=d_output,
        prior=prior,
        metric=metric,
        summary=summary,
        num_classes=k,
        y=y,
    )
