"""What each method costs in diversity: FID, precision, recall, density and coverage per method at an equal
budget, with the generator and the truncation trick at several ψ (Brock et al. 2019) as the baseline trade.

* Fashion-MNIST: the bundled ``dcgan-fashion`` through the image suite (``latentflow bench images``: its rows,
  budget rule and FID-FMNIST; precision/recall/density/coverage on the same ``fmnist-classifier`` features,
  k = 5, against the first ``num`` test images).
* 2-D: the bundled ``grid25-wgangp`` and ``swissroll-wgangp`` through the 2-D suite's rows and budgets; the
  Fréchet distance of Gaussians fitted to the raw coordinates stands in for FID ("FD"), and PRDC is computed
  on the raw coordinates against a fresh draw of the data of the same size (as the EMD).

Each table also says, per method, what truncation would give at the method's precision: the recall of the
truncation curve (generator = ψ ∞ and the ψ rows, interpolated linearly in precision) and the method's
recall minus it ("Δ recall at equal precision": > 0 means the method buys its precision more cheaply than
truncation does).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/prdc.py --out results/prdc          # ~55 CPU-minutes
    python benchmarks/prdc.py --out results/prdc --reuse     # rerun only generator, truncation and data rows
    python benchmarks/prdc.py --quick --out /tmp/prdc                                  # a smoke run

Writes OUT/fmnist.json, OUT/fmnist.md, OUT/toy2d.json, OUT/toy2d.md (JSON first, tables from it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

PSIS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
IMAGE_METHODS = ("generator", "drs", "mh", "dot", "ddls", "ddls-mala", "dgflow", "ex2mcmc", "ddls-cal")
KEYS = ("precision", "recall", "density", "coverage")


def _f(v, nd=3):
    if v is None:
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _delta(r: dict) -> str:
    d = r.get("delta_recall")
    return "" if d is None else f"{d:+.3f}"


def truncation_recall_at(points: list[tuple[float, float]], p: float) -> float | None:
    """Recall of the truncation curve at precision ``p``: linear interpolation between the measured
    (precision, recall) points (generator and ψ rows); None outside their precision range."""
    pts = sorted(points)
    for (p0, r0), (p1, r1) in zip(pts, pts[1:]):
        if p0 <= p <= p1:
            return r0 if p1 == p0 else r0 + (r1 - r0) * (p - p0) / (p1 - p0)
    return None


def add_trade(rows: list[dict], metrics_of) -> None:
    """Give every non-truncation row ``recall_truncation_at_equal_precision`` and ``delta_recall``."""
    base = [r for r in rows if "error" not in r and r["method"] in ("none", "truncation")]
    points = [(metrics_of(r)["precision"], metrics_of(r)["recall"]) for r in base]
    for r in rows:
        if "error" in r or r["method"] in ("none", "truncation", "data"):
            continue
        m = metrics_of(r)
        rt = truncation_recall_at(points, m["precision"])
        r["recall_truncation_at_equal_precision"] = rt
        r["delta_recall"] = None if rt is None else m["recall"] - rt


def reusable(previous: dict | None, same: dict) -> dict:
    """Rows of ``previous`` (a document this script wrote) that a run with the settings ``same`` may take
    over instead of running them again: the methods' rows (never the generator, truncation or data rows,
    which are cheap), only when every setting in ``same`` matches; keyed by (model, label, method)."""
    if not previous or any(previous.get(k) != v for k, v in same.items()):
        return {}
    return {
        (r.get("model"), r["label"], r["method"]): r
        for r in previous["rows"]
        if "error" not in r and r["method"] not in ("none", "truncation", "data")
    }


def fmnist_data_row(num: int, seed: int) -> dict:
    """The floor: ``num`` Fashion-MNIST *train* images (seeded draw) scored like a method's samples."""
    from latentflow.app.bench.images_metrics import fmnist_row_metrics
    from latentflow.app.bench.images_rows import real_for_calibration
    from latentflow.metrics import to_uint8

    x = real_for_calibration(num, 50_000 + seed)
    flat, _ = fmnist_row_metrics(to_uint8(x), rng_seed=seed)
    zero = {"n_G_forward": 0.0, "n_G_backward": 0.0, "n_D_forward": 0.0, "n_D_backward": 0.0}
    return {
        "key": "data",
        "label": "data (Fashion-MNIST train)",
        "method": "data",
        "metrics": flat,
        "budget_per_sample": zero,
        "wall_s": 0.0,
        "n": num,
    }


def run_fmnist(num: int, seed: int, quick: bool, previous: dict | None = None) -> dict:
    from latentflow.app.bench.images import images, verdict
    from latentflow.app.bench.images_rows import ImageVariant, parse_method

    rows = [parse_method(m) for m in IMAGE_METHODS]
    rows[1:1] = [ImageVariant(f"truncation-{p}", f"truncation ψ={p}", "truncation", {"psi": p}) for p in PSIS]
    t0 = time.perf_counter()
    done = reusable(previous, {"num": num, "seed": seed, "quick": quick})
    todo = [v for v in rows if (v.method, v.label) not in {(k[2], k[1]) for k in done}]
    doc, _ = images("dcgan-fashion", todo, num=num, seed=seed, quick=quick, keep_samples=False, curve_points=0)
    if done:
        ran = {r["label"]: r for r in doc["rows"]}
        old = {k[1]: r for k, r in done.items()}
        doc["rows"] = [ran.get(v.label) or old[v.label] for v in rows]
        doc["reused_rows"] = sorted(old)  # run before with the same num, seed and budget rule
        doc["verdict"] = verdict(doc)
    doc["rows"].insert(0, fmnist_data_row(num, seed))
    doc["total_wall_s"] = time.perf_counter() - t0
    add_trade(doc["rows"], lambda r: r["metrics"])
    return doc


def fmnist_table(doc: dict) -> str:
    env = doc["env"]
    lines = [
        f"**dcgan-fashion**, {doc['num']} samples per row (PRDC: k = 5, fmnist-classifier features vs the first "
        f"{doc['num']} Fashion-MNIST test images), seed {doc['seed']}, budget ≈{doc['budget']['d_forward_per_sample']} "
        f"D evaluations per sample ({env.get('device_name')}, {env.get('cpu_threads')} thread(s), torch {env['torch']})",
        "",
        "| method | D fwd+bwd / sample | FID-FMNIST ↓ | precision ↑ | recall ↑ | density | coverage ↑ | truncation's recall "
        "at equal precision | Δ recall | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        if "error" in r:
            lines.append(f"| {r['label']} | error: {r['error'].splitlines()[0][:150]} |" + " |" * 8)
            continue
        b, m = r["budget_per_sample"], r["metrics"]
        lines.append(
            f"| {r['label']} | {b['n_D_forward'] + b['n_D_backward']:.0f} | {_f(m['fid_fmnist'], 2)} | "
            + " | ".join(_f(m[k]) for k in KEYS)
            + f" | {_f(r.get('recall_truncation_at_equal_precision'))} | "
            f"{_delta(r)} | {r['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance of Gaussians fitted to two point sets (FID's formula on raw coordinates)."""
    import numpy as np
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def run_toy2d(models, num: int, seeds, previous: dict | None = None) -> dict:
    from latentflow.app.bench.toy2d import TOY2D_VARIANTS, Variant, run_variant
    from latentflow.app.report import env_info
    from latentflow.data import toy
    from latentflow.metrics import toy_metrics
    from latentflow.models import load
    from latentflow.rng import sample_latents

    variants = [v for v in TOY2D_VARIANTS if v.method != "truncation"]
    variants[2:2] = [Variant(f"truncation ψ={p}", "truncation", {"psi": p}) for p in PSIS]
    doc: dict = {"schema": 1, "suite": "prdc-toy2d", "env": env_info("cpu"), "num": num, "seeds": list(seeds)}
    doc["rows"] = []
    done = reusable(previous, {"num": num, "seeds": list(seeds)})
    if done:
        doc["reused_rows"] = sorted(f"{k[0]} / {k[1]}" for k in done)
    for model in models:
        pair = load(model)
        ds = toy(pair.meta.get("dataset"))
        ref = ds.sample(num, generator=12345)  # toy_metrics' own reference: EMD, PRDC and FD share it
        for v in variants:
            if (model, v.label, v.method) in done:
                doc["rows"].append(dict(done[(model, v.label, v.method)]))
                continue
            row: dict = {"model": model, "label": v.label, "method": v.method}
            per_seed, walls, evals = [], [], []
            try:
                for s in seeds:
                    z = sample_latents(num, pair.latent_dim, pair.meta.get("prior", "normal"), generator=1000 + s)
                    x, info = run_variant(pair, v, z, s)
                    m = toy_metrics(x, ds, reference=ref, generator=s)
                    m["fd"] = frechet(x[torch.isfinite(x).all(1)], ref)
                    per_seed.append(m)
                    walls.append(info["wall_s"])
                    evals.append(info["n_D_forward"] + info["n_D_backward"])
                    row["options"] = info.get("options", {})
                keys = per_seed[0].keys()
                row["metrics"] = {k: sum(p[k] for p in per_seed) / len(per_seed) for k in keys}
                row["metrics_std"] = {
                    k: (sum((p[k] - row["metrics"][k]) ** 2 for p in per_seed) / max(len(per_seed) - 1, 1)) ** 0.5
                    for k in keys
                }
                row["d_evals_per_sample"] = sum(evals) / (len(evals) * num)
                row["wall_s"] = sum(walls) / len(walls)
            except Exception as e:  # noqa: BLE001  (a failing row is a result)
                row["error"] = f"{type(e).__name__}: {e}"
            doc["rows"].append(row)
    for model in models:
        add_trade([r for r in doc["rows"] if r["model"] == model], lambda r: r["metrics"])
    return doc


def toy2d_table(doc: dict) -> str:
    env = doc["env"]
    lines = [
        f"2-D models, {doc['num']} samples per row, mean ± std over seeds {doc['seeds']} (PRDC: k = 5 on raw "
        f"coordinates vs a fresh draw of {doc['num']} data points; FD: Fréchet distance of Gaussian fits) "
        f"({env.get('device_name')}, {env.get('cpu_threads')} thread(s), torch {env['torch']})",
        "",
        "| model | method | D evals / sample | FD ↓ | EMD ↓ | modes | HQ % | precision ↑ | recall ↑ | density "
        "| coverage ↑ | truncation's recall at equal precision | Δ recall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['label']} | error: {r['error'][:150]} |" + " |" * 10)
            continue
        m, sd = r["metrics"], r["metrics_std"]

        def ms(k, nd=3, m=m, sd=sd):
            if k not in m:
                return "–"
            return f"{m[k]:.{nd}f}" + (f" ± {sd[k]:.{nd}f}" if sd.get(k) else "")

        lines.append(
            f"| {r['model']} | {r['label']} | {r['d_evals_per_sample']:.0f} | {ms('fd', 4)} | {ms('emd')} | "
            f"{ms('modes', 1)} | {ms('high_quality_pct', 1)} | "
            + " | ".join(ms(k) for k in KEYS)
            + f" | {_f(r.get('recall_truncation_at_equal_precision'))} | "
            f"{_delta(r)} |"
        )
    return "\n".join(lines)


def _previous(path: Path, reuse: bool) -> dict | None:
    import json

    return json.loads(path.read_text()) if reuse and path.exists() else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/prdc")
    p.add_argument("--num-images", type=int, default=5000, help="samples per image row [5000; quick 200]")
    p.add_argument("--num-2d", type=int, default=5000, help="samples per 2-D row and seed [5000; quick 500]")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the 2-D rows [3; quick 1]")
    p.add_argument("--models-2d", nargs="+", default=["grid25-wgangp", "swissroll-wgangp"])
    p.add_argument("--only", choices=["fmnist", "toy2d"], default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="take the methods' rows from OUT's previous JSON when num, seed(s) and budget match (the "
        "generator, truncation and data rows always run)",
    )
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(a.threads)
    from latentflow._io import atomic_write_text
    from latentflow.app.report import write_json

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = False
    if a.only in (None, "toy2d"):
        num, seeds = (500, 1) if a.quick else (a.num_2d, a.seeds)
        doc = run_toy2d(a.models_2d, num, tuple(range(seeds)), _previous(out / "toy2d.json", a.reuse))
        write_json(out / "toy2d.json", doc)
        atomic_write_text(out / "toy2d.md", toy2d_table(doc) + "\n")
        print(toy2d_table(doc), flush=True)
        failed |= any("error" in r for r in doc["rows"])
    if a.only in (None, "fmnist"):
        doc = run_fmnist(200 if a.quick else a.num_images, 0, a.quick, _previous(out / "fmnist.json", a.reuse))
        write_json(out / "fmnist.json", doc)
        atomic_write_text(out / "fmnist.md", fmnist_table(doc) + "\n")
        print("\n" + fmnist_table(doc), flush=True)
        failed |= any("error" in r for r in doc["rows"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
