"""``tune``: pick the method and settings that improve a given GAN, by successive halving on held-out data.

The real samples are split into a calibration part (Platt scaling of D, ``latentflow.calibrate``) and a
validation part. The candidates are the methods' own search spaces (``Kernel.search_space``: every registered
method that can sample a G with an unconditioned D(x), plug-ins included, each with its grid and its
published settings; raw and calibrated D where a calibration applies) and the generator alone (the ``none``
method, the baseline). Each is scored on the validation metric with few samples; the best third go on with
twice the samples (successive halving, Jamieson & Talwalkar 2016), until the survivors and the generator
alone meet on the largest sample, from the same initial latents, and the best survivor is confirmed on
fresh latents. A candidate whose declared D evaluations per sample (``Kernel.cost``) exceed ``budget`` is
refused.

Metrics: ``"fid"`` — Fréchet distance ``||μ_a - μ_b||² + tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^{1/2})`` between
feature Gaussians; ``"kid"`` — unbiased MMD² with the kernel ``(a·b / F + 1)³`` over subsets; ``"emd"`` —
exact W1 on 2-D points (``latentflow.metrics.emd``). The winner must beat the generator alone on three fresh
paired latent draws, each time and on average by more than two standard errors of the paired differences;
otherwise the generator alone is recommended, so the recipe is never worse than the generator on validation.

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

import torch
from torch import Tensor

from .._io import atomic_write_json, atomic_write_text
from ..api import refine
from ..calibration import calibrate
from ..errors import LatentflowError, OptionError, ShapeError
from ..result import Result
from ..rng import sample_latents
from ..samplers import NO_REFINEMENT, Candidate, SearchContext, generate, kernel
from ..samplers import methods as _methods
from .fit import misfit
from .tune_metrics import EMD_MAX_N, default_features, frechet, kid, scorer  # noqa: F401

log = logging.getLogger(__name__)
METRICS = ("fid", "kid", "emd")
CONFIRM = 3  # paired confirmation draws of the best survivor against the generator alone
ETA = 3  # successive halving keeps the best 1/ETA of the candidates at each rung
#: the model ``tune`` searches for: a generator with an unconditioned D(x)
GD_MODEL = {"roles": ["G", "D"], "d_conditioning": None}


def searched_methods() -> tuple[str, ...]:
    """The methods ``tune`` searches by default: every registered refinement that can sample a G with D(x)."""
    ms = _methods()
    return tuple(m for m, info in ms.items() if info.kernel.refines and misfit(m, GD_MODEL) is None)


def candidates(budget: int, methods=None, calibrated: bool = True, prior: str = "normal") -> list[Candidate]:
    """The search: the generator alone, then each method's search space (``Kernel.search_space``) at
    ``budget`` D evaluations per sample, restricted to ``methods``; calibrated candidates when ``calibrated``."""
    ctx = SearchContext(budget=budget, calibrated=calibrated, prior=prior)
    out = list(kernel(NO_REFINEMENT).search_space(ctx))
    for m in methods or searched_methods():
        if kernel(m).refines:
            out += kernel(m).search_space(ctx)
    return out


def predicted_cost(c: Candidate) -> float:
    """D forward evaluations per sample the candidate's method declares for its options."""
    return float(kernel(c.method).cost(c.options).n_D_forward)


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

    def run_options(self) -> dict:
        """The options ``refine`` gets for the winner (``d_output``/``prior`` included)."""
        return _run_options(Candidate(self.method, self.options, self.calibrated), self.d_output, self.prior)

    def refine(self, z: Tensor, seed: int | None = 0) -> Result:
        """Run the winner on latents ``z`` (calibration included); the generator alone returns ``G(z)``."""
        cand = Candidate(self.method, self.options, self.calibrated)
        return _run(self.G, self.D, self.cal_D, cand, z, seed, self.d_output, self.prior)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "options": dict(self.options),
            "run_options": self.run_options(),
            "calibrated": self.calibrated,
            "calibration": self.calibration,
            "metric": self.metric,
            "summary": self.summary,
            "table": self.table,
        }

    def save(self, folder) -> Path:
        """Write ``tune.json`` into ``folder``; when it holds a model (``latentflow.json``), also set the
        winner's options as that model's ``sampling`` block, which ``latentflow sample --model FOLDER
        --method M`` applies. The generator alone and a method that needs the calibrated D itself (DRS,
        MH-GAN: not expressible as options) leave it."""
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "tune.json", self.to_dict())
        spec = folder / "latentflow.json"
        k = kernel(self.method)
        if spec.exists() and k.refines:
            if self.calibrated and k.calibration == "discriminator":
                log.warning("tune: calibrated %s cannot be written as sampling options; see tune.json", self.method)
            else:
                doc = json.loads(spec.read_text())
                opts = {k: v for k, v in self.run_options().items() if k not in ("progress", "generator")}
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


def _run(G, D, cal_D, c: Candidate, z: Tensor, seed, d_output: str, prior: str) -> Result:
    opts = _run_options(c, d_output, prior)
    return refine(G, cal_D if _uses_calibrated_d(c) else D, z, method=c.method, seed=seed, progress=False, **opts)


def _check_inputs(G, D, real, latent_dim, prior, d_output, budget, metric, features, methods, seed=0):
    if not callable(G) or not callable(D):
        raise OptionError(f"G and D must be callables; got {type(G).__name__} and {type(D).__name__}")
    if not isinstance(real, Tensor) or real.dim() < 2 or real.shape[0] < 20:
        got = tuple(real.shape) if isinstance(real, Tensor) else type(real).__name__
        raise ShapeError(f"real must be a tensor [N, *X] with N >= 20; got {got}")
    if not torch.isfinite(real).all():
        raise ShapeError("real must hold finite values only")
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise OptionError(f"latent_dim must be an int >= 1; got {latent_dim!r}")
    if prior not in ("normal", "uniform"):
        raise OptionError(f'prior must be "normal" or "uniform"; got {prior!r}')
    if d_output not in ("logit", "prob", "critic"):
        raise OptionError(f'd_output must be "logit", "prob" or "critic"; got {d_output!r}')
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise OptionError(f"budget must be an int >= 1 (D evaluations per sample); got {budget!r}")
    if metric not in METRICS:
        raise OptionError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    if features is not None and not callable(features):
        raise OptionError(f"features must be a callable x -> [B, F] or None; got {type(features).__name__}")
    searched = searched_methods()
    bad = sorted(set(methods or ()) - set(searched))
    if bad:
        raise OptionError(f"methods must be a subset of {', '.join(searched)}; got {', '.join(bad)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise OptionError(f"seed must be an int in 0..2**63-1; got {seed!r}")
    _check_models_fit(G, D, real, latent_dim, prior)


def _check_models_fit(G, D, real: Tensor, latent_dim: int, prior: str) -> None:
    """G's samples must have the real samples' shape, and D must give one value per row of them: checked on
    two rows before any candidate runs (``ShapeError`` naming what came)."""
    from ..energy import d_values

    z = sample_latents(2, latent_dim, prior, generator=0)
    try:
        x = generate(G, z)  # eval mode, no gradients, in chunks: as every candidate's G runs
    except LatentflowError:
        raise
    except Exception as e:  # noqa: BLE001  (a user's G that cannot take the latents)
        raise ShapeError(
            f"G failed on latents of shape (2, {latent_dim}) (latent_dim): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(x, Tensor) or tuple(x.shape) != (2, *real.shape[1:]):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(
            f"G's samples must have the real samples' shape [*, {', '.join(map(str, real.shape[1:]))}]; "
            f"G(z [2, {latent_dim}]) returned {got}"
        )
    try:
        with torch.no_grad():
            d_values(D(real[:2].to(x.dtype)), 2, "D(x)")
    except LatentflowError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ShapeError(
            f"D failed on real samples of shape {tuple(real[:2].shape)}: {type(e).__name__}: {e}"
        ) from None


def tune(
    G,
    D,
    real: Tensor,
    *,
    latent_dim: int,
    prior: str = "normal",
    d_output: str = "logit",
    budget: int = 100,
    features: Callable | None = None,
    metric: str = "fid",
    methods=None,
    seed: int = 0,
    progress: bool = True,
) -> TuneResult:
    """Search methods and settings for ``G``/``D`` on the metric against ``real``; returns a ``TuneResult``.

    ``budget`` caps D evaluations per sample (``n_D_forward / n``); ``features`` maps samples to feature
    rows for ``"fid"``/``"kid"`` (default: raw coordinates for low-dimensional data, the Fashion-MNIST
    classifier for 28x28 grey images); ``methods`` restricts the search (the generator alone always competes).
    Deterministic for a ``seed``. Logs one line per rung when ``progress``."""
    _check_inputs(G, D, real, latent_dim, prior, d_output, budget, metric, features, methods, seed)
    t_start = time.process_time()
    perm = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(seed))
    n_cal = max(10, int(0.3 * real.shape[0]))
    real_cal, real_val = real[perm[:n_cal]], real[perm[n_cal:]]
    if features is None and metric != "emd":
        features = default_features(real)
        if features is None:
            raise OptionError(
                f"features is needed for samples of shape {tuple(real.shape[1:])}: pass a callable x -> [B, F]"
            )
    score = scorer(metric, features, real_val, seed)
    cal_D, calib = None, None
    z_cal = sample_latents(n_cal, latent_dim, prior, generator=seed + 7919)
    try:
        cal_D = calibrate(D, real_cal, generate(G, z_cal), d_output=d_output)
        calib = dict(cal_D.fit_info)
    except LatentflowError as e:
        log.warning("tune: calibration failed (%s); calibrated candidates are skipped", e)
    a = calib["a"] if calib else 0.0
    cands = candidates(budget, methods, calibrated=a > 1e-8, prior=prior)
    cands = [
        Candidate(c.method, kernel(c.method).calibrated_options(c.options, a), True, c.name)
        if c.calibrated and kernel(c.method).calibration == "temperature"
        else c
        for c in cands
    ]
    table, over = [], [c for c in cands if predicted_cost(c) > budget]
    for c in over:
        table.append(
            dict(
                label=c.label,
                method=c.method,
                options=c.options,
                calibrated=c.calibrated,
                rung=0,
                n=0,
                metric=None,
                d_evals_per_sample=predicted_cost(c),
                cpu_s=0.0,
                status="over_budget",
            )
        )
    alive = [c for c in cands if c not in over]
    n_final = min(real_val.shape[0], EMD_MAX_N) if metric == "emd" else real_val.shape[0]
    sizes = [n_final]
    while len(sizes) < 4 and sizes[0] // 2 >= 64:
        sizes.insert(0, sizes[0] // 2)
    none = cands[0]
    for rung, n in enumerate(sizes):
        z = sample_latents(n, latent_dim, prior, generator=seed * 1009 + rung + 1)
        scores = {}
        for c in alive:
            t0 = time.process_time()
            row = dict(label=c.label, method=c.method, options=c.options, calibrated=c.calibrated, rung=rung, n=n)
            if c.name:  # the method's published setting
                row["published"] = c.name
            try:
                res = _run(G, D, cal_D, c, z, seed + rung, d_output, prior)
                evals = float(res.evals.n_D_forward) / n
                ok = bool(torch.isfinite(res.x).all())
                status = "ok" if ok and evals <= budget else ("over_budget" if ok else "diverged")
                m = score(res.x) if status == "ok" else None
            except LatentflowError as e:
                evals, status, m = None, f"error: {e}", None
            row.update(metric=m, d_evals_per_sample=evals, cpu_s=time.process_time() - t0, status=status)
            table.append(row)
            if m is not None and math.isfinite(m):
                scores[c.label] = m
        ranked = sorted((c for c in alive if c.label in scores and c != none), key=lambda c: scores[c.label])
        if progress:
            top = ranked[0].label if ranked else "-"
            log.info(
                "tune rung %d: n=%d, %d candidates, best %s (%.4g), generator alone %.4g",
                rung,
                n,
                len(alive),
                top,
                scores[ranked[0].label] if ranked else float("nan"),
                scores.get(none.label, float("nan")),
            )
        if rung < len(sizes) - 1:
            keep = max(1, math.ceil(len(ranked) / ETA)) if rung < len(sizes) - 2 else min(3, len(ranked))
            alive = [none] + ranked[:keep]
    # confirmation on fresh latents (not used for selection): the best survivor must beat G alone on each of
    # CONFIRM paired draws and on average by more than 2 standard errors of the paired differences
    if none.label not in scores:
        why = next((r["status"] for r in reversed(table) if r["label"] == none.label), "no score")
        raise LatentflowError(
            f"tune: the generator's own samples ({NO_REFINEMENT}) could not be scored against real: {why}"
        )
    n, m_none = sizes[-1], scores[none.label]
    best = ranked[0] if ranked else none
    diffs, conf = [], []
    if best != none:
        for r in range(CONFIRM):
            z = sample_latents(n, latent_dim, prior, generator=seed * 1009 + 100 + r)
            pair = [_run(G, D, cal_D, c, z, seed + 100 + r, d_output, prior).x for c in (none, best)]
            a_, b_ = score(pair[0]), score(pair[1])
            conf.append((a_, b_))
            diffs.append(a_ - b_)
    mean = sum(diffs) / len(diffs) if diffs else 0.0
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs)) if len(diffs) > 1 else math.inf
    win = best if diffs and min(diffs) > 0 and mean > 2 * se else none
    m_none_c = sum(c[0] for c in conf) / len(conf) if conf else m_none
    m_win_c = (sum(c[1] for c in conf) / len(conf)) if (conf and win != none) else m_none_c
    summary = dict(
        metric=metric,
        n_validation=n,
        none=m_none_c,
        best_candidate=best.label,
        best_metric=scores[best.label],
        confirm=[list(c) for c in conf],
        diff_mean=mean,
        diff_se=se,
        winner=win.label,
        winner_metric=m_win_c,
        improvement_pct=100 * (1 - m_win_c / m_none_c) if m_none_c else 0.0,
        n_candidates=len(cands),
        rung_sizes=sizes,
        cpu_s=time.process_time() - t_start,
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
        table=table,
        G=G,
        D=D,
        cal_D=cal_D,
        d_output=d_output,
        prior=prior,
        metric=metric,
        summary=summary,
    )
