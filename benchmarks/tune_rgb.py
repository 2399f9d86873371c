"""Does ``latentflow.tune`` help the GANs people have? On the RGB test GANs of ``benchmarks/train_rgb_gans.py``
(and its 2-D WGAN-GP with a uniform prior and a raw critic, the DOT paper's setting), on held-out data:

* ``generator``: the generator alone;
* every method searched by ``tune`` at each of its **published** settings (``Kernel.search_space``
  candidates that carry a paper's name; calibrated ones on a Platt-scaled D, as ``tune`` applies it) and at
  its **defaults** (``refine(G, D, z, method=m)`` with the model's ``d_output`` / prior only);
* ``tune``: ``latentflow.tune(G, D, real_tune, budget=100, time_budget=..., num_classes=..., real_labels=...)``
  and its pick run on the evaluation latents.

The test split is cut in two: the first ``--tune-real`` images are what ``tune`` (and the calibrations) see;
the evaluation set is the LAST ``--test-num`` images, never seen by any choice. Every run draws the same
``--num`` latents (and, for a class-conditional model, the same uniform per-chain labels). Images are scored
by Inception FID (pool3, torch-fidelity's weights or the offline ones) and KID against the evaluation set;
the 2-D model by exact EMD (and the ring's high-quality share). CPU seconds are recorded per run (sampling
and scoring apart) and for the tune search.

Writes ``<out>/results.json`` and ``<out>/results.md`` (one table per model, and a summary: tune vs the
generator and vs the best published / default run).

    OMP_NUM_THREADS=1 python benchmarks/tune_rgb.py --models /work/rgb_models             # the full run
    python benchmarks/tune_rgb.py --only rgb-ns-bn --num 16 --test-num 32 --tune-real 64 \\
        --time-budget 60 --out /tmp/tune_rgb_smoke                                         # a smoke run
    python benchmarks/tune_rgb.py --out /tmp/tune_rgb_smoke --tune-only --time-budget 300  # tune rows only
    python benchmarks/tune_rgb.py --out /tmp/tune_rgb_smoke --refresh-published           # new published rows
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import latentflow
from latentflow import rng
from latentflow._io import atomic_write_json, atomic_write_text
from latentflow.api import refine
from latentflow.samplers import NO_REFINEMENT, Candidate, SearchContext, kernel

ROOT = Path(__file__).resolve().parents[1]
TOY = "ring8-wgangp-unif"
IMAGE_MODELS = ("rgb-hinge-proj", "rgb-ns-bn", "rgb-wgangp-unif", "rgb-hinge-strongd")


# -- scoring ---------------------------------------------------------------------------------------------
class ImageScorer:
    """Inception FID / KID against the evaluation images (their features computed once)."""

    def __init__(self, x_eval: torch.Tensor):
        from latentflow.metrics import feature_dict, to_uint8
        from latentflow.metrics.feature_cache import real_feature_rows

        self._fd, self._u8 = feature_dict, to_uint8
        self.real = {"features": real_feature_rows(to_uint8(x_eval))[0]}  # the shared per-image cache
        self.name = "inception_fid"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._fd(self._u8(x))["features"]

    def __call__(self, x: torch.Tensor) -> dict:
        from latentflow.metrics import fidelity_from_features

        m = fidelity_from_features({"features": self.features(x)}, self.real)
        return {"inception_fid": m["fid"], "inception_kid": m["kid"]}


class ToyScorer:
    def __init__(self, x_eval: torch.Tensor, data: str = "ring8"):
        self.real, self.data, self.name = x_eval, data, "emd"

    def __call__(self, x: torch.Tensor) -> dict:
        from latentflow.metrics.toy2d import toy_metrics

        m = toy_metrics(x, self.data, reference=self.real)
        return {k: m[k] for k in ("emd", "high_quality_pct", "modes") if k in m}


# -- runs ------------------------------------------------------------------------------------------------
def model_options(method: str, pair, calibrated_d: bool = False) -> dict:
    """``d_output`` and ``prior`` where the method takes them: facts of the model, not tuning."""
    valid = kernel(method).defaults()
    out = {}
    if "d_output" in valid:
        out["d_output"] = "logit" if calibrated_d else (pair.meta.get("d_output") or "logit")
    if "prior" in valid:
        out["prior"] = pair.meta.get("prior", "normal")
    return out


def run_candidate(pair, cal, c: Candidate, z, y, seed: int):
    """Run one candidate as ``tune`` applies it: a "temperature" calibration as rescaled options on the raw
    D, a "discriminator" calibration on the calibrated D itself."""
    k = kernel(c.method)
    opts, D = dict(c.options), pair.D
    uses_cal = c.calibrated and k.calibration == "discriminator"
    if c.calibrated:
        if cal is None:
            raise RuntimeError("calibration failed: no calibrated candidate can run")
        if k.calibration == "temperature":
            opts = k.calibrated_options(opts, cal.fit_info["a"])
        elif uses_cal:
            D = cal
    opts.update(model_options(c.method, pair, uses_cal))
    if y is not None:
        opts["y"] = y
    return refine(pair.G, D, z, method=c.method, seed=seed, progress=False, **opts)


def timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def record(label, kind, method, options, res, cpu, score, scorer_cpu, n, name=None) -> dict:
    row = {"label": label, "kind": kind, "method": method, "options": _jsonable(options), "published": name}
    row["d_evals_per_sample"] = float(res.evals.n_D_forward) / n if res is not None else None
    row.update(run_cpu_s=round(cpu, 2), score_cpu_s=round(scorer_cpu, 2), metrics=score)
    return row


def _jsonable(d: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in d.items()}


def tune_kwargs(pair, real_tune, real_tune_y, budget: int, time_budget: float, features, seed: int, notes: list):
    """The keyword arguments of ``latentflow.tune`` for this model, without those it does not take yet."""
    from latentflow.app.tune.tune import tune as _tune

    params = inspect.signature(_tune).parameters
    kw = dict(
        latent_dim=pair.latent_dim,
        prior=pair.meta.get("prior", "normal"),
        d_output=pair.meta.get("d_output") or "logit",
        budget=budget,
        seed=seed,
        progress=True,
    )
    wanted = {"time_budget": time_budget}
    if features is not None:
        wanted["features"] = features
    else:
        wanted["metric"] = "emd"
    if pair.num_classes > 0:
        if "num_classes" not in params:
            raise RuntimeError("latentflow.tune cannot label a class-conditional model's chains yet (no num_classes=)")
        wanted.update(num_classes=pair.num_classes, real_labels=real_tune_y)
    for k, v in wanted.items():
        if k in params:
            kw[k] = v
        else:
            notes.append(f"latentflow.tune takes no {k}= yet (the tune rewrite adds it): run without it")
    return kw


def tuned_run(res, z, y, seed):
    params = inspect.signature(res.refine).parameters
    if y is not None:
        if "y" not in params:
            raise RuntimeError("TuneResult.refine takes no y= yet: cannot run the pick on labelled chains")
        return res.refine(z, y=y, seed=seed)
    return res.refine(z, seed=seed)


def bench_model(name: str, models: Path, a) -> dict:
    pair = latentflow.load(str(models / name))
    prior, k = pair.meta.get("prior", "normal"), pair.num_classes
    toy = name == TOY
    if toy:
        from latentflow.data import toy as toy_data

        ds = toy_data("ring8")
        real_tune, real_tune_y = ds.sample(a.tune_real, generator=a.seed + 11), None
        scorer = ToyScorer(ds.sample(a.test_num, generator=a.seed + 12))
        features = None
    else:
        with np.load(models / "data" / "test.npz") as f:
            x, yl = torch.from_numpy(f["x"]), torch.from_numpy(f["y"]).long()
        if a.tune_real + a.test_num > x.shape[0]:
            raise SystemExit(f"--tune-real + --test-num must be <= {x.shape[0]} (the test split)")
        real_tune, real_tune_y = x[: a.tune_real], yl[: a.tune_real]
        scorer = ImageScorer(x[-a.test_num :])
        features = scorer.features
    z = rng.sample_latents(a.num, pair.latent_dim, prior, generator=a.seed + 1000)
    y = pair.labels(a.num, generator=a.seed + 1000) if k > 0 else None
    doc: dict = {"model": name, "metric": scorer.name, "num": a.num, "num_classes": k, "rows": [], "notes": []}
    info = models / name / "train_info.json"
    doc["train_cpu_s"] = json.loads(info.read_text()).get("train_cpu_s") if info.is_file() else None
    rows = doc["rows"]

    prev = getattr(a, "previous", {}).get(name)
    kept = {r["label"]: r for r in prev["rows"]} if prev is not None and a.refresh_published else None

    def add(label, kind, method, options, fn, pub=None):
        if kept is not None and label in kept:  # --refresh-published: a setting run before stays as it was
            rows.append(kept[label])
            return
        try:
            res, cpu = timed(fn)
            x = res.x
            if not torch.isfinite(x).all():
                raise FloatingPointError("non-finite samples")
            score, scpu = timed(lambda: scorer(x))
            rows.append(record(label, kind, method, options, res, cpu, score, scpu, a.num, pub))
        except Exception as e:  # noqa: BLE001  (a failing run is a result)
            rows.append({"label": label, "kind": kind, "method": method, "error": f"{type(e).__name__}: {e}"})
        print(name, json.dumps(rows[-1], default=str)[:300], flush=True)

    if prev is not None and a.tune_only:  # keep every other row, rerun the tune search and its pick
        rows[:] = [r for r in prev["rows"] if r.get("kind") != "tune"]  # the list ``add`` appends to
        doc["notes"] = [n for n in prev.get("notes", []) if "tune" not in n]
        doc["calibration"] = prev.get("calibration")
        return _tune_rows(doc, pair, real_tune, real_tune_y, features, z, y, a, add)
    add("generator", "generator", NO_REFINEMENT, {}, lambda: refine(pair.G, pair.D, z, method=NO_REFINEMENT, y=y))
    from latentflow.app.bench.images_rows import _calibrated_d
    from latentflow.app.tune.tune import searched_methods

    cal = None
    try:
        n_cal = max(10, int(0.3 * real_tune.shape[0]))
        if toy:
            from latentflow.calibration import calibrate
            from latentflow.samplers import generate

            zc = rng.sample_latents(n_cal, pair.latent_dim, prior, generator=a.seed + 7919)
            cal = calibrate(pair.D, real_tune[:n_cal], generate(pair.G, zc), d_output=pair.meta.get("d_output"))
        else:
            cal, _ = _calibrated_d(pair, n_cal, a.seed, "cpu", real_tune[:n_cal], real_tune_y[:n_cal])
        doc["calibration"] = dict(cal.fit_info)
    except Exception as e:  # noqa: BLE001
        doc["notes"].append(f"calibration failed: {type(e).__name__}: {e}")
    ctx = SearchContext(budget=a.budget, calibrated=cal is not None, prior=prior)
    for m in searched_methods():
        for c in (c for c in kernel(m).search_space(ctx) if c.name):
            add(c.label, "published", m, c.options, lambda c=c: run_candidate(pair, cal, c, z, y, a.seed), c.name)
        dc = Candidate(m, {})
        add(f"{m}[defaults]", "defaults", m, {}, lambda dc=dc: run_candidate(pair, None, dc, z, y, a.seed))
    if kept is not None:  # the tune search and its pick as they were; the gap is measured again if wanted
        rows += [r for r in prev["rows"] if r.get("kind") == "tune"]
        doc["tune"] = prev.get("tune")
        summarise(doc, a.budget)
        return doc
    return _tune_rows(doc, pair, real_tune, real_tune_y, features, z, y, a, add)


def _tune_rows(doc, pair, real_tune, real_tune_y, features, z, y, a, add) -> dict:
    """Run the tune search on ``real_tune`` and its pick on the evaluation latents ``z`` (labels ``y``)."""
    rows = doc["rows"]
    try:
        kw = tune_kwargs(pair, real_tune, real_tune_y, a.budget, a.time_budget, features, a.seed, doc["notes"])
        res, tcpu = timed(lambda: latentflow.tune(pair.G, pair.D, real_tune, **kw))
        doc["tune"] = {"cpu_s": round(tcpu, 1), "winner": res.summary.get("winner"), "summary": res.summary}
        add(
            f"tune: {res.summary.get('winner')}",
            "tune",
            res.method,
            res.options,
            lambda: tuned_run(res, z, y, a.seed),
        )
        rows[-1]["tune_search_cpu_s"] = round(tcpu, 1)
    except Exception as e:  # noqa: BLE001
        doc["notes"].append(f"tune failed: {type(e).__name__}: {e}")
        rows.append({"label": "tune", "kind": "tune", "method": None, "error": f"{type(e).__name__}: {e}"})
    summarise(doc, a.budget)
    return doc


def summarise(doc: dict, budget: float | None = None) -> None:
    """The model's summary: tune against the generator, against the best published/default run, and against
    the best of those that kept to ``budget`` D evaluations per sample (the only ones tune may pick)."""
    key = doc["metric"]
    budget = budget if budget is not None else (doc.get("env") or {}).get("budget")
    ok = [r for r in doc["rows"] if "error" not in r]
    val = {r["label"]: r["metrics"][key] for r in ok}
    gen = val.get("generator")
    for r in ok:
        r["vs_generator_pct"] = 100 * (r["metrics"][key] - gen) / gen if gen else None
    tuned = next((r for r in ok if r["kind"] == "tune"), None)
    others = [r for r in ok if r["kind"] in ("published", "defaults")]
    best = min(others, key=lambda r: r["metrics"][key]) if others else None
    fair = [r for r in others if budget is None or (r["d_evals_per_sample"] or 0) <= budget]
    best_fair = min(fair, key=lambda r: r["metrics"][key]) if fair else None
    doc["summary"] = {
        "generator": gen,
        "tune": tuned["metrics"][key] if tuned else None,
        "best_other": best["label"] if best else None,
        "best_other_value": best["metrics"][key] if best else None,
        "tune_lowers_by_pct": (100 * (1 - tuned["metrics"][key] / gen)) if tuned and gen else None,
        "tune_not_worse_than_generator": (tuned["metrics"][key] <= gen) if tuned and gen is not None else None,
        "tune_at_least_best_other": (tuned["metrics"][key] <= best["metrics"][key]) if tuned and best else None,
        "best_in_budget": best_fair["label"] if best_fair else None,
        "best_in_budget_value": best_fair["metrics"][key] if best_fair else None,
        "tune_at_least_best_in_budget": (
            (tuned["metrics"][key] <= best_fair["metrics"][key]) if tuned and best_fair else None
        ),
    }


def _f(v, nd=3):
    if v is None:
        return "–"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{nd}g}"
    return str(v)


def _cpu(v) -> str:
    return "–" if v is None else f"{v:.0f}"


def _settings(docs: list, env: dict) -> list:
    """(settings, model names) for each distinct run setting: a doc's own ``env`` (a combined table) or ``env``."""
    groups: list = []
    for d in docs:
        e = d.get("env", env)
        for g in groups:
            if g[0] == e:
                g[1].append(_name(d))
                break
        else:
            groups.append((e, [_name(d)]))
    return groups


def _name(d: dict) -> str:
    """The model's name and, where known, its training CPU time (one model trained for longer stands apart)."""
    t = d.get("train_cpu_s")
    return d["model"] if not t else f"{d['model']} ({t / 60:.0f} CPU-min)"


def table(docs: list, env: dict) -> str:
    out = ["# tune on the RGB test GANs (benchmarks/tune_rgb.py)", ""]
    for e, names in _settings(docs, env):
        out.append(
            f"{', '.join(names)}: {e['num']} samples per run, evaluation set: the last {e['test_num']} test "
            f"samples (tune sees the first {e['tune_real']}), budget {e['budget']} D evaluations per sample, "
            f"tune time budget {e['time_budget']} CPU s, seed {e['seed']}; torch {torch.__version__}."
        )
    out += [
        "",
        "| model | generator | tune (pick) | tune vs generator | best published/default | tune ≤ best? | "
        "best within the budget | tune ≤ it? | tune search CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in docs:
        s, t = d.get("summary", {}), d.get("tune", {})
        pct = s.get("tune_lowers_by_pct")
        out.append(
            f"| {_name(d)} | {_f(s.get('generator'))} | {_f(s.get('tune'))} ({t.get('winner', '–')}) | "
            f"{'–' if pct is None else f'{-pct:+.1f}%'} | {_f(s.get('best_other_value'))} ({s.get('best_other')}) | "
            f"{_f(s.get('tune_at_least_best_other'))} | {_f(s.get('best_in_budget_value'))} "
            f"({s.get('best_in_budget')}) | {_f(s.get('tune_at_least_best_in_budget'))} | {_cpu(t.get('cpu_s'))} |"
        )
    ss = [d.get("summary", {}) for d in docs if d["model"] != TOY]
    out += [
        "",
        f"Image models where tune lowers Inception FID by >= 15%: "
        f"{sum(1 for s in ss if (s.get('tune_lowers_by_pct') or 0) >= 15)} of {len(ss)}; tune never worse than "
        f"the generator: {all(s.get('tune_not_worse_than_generator') for s in ss)}; tune at least as good as the "
        f"best published/default run everywhere: "
        f"{all(d.get('summary', {}).get('tune_at_least_best_other') for d in docs)}; as good as the best that "
        f"kept to the budget everywhere: {all(d.get('summary', {}).get('tune_at_least_best_in_budget') for d in docs)}.",
        "",
        "Runs over the budget (defaults of 100 steps use 101 D evaluations per sample, Ex2MCMC's 751) are shown "
        "but are not choices tune may make at this budget. FID of 200 samples is noisy: 200 real test images "
        "against the evaluation set score 41.8 with a spread of 0.8 over five draws, and the spread grows "
        "with the distance, so a gap of a few FID points between two runs is within noise.",
    ]
    for d in docs:
        key = d["metric"]
        out += ["", f"## {_name(d)} ({key}, lower is better)", ""]
        out += [f"| run | kind | published | D evals/sample | {key} | vs generator | run CPU s | score CPU s |"]
        out += ["|---|---|---|---|---|---|---|---|"]
        for r in d["rows"]:
            if "error" in r:
                out.append(f"| {r['label']} | {r['kind']} | | | error: {r['error'][:150]} | | | |")
                continue
            pct = r.get("vs_generator_pct")
            out.append(
                f"| {r['label']} | {r['kind']} | {r.get('published') or ''} | {_f(r['d_evals_per_sample'])} | "
                f"{_f(r['metrics'][key], 4)} | {'–' if pct is None else f'{pct:+.1f}%'} | "
                f"{r['run_cpu_s']:.1f} | {r['score_cpu_s']:.1f} |"
            )
        out += [f"- {n}" for n in d.get("notes", [])]
        g = d.get("gap") or {}
        if "diff" in g:
            out.append(
                f"- tune's pick − the best run within the budget, rerun on the same latents "
                f"(`benchmarks/tune_rgb_gap.py`): {g['diff']:+.1f} FID, paired bootstrap SE {g['se']:.1f} "
                f"(z = {g['z']:+.2f})"
            )
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="/work/rgb_models", help="the folder train_rgb_gans.py wrote")
    p.add_argument("--only", nargs="*", default=None, choices=(*IMAGE_MODELS, TOY))
    p.add_argument("--num", type=int, default=1000, help="samples per run")
    p.add_argument("--test-num", type=int, default=5000, help="evaluation images (the last of the test split)")
    p.add_argument("--tune-real", type=int, default=5000, help="real images tune sees (the first of the split)")
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--time-budget", type=float, default=1800.0, help="tune's time_budget (seconds)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "results" / "tune_rgb"))
    p.add_argument(
        "--tune-only",
        action="store_true",
        help="read <out>/results.json, rerun only the tune search and its pick's row (same latents and "
        "evaluation set as the other rows, from the file's settings), rewrite results.json and results.md",
    )
    p.add_argument(
        "--refresh-published",
        action="store_true",
        help="read <out>/results.json and run only the published settings the methods declare now that it lacks "
        "(rows of settings no longer declared are dropped; every other row, tune's included, is kept as it was)",
    )
    p.add_argument(
        "--combine",
        nargs="+",
        default=None,
        metavar="DIR",
        help="write one table of the results.json files in these folders (runs made with different settings, "
        "e.g. the images and the 2-D model apart) to <out>; runs nothing",
    )
    a = p.parse_args(argv)
    models, out = Path(a.models), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.combine:
        docs = []
        for folder in a.combine:
            doc = json.loads((Path(folder) / "results.json").read_text())
            docs += [dict(d, env=doc["env"] or d["env"]) for d in doc["models"]]  # a combined file keeps its envs
        for d in docs:
            summarise(d)  # this version's summary (e.g. the best run within the budget) from the rows
        atomic_write_json(out / "results.json", {"env": None, "models": docs}, default=str)
        atomic_write_text(out / "results.md", table(docs, {}))
        print(table(docs, {}))
        return
    keys = ("num", "test_num", "tune_real", "budget", "time_budget", "seed")
    old_docs: list = []
    if a.tune_only and a.refresh_published:
        raise SystemExit("--tune-only and --refresh-published: one at a time")
    if a.tune_only or a.refresh_published:
        if not (out / "results.json").is_file():
            raise SystemExit(f"no {out / 'results.json'} to update (run without --tune-only/--refresh-published first)")
        doc = json.loads((out / "results.json").read_text())
        restore = keys if a.refresh_published else keys[:3] + ("seed",)  # the kept rows' settings
        for k in restore:  # (--tune-only: the other rows' latents and evaluation set; the search's may change)
            setattr(a, k, doc["env"][k])
        old_docs = doc["models"]
        a.previous = {d["model"]: d for d in old_docs}
    env = {k: getattr(a, k) for k in keys}
    docs = [d for d in old_docs if a.only and d["model"] not in a.only]
    for name in a.only or ([d["model"] for d in old_docs] if old_docs else [*IMAGE_MODELS, TOY]):
        docs.append(bench_model(name, models, a))
        atomic_write_json(out / "results.json", {"env": env, "models": docs}, default=str)
        atomic_write_text(out / "results.md", table(docs, env))
    print(table(docs, env))


if __name__ == "__main__":
    main()
