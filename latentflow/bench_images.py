"""The image benchmark (``latentflow bench images``): refinement methods on an image GAN at an equal budget.

For one model (default the bundled ``dcgan-fashion``) and a list of rows (the generator alone, DRS,
MH-GAN, DOT, DDLS ULA / MALA and the calibrated "(cal)" variants of seed 001 §5.2), it

1. draws the same ``num`` latents for every row (paired comparison) and runs each method at the same
   **budget**: ``budget`` discriminator forward evaluations per sample for the iterative methods
   (DDLS and DOT: ``steps = budget``, each step also one D backward; MH-GAN: ``k = budget``); DRS's
   cost is set by its acceptance rate and recorded as measured. The exact G/D forward and backward
   evaluations per sample (from ``Result.info``, plus the calibration's, amortised over ``num``) and the
   wall time are recorded per row;
2. computes FID-FMNIST, KID and the classifier score with the ``fmnist-classifier`` features against
   Fashion-MNIST test (torch-fidelity's dict kept untouched under ``fidelity_fmnist``); with
   ``inception=True`` also Inception FID (offline weights where torch-fidelity's are absent) on at most
   ``inception_num`` samples of the generator and of the best DDLS row. The Inception Score with the
   offline weights is recorded as an error, never a number;
3. records FID-FMNIST every few steps of each DDLS row (the sampler's ``callback`` keeps the latents;
   seed 001 Figure 5) and writes ``results.json`` first, then ``results.md`` built from it, a plot of
   FID-FMNIST against sampler steps (``fid_vs_steps.png``) and before/after grids (``grid_*.png``).

Failing rows record ``error``; the run goes on and :func:`run_images_bench` returns 1 at the end.
"""
from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import rng
from .errors import OptionError
from .report import env_info, write_json

log = logging.getLogger("latentflow.bench")

SCHEMA = 1
SUITE = "images"
EVAL_KEYS = ("n_G_forward", "n_G_backward", "n_D_forward", "n_D_backward")

# flat metric names of a row (the torch-fidelity dicts are kept as they are under fidelity_*)
M_FID = "fid_fmnist"
M_KID = "kid_fmnist"
M_KID_STD = "kid_fmnist_std"
M_CS = "classifier_score"
M_CS_STD = "classifier_score_std"
M_IFID = "inception_fid"
M_IS = "inception_score"


@dataclass(frozen=True)
class ImageVariant:
    """One row: a key (as given on the command line), a label, a method (``"none"`` = the generator
    alone), explicit options (over the model's recommended ones and the budget's), and whether D is
    calibrated first (the "(cal)" rows)."""
    key: str
    label: str
    method: str
    options: dict = field(default_factory=dict)
    calibrated: bool = False


VARIANTS = {
    "generator": ImageVariant("generator", "generator", "none"),
    "drs": ImageVariant("drs", "DRS", "drs"),
    "mh": ImageVariant("mh", "MH-GAN", "mh"),
    "dot": ImageVariant("dot", "DOT", "dot"),
    # the model's recommended DDLS settings apply to every DDLS row; the ULA/MALA rows pin the one
    # option that tells them apart, so a manifest recommending MALA cannot turn the ULA row into MALA
    "ddls": ImageVariant("ddls", "DDLS (ULA)", "ddls", {"mala": False}),
    "ddls-mala": ImageVariant("ddls-mala", "DDLS (MALA)", "ddls", {"mala": True}),
    "drs-cal": ImageVariant("drs-cal", "DRS (cal)", "drs", calibrated=True),
    "mh-cal": ImageVariant("mh-cal", "MH-GAN (cal)", "mh", calibrated=True),
    "ddls-cal": ImageVariant("ddls-cal", "DDLS (cal, MALA)", "ddls", {"mala": True}, calibrated=True),
}
DEFAULT_METHODS = tuple(VARIANTS)
ALIASES = {"none": "generator", "g": "generator", "mh-gan": "mh", "ddls-ula": "ddls", "ula": "ddls",
           "mala": "ddls-mala"}

QUICK = dict(num=200, budget=5, n_cal=256, drs_pilot=1000, inception_num=16, curve_points=3)
FULL = dict(num=2000, budget=None, n_cal=2000, drs_pilot=10000, inception_num=1000, curve_points=6)
DEFAULT_BUDGET = 50
TIE_PCT = 1.0        # a FID-FMNIST change within ±1% of the generator's is not counted as beating it


def _parse_value(s: str):
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def parse_method(spec: str) -> ImageVariant:
    """``"ddls"``, ``"ddls-cal"``, ``"DDLS (MALA)"`` or with options ``"ddls:step_size=0.05:steps=20"``.

    Known keys are those of :data:`VARIANTS` (and their labels); any other registered sampler name works
    too, with a ``-cal`` suffix for a calibrated D. An unknown name still becomes a row (that fails),
    so that a typo shows up as an error row rather than stopping the run."""
    if isinstance(spec, ImageVariant):
        return spec
    head, *opts = str(spec).strip().split(":")
    options = {}
    for o in opts:
        if "=" not in o:
            raise OptionError(f"method option {o!r} in {spec!r}: expected key=value")
        k, v = o.split("=", 1)
        options[k.strip()] = _parse_value(v.strip())
    name = head.strip()
    key = ALIASES.get(name.lower(), name.lower())
    by_label = {v.label.lower(): v for v in VARIANTS.values()}
    if key in VARIANTS:
        base = VARIANTS[key]
    elif name.lower() in by_label:
        base = by_label[name.lower()]
    else:
        cal = key.endswith("-cal")
        method = key[:-4] if cal else key
        base = ImageVariant(key, f"{method} (cal)" if cal else method, method, calibrated=cal)
    if options:
        label = base.label + " [" + ", ".join(f"{k}={v}" for k, v in options.items()) + "]"
        return ImageVariant(str(spec), label, base.method, {**base.options, **options}, base.calibrated)
    return base


def budget_options(method: str, budget: int) -> dict:
    """The options that put ``method`` at ``budget`` D forward evaluations per sample."""
    if method in ("ddls", "dot", "dg_langevin"):
        return {"steps": int(budget)}
    if method == "mh":
        return {"k": int(budget)}
    return {}


# ---------------------------------------------------------------------------------------------------
# metrics

def fmnist_row_metrics(x_uint8: torch.Tensor, *, rng_seed: int = 0, verbose: bool = False,
                       fid_only: bool = False) -> tuple[dict, dict]:
    """(flat metrics, torch-fidelity's dict) with the ``fmnist-classifier`` features vs Fashion-MNIST test."""
    from .metrics.fidelity import KEY_FID, KEY_IS_MEAN, KEY_IS_STD, KEY_KID_MEAN, KEY_KID_STD, FMNIST, compute_metrics

    fd = compute_metrics(x_uint8, "fashion-mnist-test", fid=True, kid=not fid_only, isc=not fid_only,
                         feature_extractor=FMNIST, rng_seed=rng_seed, verbose=verbose)
    flat = {M_FID: fd.get(KEY_FID)}
    if not fid_only:
        flat.update({M_KID: fd.get(KEY_KID_MEAN), M_KID_STD: fd.get(KEY_KID_STD),
                     M_CS: fd.get(KEY_IS_MEAN), M_CS_STD: fd.get(KEY_IS_STD)})
    return flat, fd


def inception_row_metrics(x_uint8: torch.Tensor, *, n_ref: int = 1000, offline: bool | None = None,
                          rng_seed: int = 0, verbose: bool = False) -> tuple[dict, dict, dict]:
    """(flat metrics, torch-fidelity's dict, errors) for Inception FID against the first ``n_ref``
    Fashion-MNIST test images (cached as ``fashion-mnist-test-first{n_ref}``) and the Inception Score.

    The IS is asked for first: with the offline weights (no logits) it raises before any image is
    processed, and the error message goes into ``errors["inception_score"]``; the FID is then computed
    alone. With torch-fidelity's own weights both come from one pass."""
    from .data import load_fashion_mnist
    from .errors import LatentflowError
    from .metrics.fidelity import INCEPTION, KEY_FID, KEY_IS_MEAN, KEY_IS_STD, compute_metrics

    ref = load_fashion_mnist("test")[0][:n_ref]
    kw = dict(feature_extractor=INCEPTION, offline=offline, rng_seed=rng_seed, verbose=verbose,
              reference_name=f"fashion-mnist-test-first{ref.shape[0]}")
    errors: dict = {}
    try:
        fd = compute_metrics(x_uint8, ref, fid=True, isc=True, **kw)
    except LatentflowError as e:
        if "inception_score" not in str(e):
            raise
        errors[M_IS] = f"{type(e).__name__}: {e}"
        fd = compute_metrics(x_uint8, ref, fid=True, **kw)
    flat = {M_IFID: fd.get(KEY_FID)}
    if KEY_IS_MEAN in fd:
        flat[M_IS], flat[M_IS + "_std"] = fd[KEY_IS_MEAN], fd.get(KEY_IS_STD)
    return flat, fd, errors


# ---------------------------------------------------------------------------------------------------
# running rows

def real_for_calibration(n: int, seed: int, value_range=(-1.0, 1.0)) -> torch.Tensor:
    """``n`` Fashion-MNIST *train* images (random, seeded) scaled to ``value_range``: held out from the
    test split the metrics use."""
    from .data import load_fashion_mnist

    x = load_fashion_mnist("train")[0]
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    lo, hi = value_range
    return x[idx].float() / 255.0 * (hi - lo) + lo


def _calibrated_d(pair, n_cal: int, seed: int, device):
    from .calibration import calibrate
    from .sample import generate, meta_get

    vr = tuple(meta_get(pair.meta, "output_range") or (-1.0, 1.0))
    real = real_for_calibration(n_cal, seed, vr).to(device)
    # latents for the fake half come from their own stream, never the benchmark's
    zc = rng.sample_latents(n_cal, pair.latent_dim, pair.meta.get("prior", "normal"),
                            generator=777_000 + seed, device=device)
    fake = generate(pair.G, zc)
    cal = calibrate(pair.D, real, fake, d_output=pair.meta.get("d_output") or "logit")
    cost = {"n_G_forward": n_cal, "n_G_backward": 0, "n_D_forward": 2 * n_cal, "n_D_backward": 0}
    return cal, cost


class _Snapshots:
    """Sampler callback keeping the latents every ``every`` steps (and at the last step)."""

    def __init__(self, every: int, last: int, k: int, prior: str):
        self.every, self.last, self.k, self.prior = max(1, int(every)), int(last), k, prior
        self.states: dict[int, torch.Tensor] = {}

    def __call__(self, step) -> None:
        from .energy import latent_from_u
        n = step.i + 1
        if n % self.every == 0 or n == self.last:
            self.states[n] = latent_from_u(step.state[:, :self.k], self.prior).detach().clone()


def run_row(pair, v: ImageVariant, z: torch.Tensor, *, seed: int, budget: int, n_cal: int,
            drs_pilot: int, curve_points: int = 0, progress: bool = False, cal_cache: dict | None = None):
    """Run one row; returns ``(x, row fields, snapshots {step: z})``."""
    from .api import refine
    from .sample import generate, method_options

    num = z.shape[0]
    if v.method == "none":
        t0 = time.perf_counter()
        x = generate(pair.G, z)
        return x, {"options": {}, "evals": {"n_G_forward": num, "n_G_backward": 0, "n_D_forward": 0,
                                            "n_D_backward": 0}, "wall_s": time.perf_counter() - t0}, {}
    user = {**budget_options(v.method, budget), **({"pilot": drs_pilot} if v.method == "drs" else {}),
            **v.options}
    opts = method_options(v.method, pair.meta, user)
    D, extra, fields = pair.D, None, {}
    if v.calibrated:
        t0 = time.perf_counter()
        if cal_cache is not None and "D" in cal_cache:
            D, extra, fit = cal_cache["D"], cal_cache["cost"], cal_cache["fit"]
        else:
            D, extra = _calibrated_d(pair, n_cal, seed, z.device)
            fit = dict(D.fit_info)
            fit["wall_s"] = time.perf_counter() - t0
            if cal_cache is not None:
                cal_cache.update(D=D, cost=extra, fit=fit)
        opts["d_output"] = "logit"
        fields["calibration"] = fit
    snaps = None
    steps = opts.get("steps")
    if curve_points and v.method in ("ddls", "dot") and isinstance(steps, int) and steps > 0:
        space = opts.get("space", "latent")
        if space == "latent":
            snaps = _Snapshots(math.ceil(steps / curve_points), steps, pair.latent_dim,
                               opts.get("prior", pair.meta.get("prior", "normal")))
            opts["callback"] = snaps
    t1 = time.perf_counter()
    res = refine(pair.G, D, z, method=v.method, generator=torch.Generator().manual_seed(seed),
                 progress=progress, **opts)
    wall = time.perf_counter() - t1
    info = res.to_dict()
    evals = {k: int(info[k]) for k in EVAL_KEYS}
    if extra:
        fields["calibration_evals"] = extra
        evals = {k: evals[k] + extra[k] for k in EVAL_KEYS}
    fields.update({"options": {k: val for k, val in opts.items() if k not in ("callback", "progress")},
                   "evals": evals,
                   # a (cal) row's wall time includes the calibration it needs (shared between cal rows)
                   "wall_s": wall + (fields["calibration"]["wall_s"] if v.calibrated else 0.0)})
    for k in ("accept_rate", "accept_rate_mean", "n_diverged", "k_eff"):
        if k in info and not isinstance(info[k], (list, dict)):
            fields[k] = info[k]
    if res.info.get("n_diverged") is None and "diverged" in res.info:
        fields["n_diverged"] = int(res.info["diverged"].sum())
    return res.x, fields, (snaps.states if snaps is not None else {})


def images(model="dcgan-fashion", methods=None, *, num: int | None = None, seed: int = 0,
           budget: int | None = None, quick: bool = False, inception: bool = False,
           inception_num: int | None = None, inception_offline: bool | None = None, n_cal: int | None = None,
           curve_points: int | None = None, progress: bool = False, device: str = "cpu",
           keep_samples: bool = True) -> tuple[dict, dict]:
    """Run the image suite; returns ``(doc, samples)`` with ``samples[label] = float images`` (for grids).

    ``model`` is a name, folder or ``hf:`` reference (anything ``latentflow.load`` takes) or a ModelPair.
    ``budget`` defaults to the model's recommended DDLS ``steps`` (manifest ``sampling.ddls``), else 50
    (quick: 5)."""
    from .metrics.fidelity import to_uint8
    from .models import load
    from .models.hub import ModelPair
    from .sample import generate, meta_get

    size = QUICK if quick else FULL
    num = int(num or size["num"])
    if num < 2:
        raise OptionError(f"num must be >= 2 (FID needs two samples); got {num}")
    n_cal = int(n_cal or min(size["n_cal"], max(num, 2)))
    curve_points = size["curve_points"] if curve_points is None else int(curve_points)
    inception_num = int(inception_num or size["inception_num"])
    pair = model if isinstance(model, ModelPair) else load(model, device=device)
    name = pair.meta.get("name") if isinstance(model, ModelPair) else str(model)
    rec = (meta_get(pair.meta, "sampling") or {}).get("ddls", {})
    if budget is None:
        budget = size["budget"] or int(rec.get("steps") or DEFAULT_BUDGET)
    budget = int(budget)
    variants = [parse_method(m) for m in (methods or DEFAULT_METHODS)]
    vr = tuple(meta_get(pair.meta, "output_range") or (-1.0, 1.0))
    doc: dict[str, Any] = {
        "schema": SCHEMA, "suite": SUITE, "env": {**env_info(device), "seed": seed}, "model": name,
        "dataset": pair.meta.get("dataset"), "num": num, "seed": seed, "quick": bool(quick),
        "budget": {"d_forward_per_sample": budget,
                   "rule": "DDLS/DOT steps = budget (each step 1 D forward + 1 D backward), MH-GAN k = budget; "
                           "DRS as measured; calibration's evaluations amortised over num"},
        "metrics_info": {M_FID: "FID in the fmnist-classifier feature space vs Fashion-MNIST test (10k); "
                                "not comparable with Inception FID",
                         M_KID: "KID (same features), subset size min(1000, num)",
                         M_CS: "Inception-Score formula with the fmnist-classifier softmax"},
        "rows": [], "curves": [],
    }
    z = rng.sample_latents(num, pair.latent_dim, pair.meta.get("prior", "normal"), generator=1000 + seed,
                           device=device)
    samples: dict[str, torch.Tensor] = {}
    cal_cache: dict = {}
    for v in variants:
        row: dict[str, Any] = {"model": name, "key": v.key, "label": v.label, "method": v.method,
                               "calibrated": v.calibrated, "n": num}
        t0 = time.perf_counter()
        try:
            x, fields, snaps = run_row(pair, v, z, seed=seed, budget=budget, n_cal=n_cal,
                                       drs_pilot=size["drs_pilot"], curve_points=curve_points,
                                       progress=progress, cal_cache=cal_cache)
            evals = fields.pop("evals")
            row["options"] = fields.pop("options")
            row["evals"] = evals
            row["budget_per_sample"] = {k: evals[k] / num for k in EVAL_KEYS}
            row.update(fields)
            if not torch.isfinite(x).all():
                raise FloatingPointError(f"{v.label}: non-finite samples")
            t_m = time.perf_counter()
            flat, fd = fmnist_row_metrics(to_uint8(x, vr), rng_seed=seed, verbose=False)
            row["metrics"], row["fidelity_fmnist"] = flat, fd
            row["metrics_wall_s"] = time.perf_counter() - t_m
            if snaps:
                curve = {"label": v.label, "steps": [0], M_FID: [None]}
                for s in sorted(snaps):
                    if s == max(snaps):
                        val = flat[M_FID]
                    else:
                        xs = generate(pair.G, snaps[s])
                        val = fmnist_row_metrics(to_uint8(xs, vr), rng_seed=seed, fid_only=True)[0][M_FID]
                    curve["steps"].append(s)
                    curve[M_FID].append(val)
                doc["curves"].append(curve)
            if keep_samples:
                samples[v.label] = x.detach().cpu()
        except Exception as e:  # noqa: BLE001  (a failing row is a result; the run goes on)
            row["error"] = f"{type(e).__name__}: {e}"
            log.error("%s / %s failed: %s", name, v.label, traceback.format_exc())
        row["total_wall_s"] = time.perf_counter() - t0
        doc["rows"].append(row)
    # the generator's FID-FMNIST is every curve's step 0 (same latents)
    gen = next((r for r in doc["rows"] if r["method"] == "none" and "error" not in r), None)
    for c in doc["curves"]:
        c[M_FID][0] = gen["metrics"][M_FID] if gen else None
        if c[M_FID][0] is None:
            c["steps"], c[M_FID] = c["steps"][1:], c[M_FID][1:]
    _add_deltas(doc)
    if inception:
        _add_inception(doc, samples, inception_num, inception_offline, seed, vr)
    doc["verdict"] = verdict(doc)
    doc["failed"] = any("error" in r for r in doc["rows"])
    return doc, samples


def _add_deltas(doc: dict) -> None:
    gen = next((r for r in doc["rows"] if r["method"] == "none" and "error" not in r), None)
    if gen is None:
        return
    g = gen["metrics"][M_FID]
    for r in doc["rows"]:
        if "error" not in r and g:
            r["vs_generator_pct"] = {M_FID: 100.0 * (r["metrics"][M_FID] - g) / g}


def _add_inception(doc: dict, samples: dict, inception_num: int, offline, seed: int, vr) -> None:
    """Inception FID for the generator and the best DDLS row (lowest FID-FMNIST) on ``inception_num``
    samples; errors (IS offline, or a failure) go into the row's ``metric_errors``."""
    from .metrics.fidelity import to_uint8

    ok = [r for r in doc["rows"] if "error" not in r]
    picks = [r for r in ok if r["method"] == "none"][:1]
    ddls = [r for r in ok if r["method"] == "ddls"]
    if ddls:
        picks.append(min(ddls, key=lambda r: r["metrics"][M_FID]))
    doc["inception"] = {"num": inception_num, "reference": f"Fashion-MNIST test, first {inception_num} images",
                        "rows": [r["label"] for r in picks]}
    for r in picks:
        t0 = time.perf_counter()
        try:
            x = samples[r["label"]][:inception_num]
            flat, fd, errs = inception_row_metrics(to_uint8(x, vr), n_ref=inception_num, offline=offline,
                                                   rng_seed=seed)
            r["metrics"].update(flat)
            r["fidelity_inception"] = fd
            if errs:
                r.setdefault("metric_errors", {}).update(errs)
        except Exception as e:  # noqa: BLE001
            r.setdefault("metric_errors", {})[M_IFID] = f"{type(e).__name__}: {e}"
            log.error("Inception metrics for %s failed: %s", r["label"], traceback.format_exc())
        r["inception_wall_s"] = time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------
# reporting (always from the JSON document)

def _f(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.{nd}g}" if abs(v) >= 1e4 else f"{v:.{nd}f}"
    return str(v)


def verdict(doc: dict) -> str:
    """One line: which rows beat the generator alone on FID-FMNIST, and the best row."""
    ok = [r for r in doc["rows"] if "error" not in r]
    gen = next((r for r in ok if r["method"] == "none"), None)
    if gen is None:
        return "no verdict: the generator row is missing or failed"
    others = [r for r in ok if r is not gen]
    if not others:
        return "no verdict: only the generator ran"
    g = gen["metrics"][M_FID]
    better = [r for r in others if r["metrics"][M_FID] < g * (1 - TIE_PCT / 100)]
    best = min(others, key=lambda r: r["metrics"][M_FID])
    d = doc.get("budget", {}).get("d_forward_per_sample")
    s = (f"At ≈{d} D evaluations per sample, " if d else "") + (
        f"{len(better)} of {len(others)} methods beat the generator alone on FID-FMNIST by more than {TIE_PCT:g}% "
        f"({', '.join(r['label'] for r in better) or 'none'}); best: {best['label']} "
        f"({_f(best['metrics'][M_FID])} vs {_f(g)}, {best['vs_generator_pct'][M_FID]:+.1f}%).")
    ddls = [r for r in others if r["method"] == "ddls"]
    if ddls:
        bd = min(ddls, key=lambda r: r["metrics"][M_FID])
        pct = bd["vs_generator_pct"][M_FID]
        s += (f" Best DDLS ({bd['label']}) {'meets' if pct <= -20 else 'does not meet'} the ≥20% FID-FMNIST "
              f"reduction target ({pct:+.1f}%).")
    failed = [r["label"] for r in doc["rows"] if "error" in r]
    if failed:
        s += f" Failed rows: {', '.join(failed)}."
    return s


def images_table(doc: dict) -> str:
    """Markdown table of an ``images`` document (plus the verdict line under it)."""
    inc = any(M_IFID in r.get("metrics", {}) or M_IFID in r.get("metric_errors", {}) for r in doc["rows"])
    head = ["method", "G fwd/bwd per sample", "D fwd/bwd per sample", "FID-FMNIST ↓", "vs generator",
            "KID-FMNIST ↓", "classifier score ↑"]
    if inc:
        head.append(f"Inception FID (n={doc.get('inception', {}).get('num', '?')}) ↓")
    head += ["accept", "wall s"]
    lines = [f"**{doc.get('model')}**, {doc.get('num')} samples per row, seed {doc.get('seed')}, "
             f"budget ≈{doc.get('budget', {}).get('d_forward_per_sample')} D evaluations per sample "
             f"({doc.get('env', {}).get('device_name') or doc.get('env', {}).get('device', '')}, "
             f"torch {doc.get('env', {}).get('torch', '?')})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["rows"]:
        if "error" in r:
            lines.append(f"| {r['label']} | error: {r['error'].splitlines()[0][:200]} |" + " |" * (len(head) - 2))
            continue
        b, m = r["budget_per_sample"], r["metrics"]
        kid = m.get(M_KID)
        delta = r.get("vs_generator_pct", {}).get(M_FID)
        cells = [r["label"], f"{b['n_G_forward']:.1f} / {b['n_G_backward']:.1f}",
                 f"{b['n_D_forward']:.1f} / {b['n_D_backward']:.1f}", _f(m.get(M_FID)),
                 "–" if r["method"] == "none" or delta is None else f"{delta:+.1f}%",
                 _f(kid, 3), _f(m.get(M_CS))]
        if inc:
            if M_IFID in m:
                cells.append(_f(m[M_IFID]))
            else:
                cells.append("error" if M_IFID in r.get("metric_errors", {}) else "")
        acc = r.get("accept_rate_mean", r.get("accept_rate"))
        cells += [_f(acc) if isinstance(acc, float) else "", f"{r['wall_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", doc.get("verdict") or verdict(doc)]
    errs = {(r["label"], k): v for r in doc["rows"] for k, v in r.get("metric_errors", {}).items()}
    if errs:
        lines.append("")
        for (label, k), v in errs.items():
            lines.append(f"- {label}, {k}: {v.splitlines()[0][:300]}")
    return "\n".join(lines)


def curves_png(path: Path, doc: dict) -> bool:
    """FID-FMNIST against sampler steps (seed 001 Figure 5), one line per DDLS/DOT row."""
    curves = [c for c in doc.get("curves", []) if len(c["steps"]) >= 2]
    if not curves:
        return False
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .train._loop import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for c in curves:
        ax.plot(c["steps"], c[M_FID], marker="o", label=c["label"])
    gen = next((r for r in doc["rows"] if r["method"] == "none" and "error" not in r), None)
    if gen:
        ax.axhline(gen["metrics"][M_FID], color="grey", ls="--", lw=1, label="generator")
    ax.set_xlabel("sampler steps (D evaluations per sample)")
    ax.set_ylabel("FID-FMNIST")
    ax.set_title(f"{doc.get('model')}: FID-FMNIST vs steps (n={doc.get('num')})")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return True


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_").replace("__", "_")


def write_outputs(doc: dict, samples: dict, out: str | Path, n_grid: int = 64) -> dict:
    """Write ``results.json`` (first), ``results.md``, ``fid_vs_steps.png`` and before/after grids."""
    from .report import grid_png
    from .train._loop import atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": "results.json", "md": "results.md"}
    gen_label = next((r["label"] for r in doc["rows"] if r["method"] == "none" and "error" not in r), None)
    vr = (-1.0, 1.0)
    grids = {}
    if gen_label and gen_label in samples:
        for label, x in samples.items():
            if label == gen_label:
                continue
            grids[label] = f"grid_{_slug(label)}.png"
    doc["files"] = {**files, **({"plot": "fid_vs_steps.png"} if doc.get("curves") else {}), "grids": grids}
    write_json(out / "results.json", doc)
    table = images_table(doc)
    atomic_write_bytes(out / "results.md", (table + "\n").encode())
    try:
        if doc.get("curves"):
            curves_png(out / "fid_vs_steps.png", doc)
        for label, fname in grids.items():
            grid_png(out / fname, samples[gen_label][:n_grid], samples[label][:n_grid], label,
                     value_range=vr, max_images=n_grid)
    except Exception:  # noqa: BLE001  (figures are extras; the JSON and table are written)
        log.error("writing figures failed: %s", traceback.format_exc())
    return doc["files"]


def run_images_bench(model: str = "dcgan-fashion", methods=None, num: int | None = None, seed: int = 0,
                     out: str | Path = "results/images", quick: bool = False, inception: bool = False,
                     progress: bool = True, budget: int | None = None, inception_num: int | None = None,
                     device: str = "cpu", echo=print) -> int:
    """``latentflow bench images``: run, write ``out/results.{json,md}`` + PNGs, print the table.

    Returns the exit code: 0 when every row ran, 1 when any row failed (the others are still written)."""
    t0 = time.perf_counter()
    doc, samples = images(model, methods, num=num, seed=seed, budget=budget, quick=quick, inception=inception,
                          inception_num=inception_num, progress=progress, device=device)
    doc["total_wall_s"] = time.perf_counter() - t0
    write_outputs(doc, samples, out)
    if echo is not None:
        echo(images_table(doc))
        echo(f"\nwrote {Path(out) / 'results.json'} and results.md, figures in {out} "
             f"({doc['total_wall_s']:.0f} s)")
    return 1 if doc["failed"] else 0
