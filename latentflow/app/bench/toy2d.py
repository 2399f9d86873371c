"""The 2-D suite (``latentflow bench toy2d``): models × methods at stated budgets -> one JSON document + a table.

The JSON document is written first; the markdown table is built from it (never the other way round).
Each row records the method's options, the G/D evaluations per sample (forward and backward), wall
time and metrics; a failing row records ``error`` and the run goes on (the caller exits non-zero).
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import LatentflowError
from ...result import GD_EVAL_KEYS, Evals
from ...rng import sample_latents
from ...samplers import kernel
from ..report import env_info
from .images_rows import VARIANTS
from .runner import Suite

log = logging.getLogger("latentflow.bench")
#: the diagnostics a row reports (averaged over seeds), where its method gives them
DIAGNOSTICS = ("accept_rate", "accept_rate_mean", "n_diverged")


@dataclass(frozen=True)
class Variant:
    """One benchmark row: a label, a method (``"none"`` = the generator alone; ``"data"``: a fresh draw from
    the data distribution) and its options."""

    label: str
    method: str
    options: dict = field(default_factory=dict)


#: the row of a fresh draw from the data distribution (the metrics' floor)
DATA = "data"


def _as(label: str, **options) -> Variant:
    """The image suite's row of that label (its method), with this suite's options."""
    return Variant(label, next(v.method for v in VARIANTS.values() if v.label == label), options)


# ≈ 200 discriminator evaluations per sample for every iterative method (Che et al. 2020 run DDLS for
# 100-1000 steps); DDLS uses the model's recommended settings from the manifest (``sampling.ddls``);
# DRS's cost is set by its acceptance rate and reported as measured.
TOY2D_VARIANTS = [
    Variant("data (fresh sample)", DATA),
    _as("generator"),
    _as("DRS"),
    _as("MH-GAN", k=200),
    _as("DOT", steps=200),
    _as("DDLS (ULA)"),
    _as("DDLS (MALA)", mala=True),
    # the simplest fidelity-for-diversity trade (Brock et al. 2019), one G forward per sample
    _as("truncation ψ=1", psi=1.0),
    _as("truncation ψ=0.5", psi=0.5),
]

#: Che et al. 2020's numbers (Table 1: 25-Gaussians; Table 2: EMD), for the side-by-side column
TOY2D_REFERENCE = {
    ("grid25-wgangp", "generator"): {"source": "S1 Table 1/2", "modes": 24.8, "high_quality_pct": 70, "emd": 0.043},
    ("grid25-wgangp", "DRS"): {"source": "S1 Table 1", "modes": 24.8, "high_quality_pct": 90},
    ("grid25-wgangp", "DOT"): {"source": "S1 Table 2 (Tanaka)", "emd": 0.052},
    ("grid25-wgangp", "DDLS (ULA)"): {"source": "S1 Table 1/2", "modes": 24.8, "high_quality_pct": 98, "emd": 0.036},
    ("swissroll-wgangp", "generator"): {"source": "S1 Table 2", "emd": 0.026},
    ("swissroll-wgangp", "DOT"): {"source": "S1 Table 2 (Tanaka)", "emd": 0.020},
    ("swissroll-wgangp", "DDLS (ULA)"): {"source": "S1 Table 2", "emd": 0.020},
}


def _mean_std(vals):
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    s = (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
    return m, s


def run_variant(pair, variant: Variant, z: torch.Tensor, seed: int, progress: bool = False):
    """Run one variant on latents ``z``; returns ``(x, info dict)``."""
    from ...api import refine
    from ..fit import sampling_options

    if variant.method == DATA:  # the metrics' floor: a fresh draw from the data distribution
        from ...data import toy

        t0 = time.perf_counter()
        x = toy(pair.meta.get("dataset")).sample(z.shape[0], generator=50_000 + seed)
        return x, {**{k: 0 for k in GD_EVAL_KEYS}, "wall_s": time.perf_counter() - t0}
    D, opts = pair.run_d(sampling_options(variant.method, pair.meta, dict(variant.options)))
    res = refine(
        pair.G,
        D,
        z,
        method=variant.method,
        generator=torch.Generator().manual_seed(seed),
        progress=progress,
        **opts,
    )
    d = res.to_dict()
    d["options"] = {k: v for k, v in opts.items() if k not in ("progress",)}
    if not kernel(variant.method).refines:  # the generator alone: no diagnostics
        d = {k: v for k, v in d.items() if k not in DIAGNOSTICS}
    return res.x, d


def toy2d(
    models=("grid25-wgangp", "swissroll-wgangp"),
    variants=TOY2D_VARIANTS,
    *,
    num: int = 5000,
    seeds=(0,),
    dataset_of=None,
    progress: bool = False,
    device: str = "cpu",
) -> dict:
    """The 2-D suite: each model × variant × seed, metrics averaged over seeds (mean and std)."""
    from ...metrics import toy_metrics
    from ...models import load

    doc: dict[str, Any] = {
        "schema": 1,
        "suite": "toy2d",
        "env": env_info(device),
        "num": num,
        "seeds": list(seeds),
        "rows": [],
    }
    for model in models:
        pair = load(model, device=device)
        dataset = (dataset_of or {}).get(model) or pair.meta.get("dataset") or model.split("-")[0]
        for v in variants:
            per_seed, infos, row = [], [], {"model": model, "label": v.label, "method": v.method}
            try:
                for s in seeds:
                    z = sample_latents(
                        num, pair.latent_dim, pair.meta.get("prior", "normal"), generator=1000 + s, device=device
                    )
                    x, info = run_variant(pair, v, z, s, progress)
                    per_seed.append(toy_metrics(x, dataset, generator=s))
                    infos.append(info)
                keys = per_seed[0].keys()
                row["metrics"] = {k: _mean_std([m[k] for m in per_seed])[0] for k in keys}
                row["metrics_std"] = {k: _mean_std([m[k] for m in per_seed])[1] for k in keys}
                row["per_seed"] = per_seed
                row["budget_per_sample"] = {k: sum(i[k] for i in infos) / (len(infos) * num) for k in GD_EVAL_KEYS}
                row["wall_s"] = sum(i["wall_s"] for i in infos) / len(infos)
                row["options"] = infos[0].get("options", {})
                for k in DIAGNOSTICS:
                    if k in infos[0]:
                        row[k] = _mean_std([i[k] for i in infos])[0]
            except (LatentflowError, RuntimeError) as e:
                row["error"] = f"{type(e).__name__}: {e}"
                log.error("%s / %s failed: %s", model, v.label, traceback.format_exc())
            ref = TOY2D_REFERENCE.get((model, v.label))
            if ref:
                row["reference"] = ref
            doc["rows"].append(row)
    return doc


def _fmt(v, nd=3):
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:.3g}"
        return f"{v:.{nd}f}"
    return str(v)


def toy2d_table(doc: dict) -> str:
    """A markdown table of a ``toy2d`` document, with Che et al. 2020's numbers beside ours."""
    lines = [
        "| model | method | D evals/sample (fwd+bwd) | modes | HQ % | HQ std | EMD | precision | recall | density "
        "| coverage | paper (S1) | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['label']} | error: {r['error']} |" + " |" * 10)
            continue
        m, sd = r["metrics"], r.get("metrics_std", {})
        b = Evals(**r["budget_per_sample"])

        def ms(k, nd=3, m=m, sd=sd):
            if k not in m:
                return "–"
            s = sd.get(k)
            return _fmt(m[k], nd) + (f" ± {_fmt(s, nd)}" if s else "")

        ref = r.get("reference") or {}
        ref_s = ", ".join(f"{k} {v}" for k, v in ref.items() if k != "source") if ref else ""
        lines.append(
            f"| {r['model']} | {r['label']} | {b.n_D_forward + b.n_D_backward:.0f} | "
            f"{ms('modes', 1)} | {ms('high_quality_pct', 1)} | {ms('hq_std', 3)} | {ms('emd', 3)} | "
            f"{ms('precision')} | {ms('recall')} | {ms('density')} | {ms('coverage')} | "
            f"{ref_s} | {r['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def _toy2d_run(
    models=None, num=None, seeds=None, quick=False, progress=False, device="cpu", **unused
) -> tuple[dict, dict]:
    n, s = (500, 1) if quick else (num or 5000, seeds or 3)
    return toy2d(
        tuple(models or ()) or ("grid25-wgangp", "swissroll-wgangp"),
        num=n,
        seeds=tuple(range(s)),
        progress=progress,
        device=device,
    ), {}


#: the suite as data (``latentflow bench toy2d``)
TOY2D = Suite(
    name="toy2d",
    rows=tuple(v.label for v in TOY2D_VARIANTS),
    metric="emd",
    run=_toy2d_run,
    table=toy2d_table,
    default_out="results/toy2d.json",
    summary="2-D models (25 Gaussians, swiss roll): modes, high-quality %, EMD, precision/recall/density/coverage",
)
