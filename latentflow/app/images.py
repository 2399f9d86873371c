"""The image benchmark (``latentflow bench images``): refinement methods on an image GAN at an equal budget.

For one model (default the bundled ``dcgan-fashion``) and a list of rows (the generator alone, DRS,
MH-GAN, DOT, DDLS ULA / MALA and the calibrated "(cal)" variants of Che et al. 2020, §5.2), it

1. draws the same ``num`` latents for every row (paired comparison) and runs each method at the same
   **budget**: ``budget`` discriminator forward evaluations per sample for the iterative methods
   (DDLS and DOT: ``steps = budget``, each step also one D backward; MH-GAN: ``k = budget``); DRS's
   cost is set by its acceptance rate and recorded as measured. The exact G/D forward and backward
   evaluations per sample (from ``Result.info``, plus the calibration's, amortised over ``num``) and the
   wall time are recorded per row;
2. computes FID-FMNIST, KID, the classifier score and precision / recall / density / coverage (k = 5,
   against the first ``num`` test images) with the ``fmnist-classifier`` features against Fashion-MNIST test (torch-fidelity's dict kept untouched under ``fidelity_fmnist``); with
   ``inception=True`` also Inception FID (offline weights where torch-fidelity's are absent) on at most
   ``inception_num`` samples of the generator and of the best DDLS row, against the first
   ``inception_num`` Fashion-MNIST test images or, with ``real=`` (``--real``: a folder of images, an
   ``.npz`` or ``cifar10-train``), against that real set (``num_real`` images; cached reference
   statistics; also KID). The Inception Score with the offline weights is recorded as an error, never a
   number;
3. records FID-FMNIST every few steps of each DDLS row (the sampler's ``callback`` keeps the latents;
   Che et al. 2020, Figure 5) and writes ``results.json`` first, then ``results.md`` built from it, a plot of
   FID-FMNIST against sampler steps (``fid_vs_steps.png``) and before/after grids (``grid_*.png``).

Failing rows record ``error``; the run goes on and :func:`run_images_bench` returns 1 at the end.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ..errors import OptionError
from ..rng import sample_latents
from .images_metrics import (
    M_CS,
    M_CS_STD,
    M_FID,
    M_IFID,
    M_IKID,
    M_IS,
    M_KID,
    M_KID_STD,
    M_PRDC,
    fmnist_row_metrics,
    inception_row_metrics,
    real_row_metrics,
)
from .images_report import TIE_PCT, curves_png, generator_row, images_table, verdict, write_outputs
from .images_rows import (
    ALIASES,
    DEFAULT_BUDGET,
    DEFAULT_METHODS,
    EVAL_KEYS,
    FOCUS,
    FULL,
    QUICK,
    VARIANTS,
    ImageVariant,
    budget_options,
    parse_method,
    real_for_calibration,
    run_row,
)
from .report import env_info
from .runner import Suite, run

log = logging.getLogger("latentflow.bench")

__all__ = [
    "images",
    "run_images_bench",
    "IMAGES",
    "images_table",
    "verdict",
    "write_outputs",
    "curves_png",
    "parse_method",
    "budget_options",
    "run_row",
    "real_for_calibration",
    "fmnist_row_metrics",
    "inception_row_metrics",
    "ImageVariant",
    "VARIANTS",
    "DEFAULT_METHODS",
    "ALIASES",
    "QUICK",
    "FULL",
    "DEFAULT_BUDGET",
    "TIE_PCT",
    "EVAL_KEYS",
    "SCHEMA",
    "SUITE",
    "M_FID",
    "M_KID",
    "M_KID_STD",
    "M_CS",
    "M_CS_STD",
    "M_IFID",
    "M_IS",
    "M_IKID",
    "M_PRDC",
    "real_row_metrics",
]

SCHEMA = 1
SUITE = "images"


def images(
    model="dcgan-fashion",
    methods=None,
    *,
    num: int | None = None,
    seed: int = 0,
    budget: int | None = None,
    quick: bool = False,
    inception: bool = False,
    inception_num: int | None = None,
    inception_offline: bool | None = None,
    n_cal: int | None = None,
    curve_points: int | None = None,
    progress: bool = False,
    device: str = "cpu",
    keep_samples: bool = True,
    real=None,
    num_real: int | None = None,
) -> tuple[dict, dict]:
    """Run the image suite; returns ``(doc, samples)`` with ``samples[label] = float images`` (for grids).

    ``model`` is a name, folder or ``hf:`` reference (anything ``latentflow.load`` takes) or a ModelPair.
    ``budget`` defaults to the model's recommended DDLS ``steps`` (manifest ``sampling.ddls``), else 50
    (quick: 5). ``real``: the real set for the Inception metrics (implies ``inception``), checked first."""
    from ..metrics import resolve_real, to_uint8
    from ..models import ModelPair, load
    from ..samplers import generate
    from .fit import meta_get

    rs = resolve_real(real, num_real) if real is not None else None  # before any compute
    inception = inception or rs is not None
    size = QUICK if quick else FULL
    num = int(num or size["num"])
    if num < 2:
        raise OptionError(f"num must be >= 2 (FID needs two samples); got {num}")
    n_cal = int(n_cal or min(size["n_cal"], max(num, 2)))
    curve_points = size["curve_points"] if curve_points is None else int(curve_points)
    inception_num = int(inception_num or size["inception_num"])
    pair = model if isinstance(model, ModelPair) else load(model, device=device)
    name = pair.meta.get("name") if isinstance(model, ModelPair) else str(model)
    shape = meta_get(pair.meta, "output_shape")
    if pair.G is None or shape is None or tuple(shape) != (1, 28, 28):
        raise OptionError(
            f"bench images measures FID-FMNIST and calibrates on Fashion-MNIST: it takes a 1x28x28 G/D "
            f'model; "{name}" gives {list(shape) if shape is not None else "no generator samples"}. '
            f"For other image models use `latentflow sample --real DIR|FILE.npz|cifar10-train` "
            f"(Inception FID/KID/IS) or `latentflow tune`"
        )
    rec = (meta_get(pair.meta, "sampling") or {}).get(FOCUS, {})
    if budget is None:
        budget = size["budget"] or int(rec.get("steps") or DEFAULT_BUDGET)
    budget = int(budget)
    variants = [parse_method(m) for m in (methods or DEFAULT_METHODS)]
    vr = tuple(meta_get(pair.meta, "output_range") or (-1.0, 1.0))
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "suite": SUITE,
        "env": {**env_info(device), "seed": seed},
        "model": name,
        "dataset": pair.meta.get("dataset"),
        "num": num,
        "seed": seed,
        "quick": bool(quick),
        "budget": {
            "d_forward_per_sample": budget,
            "rule": "DDLS/DOT steps = budget (each step 1 D forward + 1 D backward), MH-GAN k = budget; "
            "DRS as measured; calibration's evaluations amortised over num",
        },
        "metrics_info": {
            M_FID: "FID in the fmnist-classifier feature space vs Fashion-MNIST test (10k); "
            "not comparable with Inception FID",
            M_KID: "KID (same features), subset size min(1000, num)",
            M_CS: "Inception-Score formula with the fmnist-classifier softmax",
            "precision/recall/density/coverage": "k-NN manifold estimates (Kynkäänniemi et al. 2019, Naeem et al. "
            "2020; k = 5) on the fmnist-classifier features vs the first num Fashion-MNIST test images",
        },
        "rows": [],
        "curves": [],
    }
    z = sample_latents(num, pair.latent_dim, pair.meta.get("prior", "normal"), generator=1000 + seed, device=device)
    samples: dict[str, torch.Tensor] = {}
    cal_cache: dict = {}
    for v in variants:
        row: dict[str, Any] = {
            "model": name,
            "key": v.key,
            "label": v.label,
            "method": v.method,
            "calibrated": v.calibrated,
            "n": num,
        }
        t0 = time.perf_counter()
        try:
            x, fields, snaps = run_row(
                pair,
                v,
                z,
                seed=seed,
                budget=budget,
                n_cal=n_cal,
                drs_pilot=size["drs_pilot"],
                curve_points=curve_points,
                progress=progress,
                cal_cache=cal_cache,
            )
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
    gen = generator_row(doc["rows"])
    for c in doc["curves"]:
        c[M_FID][0] = gen["metrics"][M_FID] if gen else None
        if c[M_FID][0] is None:
            c["steps"], c[M_FID] = c["steps"][1:], c[M_FID][1:]
    _add_deltas(doc)
    if inception:
        _add_inception(doc, samples, inception_num, inception_offline, seed, vr, rs)
    doc["verdict"] = verdict(doc)
    doc["failed"] = any("error" in r for r in doc["rows"])
    return doc, samples


def _add_deltas(doc: dict) -> None:
    gen = generator_row(doc["rows"])
    if gen is None:
        return
    g = gen["metrics"][M_FID]
    for r in doc["rows"]:
        if "error" not in r and g:
            r["vs_generator_pct"] = {M_FID: 100.0 * (r["metrics"][M_FID] - g) / g}


def _add_inception(doc: dict, samples: dict, inception_num: int, offline, seed: int, vr, rs=None) -> None:
    """Inception FID for the generator and the best DDLS row (lowest FID-FMNIST) on ``inception_num``
    samples, against Fashion-MNIST test or the real set ``rs``; errors (IS offline, or a failure) go
    into the row's ``metric_errors``."""
    from ..metrics import to_uint8

    ok = [r for r in doc["rows"] if "error" not in r]
    picks = [r for r in [generator_row(ok)] if r is not None]
    ddls = [r for r in ok if r["method"] == FOCUS]
    if ddls:
        picks.append(min(ddls, key=lambda r: r["metrics"][M_FID]))
    doc["inception"] = {
        "num": inception_num,
        "reference": f"Fashion-MNIST test, first {inception_num} images",
        "rows": [r["label"] for r in picks],
    }
    if rs is not None:
        doc["inception"]["reference"] = f"{rs.spec} ({rs.split or rs.kind}, {rs.num} images)"
        doc["inception"]["real"] = rs.to_dict()
    for r in picks:
        t0 = time.perf_counter()
        try:
            x = samples[r["label"]][:inception_num]
            if rs is None:
                flat, fd, errs = inception_row_metrics(
                    to_uint8(x, vr), n_ref=inception_num, offline=offline, rng_seed=seed
                )
            else:
                flat, fd, errs = real_row_metrics(to_uint8(x, vr), rs, offline=offline, rng_seed=seed)
                doc["inception"]["real"] = fd["reference"]
            r["metrics"].update(flat)
            r["fidelity_inception"] = fd
            if errs:
                r.setdefault("metric_errors", {}).update(errs)
        except Exception as e:  # noqa: BLE001
            r.setdefault("metric_errors", {})[M_IFID] = f"{type(e).__name__}: {e}"
            log.error("Inception metrics for %s failed: %s", r["label"], traceback.format_exc())
        r["inception_wall_s"] = time.perf_counter() - t0


def run_images_bench(
    model: str = "dcgan-fashion",
    methods=None,
    num: int | None = None,
    seed: int = 0,
    out: str | Path = "results/images",
    quick: bool = False,
    inception: bool = False,
    progress: bool = True,
    budget: int | None = None,
    inception_num: int | None = None,
    device: str = "cpu",
    echo=print,
    real=None,
    num_real: int | None = None,
) -> int:
    """``latentflow bench images``: run, write ``out/results.{json,md}`` + PNGs, print the table.

    Returns the exit code: 0 when every row ran, 1 when any row failed (the others are still written)."""
    return run(
        IMAGES,
        out=out,
        seed=seed,
        echo=echo,
        models=(model,),
        methods=methods,
        num=num,
        budget=budget,
        quick=quick,
        inception=inception,
        inception_num=inception_num,
        progress=progress,
        device=device,
        real=real,
        num_real=num_real,
    )


def _images_run(
    models=None,
    num=None,
    seed=0,
    methods=None,
    quick=False,
    inception=False,
    inception_num=None,
    budget=None,
    progress=False,
    device="cpu",
    real=None,
    num_real=None,
    **unused,
) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    doc, samples = images(
        models[0] if models else "dcgan-fashion",
        methods,
        num=num,
        seed=seed,
        budget=budget,
        quick=quick,
        inception=inception,
        inception_num=inception_num,
        progress=progress,
        device=device,
        real=real,
        num_real=num_real,
    )
    doc["total_wall_s"] = time.perf_counter() - t0
    return doc, samples


#: the suite as data (``latentflow bench images``)
IMAGES = Suite(
    name="images",
    rows=DEFAULT_METHODS,
    metric=M_FID,
    run=_images_run,
    table=images_table,
    write=write_outputs,
    default_out="results/images",
    out_is_file=False,
    summary="an image GAN (dcgan-fashion) at an equal D budget: FID-FMNIST, KID, classifier score",
)
