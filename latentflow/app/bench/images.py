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

Any other image model (RGB or grey, any size, class-conditional; or a 1x28x28 one given ``labels``) is
measured against the real images of ``real`` on every row instead: Inception FID, KID, IS (where the
network has logits) and PRDC, with per-chain labels for a class-conditional model and the (cal) rows
calibrated on held-out real images (:mod:`latentflow.app.bench.images_any`; ``doc["headline"]`` names the metric).

Failing rows record ``error``; the run goes on and :func:`run_images_bench` returns 1 at the end.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ...errors import OptionError
from ...rng import sample_latents
from ..report import env_info
from .images_metrics import (
    FMNIST_INFO,
    GENERIC_INFO,
    M_CS,
    M_CS_STD,
    M_FID,
    M_IFID,
    M_IKID,
    M_IS,
    M_KID,
    M_KID_STD,
    M_PRDC,
    add_inception,
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
    real=None,
    num_real: int | None = None,
    labels=None,
    n_cal: int | None = None,
    curve_points: int | None = None,
    progress: bool = False,
    device: str = "cpu",
    keep_samples: bool = True,
) -> tuple[dict, dict]:
    """Run the image suite; returns ``(doc, samples)`` with ``samples[label] = float images`` (for grids).

    ``model`` is a name, folder or ``hf:`` reference (anything ``latentflow.load`` takes) or a ModelPair.
    ``budget`` defaults to the model's recommended DDLS ``steps`` (manifest ``sampling.ddls``), else 50
    (quick: 5). A 1x28x28 model is measured as Fashion-MNIST (``real``: the real set of the extra Inception
    metrics, implies ``inception``); any other image model (or one given ``labels``) against the real
    images ``real`` with Inception FID / KID / IS / PRDC on every row (:mod:`latentflow.app.bench.images_any`;
    ``labels``: the real images' class labels, for the (cal) rows of a class-conditional model). The real
    data are read and checked before any sampling."""
    from ...metrics import resolve_real, to_uint8
    from ...models import ModelPair, load
    from ...samplers import generate
    from ..fit import meta_get

    pair = model if isinstance(model, ModelPair) else load(model, device=device)
    name = pair.meta.get("name") if isinstance(model, ModelPair) else str(model)
    shape = meta_get(pair.meta, "output_shape")
    if pair.G is None or shape is None or len(shape) != 3:
        raise OptionError(
            f"bench images takes a G/D model of images [C, H, W]; "
            f'"{name}" gives {list(shape) if shape is not None else "no generator samples"}. '
            f"For 2-D models use `latentflow bench toy2d` or `latentflow tune`"
        )
    generic = tuple(shape) != (1, 28, 28) or labels is not None
    size = QUICK if quick else FULL
    num = int(num or size["num"])
    if num < 2:
        raise OptionError(f"num must be >= 2 (FID needs two samples); got {num}")
    n_cal = int(n_cal or min(size["n_cal"], max(num, 2)))
    vr = tuple(meta_get(pair.meta, "output_range") or (-1.0, 1.0))
    if generic:
        from .images_any import RealImages, generic_row_metrics

        if real is None:
            raise OptionError(
                f'real: "{name}" gives {list(shape)} images; bench images measures it against real images: '
                f"give --real DIR|FILE (.npz, .pt, .safetensors) or cifar10-train"
            )
        rs = None
        reals = RealImages(
            pair, real, labels=labels, num_real=num_real, n_cal=n_cal, seed=seed, shape=tuple(shape), value_range=vr
        )  # before any compute
        curve_points, inception = 0, False
    else:
        rs = resolve_real(real, num_real) if real is not None else None  # before any compute
        reals = None
        inception = inception or rs is not None
        curve_points = size["curve_points"] if curve_points is None else int(curve_points)
    inception_num = int(inception_num or size["inception_num"])
    rec = (meta_get(pair.meta, "sampling") or {}).get(FOCUS, {})
    if budget is None:
        budget = size["budget"] or int(rec.get("steps") or DEFAULT_BUDGET)
    budget = int(budget)
    variants = [parse_method(m) for m in (methods or DEFAULT_METHODS)]
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
        "metrics_info": GENERIC_INFO if generic else FMNIST_INFO,
        "rows": [],
        "curves": [],
    }
    if reals is not None:  # generic
        doc.update(headline=M_IFID, real=reals.to_dict(), num_classes=pair.num_classes)
    z = sample_latents(num, pair.latent_dim, pair.meta.get("prior", "normal"), generator=1000 + seed, device=device)
    y = pair.labels(num, generator=1000 + seed, device=device) if pair.num_classes > 0 else None
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
                y=y,
                cal_real=reals.cal if reals is not None else None,
                cal_real_y=reals.cal_y if reals is not None else None,
            )
            evals = fields.pop("evals")
            row["options"] = fields.pop("options")
            row["evals"] = evals
            row["budget_per_sample"] = {k: evals[k] / num for k in EVAL_KEYS}
            row.update(fields)
            if not torch.isfinite(x).all():
                raise FloatingPointError(f"{v.label}: non-finite samples")
            t_m = time.perf_counter()
            if reals is not None:  # generic
                flat, fd, errs = generic_row_metrics(x, reals, offline=inception_offline, rng_seed=seed)
                row["metrics"], row["fidelity_inception"] = flat, fd
                if errs:
                    row["metric_errors"] = errs
            else:
                flat, fd = fmnist_row_metrics(to_uint8(x, vr), rng_seed=seed, verbose=False)
                row["metrics"], row["fidelity_fmnist"] = flat, fd
            row["metrics_wall_s"] = time.perf_counter() - t_m
            if snaps:
                curve: dict[str, Any] = {"label": v.label, "steps": [0], M_FID: [None]}
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
        add_inception(doc, samples, inception_num, inception_offline, seed, vr, rs)
    doc["verdict"] = verdict(doc)
    doc["failed"] = any("error" in r for r in doc["rows"])
    return doc, samples


def _add_deltas(doc: dict) -> None:
    gen = generator_row(doc["rows"])
    if gen is None:
        return
    key = doc.get("headline", M_FID)
    g = gen["metrics"][key]
    for r in doc["rows"]:
        if "error" not in r and g:
            r["vs_generator_pct"] = {key: 100.0 * (r["metrics"][key] - g) / g}


def run_images_bench(
    model: str = "dcgan-fashion", methods=None, *, out: str | Path = "results/images", echo=print, seed: int = 0, **kw
) -> int:
    """``latentflow bench images``: run, write ``out/results.{json,md}`` + PNGs, print the table. Keywords are
    :func:`images`'s (``num``, ``budget``, ``quick``, ``inception``, ``real``, ``num_real``, ``labels``, ...).

    Returns the exit code: 0 when every row ran, 1 when any row failed (the others are still written)."""
    kw.setdefault("progress", True)
    return run(IMAGES, out=out, seed=seed, echo=echo, models=(model,), methods=methods, **kw)


_RUN_KEYS = ("num", "budget", "quick", "inception", "inception_num", "progress", "device", "real", "num_real", "labels")


def _images_run(models=None, seed=0, methods=None, **kw) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    opts = {k: v for k, v in kw.items() if k in _RUN_KEYS}
    doc, samples = images(models[0] if models else "dcgan-fashion", methods, seed=seed, **opts)
    doc["total_wall_s"] = time.perf_counter() - t0
    return doc, samples


#: the suite as data (``latentflow bench images``)
IMAGES = Suite(
    name="images",
    rows=DEFAULT_METHODS,
    metric=M_FID,
    run=_images_run,
    table=images_table,
    default_out="results/images",
    summary="an image GAN at an equal D budget: FID-FMNIST (1x28x28) or Inception FID/KID/IS vs --real",
    write=write_outputs,
)
