"""How far apart are tune's pick and the best single run of ``benchmarks/tune_rgb.py``, beyond noise?

Both rows of a model are run again on the evaluation latents and labels of ``tune_rgb.py`` (the runs are
deterministic: their Inception FID must come out as the stored one), and the FID difference gets a paired
bootstrap standard error: the chains are resampled with the same indices for both runs, the evaluation
images fixed. A difference within two standard errors is a tie at this sample size.

Reads ``<results>/results.json`` (one or several models, all of them in ``--models``), writes ``gap`` into
each model's entry (``tune_rgb.py --combine`` keeps it, and its table shows it) and prints a table. The pick must be reproducible from the row: uncalibrated, or calibrated by temperature
(its options already carry ``T/a``); a pick on a calibrated D itself (DRS/MH-GAN "(cal)") is skipped.

    OMP_NUM_THREADS=1 python benchmarks/tune_rgb_gap.py --results results/tune_rgb --models /work/rgb_models
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from tune_rgb import TOY, ImageScorer, run_candidate

import latentflow
from latentflow import rng
from latentflow._io import atomic_write_json
from latentflow.app.tune.tune_metrics import FrechetRef
from latentflow.app.tune.tune_search import paired_bootstrap_se
from latentflow.samplers import Candidate, kernel

BOOT = 1000


def _candidate(row: dict, tuned: bool) -> Candidate | None:
    """The row's candidate as ``run_candidate`` runs it; None when it cannot be rebuilt from the row."""
    cal = "(cal)" in row["label"]
    opts = {k: v for k, v in row["options"].items() if k not in ("d_output", "prior", "y")}
    if cal and kernel(row["method"]).calibration != "temperature":
        return None if tuned else Candidate(row["method"], opts, True)
    return Candidate(row["method"], opts, cal and not tuned)  # a tuned pick's options carry T/a already


def paired_gap(fa: torch.Tensor, fb: torch.Tensor, ref: FrechetRef, seed: int = 0) -> dict:
    """FID of both feature sets, their difference ``a - b`` and its paired bootstrap standard error."""
    fid_a, fid_b = ref(fa), ref(fb)
    d, se = fid_a - fid_b, paired_bootstrap_se(ref, fa, fb, BOOT, seed)
    return {"fid_a": fid_a, "fid_b": fid_b, "diff": d, "se": se, "z": d / se if se > 0 else math.inf}


def gap_for(doc: dict, models: Path, env: dict) -> dict:
    name = doc["model"]
    rows = {r["label"]: r for r in doc["rows"] if "error" not in r}
    tuned = next((r for r in rows.values() if r["kind"] == "tune"), None)
    best = doc.get("summary", {}).get("best_in_budget")
    if tuned is None or best is None or best not in rows:
        return {"skipped": "no tune row or no best run within the budget"}
    a, b = _candidate(tuned, True), _candidate(rows[best], False)
    if a is None or b is None:
        return {"skipped": "a pick on a calibrated D itself cannot be rebuilt from its row"}
    pair = latentflow.load(str(models / name))
    with np.load(models / "data" / "test.npz") as f:
        x, yl = torch.from_numpy(f["x"]), torch.from_numpy(f["y"]).long()
    scorer = ImageScorer(x[-env["test_num"] :])
    seed, prior = env["seed"], pair.meta.get("prior", "normal")
    z = rng.sample_latents(env["num"], pair.latent_dim, prior, generator=seed + 1000)
    y = pair.labels(env["num"], generator=seed + 1000) if pair.num_classes > 0 else None
    cal = None
    if b.calibrated:
        from latentflow.app.bench.images_rows import _calibrated_d

        n_cal = max(10, int(0.3 * env["tune_real"]))
        cal, _ = _calibrated_d(pair, n_cal, seed, "cpu", x[:n_cal], yl[:n_cal])
    feats = [scorer.features(run_candidate(pair, cal, c, z, y, seed).x) for c in (a, b)]
    out = paired_gap(*feats, FrechetRef(scorer.real["features"]), seed)
    out.update(tune=tuned["label"], best=best)
    out["stored"] = {"tune": tuned["metrics"]["inception_fid"], "best": rows[best]["metrics"]["inception_fid"]}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(Path(__file__).resolve().parents[1] / "results" / "tune_rgb"))
    p.add_argument("--models", default="/work/rgb_models", help="the folder train_rgb_gans.py wrote")
    p.add_argument("--only", nargs="*", default=None, help="model names (default: every image model)")
    a = p.parse_args(argv)
    path = Path(a.results) / "results.json"
    full = json.loads(path.read_text())
    lines = [
        "| model | tune's pick | best run within the budget | FID tune − best | paired SE | z |",
        "|---|---|---|---|---|---|",
    ]
    for doc in full["models"]:
        if doc["model"] == TOY or (a.only and doc["model"] not in a.only):
            continue
        env = doc.get("env") or full["env"]
        doc["gap"] = g = gap_for(doc, Path(a.models), env)
        atomic_write_json(path, full, default=str)
        if "skipped" in g:
            lines.append(f"| {doc['model']} | | | skipped: {g['skipped']} | | |")
        else:
            lines.append(
                f"| {doc['model']} | {g['tune']} | {g['best']} | {g['diff']:+.1f} | {g['se']:.1f} | {g['z']:+.2f} |"
            )
        print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
