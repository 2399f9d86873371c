"""``tune`` against ``refine``'s untuned defaults on the GANs of ``benchmarks/foreign_gans.py``.

For each GAN: the generator alone, every method with its defaults (the model's ``d_output`` and prior
given), and the recipe ``tune`` picks (≤ 5,000 real samples, ≤ 100 D evaluations per sample). All rows are
scored on a held-out TEST sample (fresh latents, real data ``tune`` never saw): EMD, modes and high-quality %
on 2-D data, FID-FMNIST (10k Fashion-MNIST test images) on images. A second table measures DDLS defaults
(step size, steps, temperature, MALA with step-size adaptation) across the GANs: ``defaults.md``.

    OMP_NUM_THREADS=1 python benchmarks/tune.py [--only NAME ...] [--retrain] [--n-test N] [--no-defaults]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import foreign_gans as fg  # noqa: E402

import latentflow  # noqa: E402
from latentflow._io import atomic_write_json, atomic_write_text  # noqa: E402

OUT = fg.ROOT / "results" / "tune"
DEFAULT_METHODS = ("ddls", "dot", "drs", "mh", "dg_langevin")
# DDLS settings measured for the default recommendation (part 4 of the task)
DDLS_GRID = {
    "default (ULA, eps 0.01, 100 steps, T 1)": {},
    "ULA eps 0.001": dict(step_size=0.001),
    "ULA eps 0.1": dict(step_size=0.1),
    "ULA T 0.3": dict(temperature=0.3),
    "ULA T 0.1": dict(temperature=0.1),
    "ULA 30 steps": dict(steps=30),
    "MALA adapt50 eps0 0.001": dict(mala=True, adapt_steps=50, step_size=0.001),
    "MALA adapt50 eps0 0.01": dict(mala=True, adapt_steps=50, step_size=0.01),
    "MALA adapt50 eps0 0.1": dict(mala=True, adapt_steps=50, step_size=0.1),
    "MALA adapt50 eps0 0.01 T 0.3": dict(mala=True, adapt_steps=50, step_size=0.01, temperature=0.3),
    "MALA adapt50 eps0 0.01 T 0.1": dict(mala=True, adapt_steps=50, step_size=0.01, temperature=0.1),
}


class Scorer:
    """Test metrics of a sample for one GAN (test data drawn once)."""

    def __init__(self, name: str, n: int):
        self.spec = fg.SPECS[name]
        self.image = self.spec["data"] == "fashion-mnist"
        if not self.image:
            from latentflow.data import toy

            self.ref = toy(self.spec["data"]).sample(n, generator=424242)

    def __call__(self, x: torch.Tensor) -> dict:
        if not torch.isfinite(x).all():
            return {"error": "non-finite samples"}
        if self.image:
            from latentflow.metrics import KEY_FID, fid_fmnist, to_uint8

            return {"fid_fmnist": fid_fmnist(to_uint8(x), verbose=False)[KEY_FID]}
        from latentflow.metrics import toy_metrics

        return toy_metrics(x, self.spec["data"], reference=self.ref, n_emd=self.ref.shape[0], generator=0)


def _row(label, res, x, n, cpu_s, scorer, **extra):
    return {
        "row": label,
        **scorer(x),
        "d_evals_per_sample": float(res.info.get("n_D_forward", 0)) / n if res else 0.0,
        "cpu_s": cpu_s,
        **extra,
    }


def ddls_defaults(name: str, n_test: int) -> list:
    """Part 4: DDLS settings (DDLS_GRID) on one GAN's test latents."""
    G, D, _ = fg.load_gan(name)
    s = fg.SPECS[name]
    scorer = Scorer(name, n_test)
    z = latentflow.sample_latents(n_test, s["latent_dim"], s["prior"], generator=999)
    drows = []
    for label, o in DDLS_GRID.items():
        t = time.process_time()
        res = latentflow.refine(
            G, D, z, method="ddls", seed=5, progress=False, d_output=s["d_output"], prior=s["prior"], **o
        )
        extra = {}
        if "accept_rate" in res.info:
            extra = {
                "accept_rate": float(res.info["accept_rate"].mean()),
                "eps_final_median": float(res.info["step_size_final"].median()),
            }
        drows.append(_row(label, res, res.x, n_test, time.process_time() - t, scorer, **extra))
    return drows


def bench_one(name: str, n_test: int, n_real: int, budget: int, defaults: bool, retrain: bool) -> dict:
    G, D, meta = fg.load_gan(name, retrain=retrain)
    s = fg.SPECS[name]
    kd, prior, d_out = s["latent_dim"], s["prior"], s["d_output"]
    scorer = Scorer(name, n_test)
    z = latentflow.sample_latents(n_test, kd, prior, generator=999)
    rows = []
    t = time.process_time()
    with torch.no_grad():
        x0 = G(z)
    rows.append(_row("generator alone", None, x0, n_test, time.process_time() - t, scorer))
    info = latentflow.methods()
    for m in DEFAULT_METHODS:
        opts = {k: v for k, v in (("d_output", d_out), ("prior", prior)) if k in info[m].options}
        t = time.process_time()
        try:
            res = latentflow.refine(G, D, z, method=m, seed=5, progress=False, **opts)
            rows.append(_row(f"{m} (defaults)", res, res.x, n_test, time.process_time() - t, scorer))
        except latentflow.LatentflowError as e:
            rows.append({"row": f"{m} (defaults)", "error": str(e)})
    real = fg.real_samples(name, n_real, split="train", seed=1)
    t = time.process_time()
    tr = latentflow.tune(
        G,
        D,
        real,
        latent_dim=kd,
        prior=prior,
        d_output=d_out,
        budget=budget,
        metric="fid" if scorer.image else "emd",
        seed=0,
    )
    tune_cpu = time.process_time() - t
    t = time.process_time()
    res = tr.refine(z, seed=5)
    rows.append(
        _row(
            f"tune -> {tr.summary['winner']}",
            res if tr.method != "none" else None,
            res.x,
            n_test,
            time.process_time() - t,
            scorer,
            tune_cpu_s=tune_cpu,
        )
    )
    tr.save(OUT / "recipes" / name)
    drows = ddls_defaults(name, n_test) if defaults else []
    return {
        "name": name,
        "n_real": n_real,
        "n_test": n_test,
        "budget": budget,
        "train_cpu_s": meta.get("train_cpu_s"),
        "d_output": d_out,
        "prior": prior,
        "rows": rows,
        "tune": tr.summary,
        "tune_cpu_s": tune_cpu,
        "calibration": tr.calibration,
        "ddls_defaults": drows,
    }


def _fmt(v, nd=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}g}"
    return str(v)


def tables(doc: dict) -> tuple[str, str]:
    out = [
        "# tune on GANs latentflow did not make for itself",
        "",
        "Test sample: fresh latents, real data unseen by tune (EMD: 2-D test draw; FID-FMNIST: 10k test images).",
        f"tune: ≤ {doc['n_real']} real samples, ≤ {doc['budget']} D evaluations per sample. CPU, 1 thread.",
        "",
    ]
    dfl = [
        "# DDLS defaults across the foreign GANs",
        "",
        "Same test latents per GAN; lower EMD / FID is better. eps_final: median adapted MALA step.",
        "",
    ]
    for g in doc["gans"]:
        key = "fid_fmnist" if g["name"].startswith("fmnist") else "emd"
        base = g["rows"][0].get(key)
        cols = ["row", key, "vs generator", "modes", "high_quality_pct", "d_evals_per_sample", "cpu_s"]
        if key == "fid_fmnist":
            cols = [c for c in cols if c not in ("modes", "high_quality_pct")]
        hdr = f"| {' | '.join(cols)} |\n|{'---|' * len(cols)}"
        tu = g["tune"]
        out += [
            f"## {g['name']} (d_output {g['d_output']}, prior {g['prior']}; trained in "
            f"{_fmt(g['train_cpu_s'], 3)} CPU s; tune {g['tune_cpu_s']:.0f} CPU s on {g['n_real']} real samples, budget "
            f"{g.get('budget', doc['budget'])}; "
            f"test n {g['n_test']})",
            "",
            f"tune validation: none {_fmt(tu['none'])}, winner {_fmt(tu['winner_metric'])} "
            f"({tu['improvement_pct']:.1f} %, pooled confirmation draws, n {(tu['confirm'] or {}).get('n', '–')}); {tu['verdict']}.",
            "",
            hdr,
        ]
        dfl += [f"## {g['name']}", "", hdr.replace("| row |", "| setting |")]
        for rows, dst in ((g["rows"], out), (g["ddls_defaults"], dfl)):
            for r in rows:
                v = r.get(key)
                rel = "-" if v is None or not base else f"{100 * (v / base - 1):+.1f} %"
                vals = {**r, "vs generator": rel}
                if "error" in r:
                    vals[key] = "error: " + r["error"][:60]
                dst.append("| " + " | ".join(_fmt(vals.get(c)) for c in cols) + " |")
            dst.append("")
    return "\n".join(out) + "\n", "\n".join(dfl) + "\n"


def _merge(doc: dict, mine: list, partial: bool) -> list:
    """This run's GANs, plus (for a partial run) the other GANs of results.json when its settings match."""
    old = OUT / doc["json"]
    others = []
    if partial and old.exists():
        prev = json.loads(old.read_text())
        if all(prev.get(k) == doc[k] for k in ("n_real", "budget", "n_test")):
            names = {g["name"] for g in mine}
            others = [g for g in prev["gans"] if g["name"] not in names]
    return sorted(others + mine, key=lambda g: list(fg.SPECS).index(g["name"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(fg.SPECS))
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--n-real", type=int, default=5000)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--no-defaults", action="store_true")
    ap.add_argument("--json", default="results.json", help="file under results/tune for this run's GANs")
    ap.add_argument("--defaults-only", action="store_true", help="only add the DDLS defaults rows to --json")
    ap.add_argument(
        "--tables", action="store_true", help="only rebuild results.md / defaults_measured.md from every results*.json"
    )
    args = ap.parse_args(argv)
    if args.defaults_only:  # add part 4's DDLS rows to GANs already in --json
        torch.set_num_threads(1)
        doc = json.loads((OUT / args.json).read_text())
        for g in doc["gans"]:
            if not args.only or g["name"] in args.only:
                g["ddls_defaults"] = ddls_defaults(g["name"], g.get("n_test", args.n_test))
                atomic_write_json(OUT / args.json, doc)
        return main(["--tables"])
    if args.tables:
        gans = {}
        for f in sorted(OUT.glob("results*.json")):
            d = json.loads(f.read_text())
            for g in d["gans"]:
                g.setdefault("n_real", d["n_real"])
                g.setdefault("n_test", d["n_test"])
                gans[g["name"]] = g
        doc = {
            "n_real": max(g["n_real"] for g in gans.values()),
            "budget": args.budget,
            "gans": sorted(gans.values(), key=lambda g: list(fg.SPECS).index(g["name"])),
        }
        md, dmd = tables(doc)
        atomic_write_text(OUT / "results.md", md)
        atomic_write_text(OUT / "defaults_measured.md", dmd)
        print(md)
        return 0
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("latentflow.samplers").setLevel(logging.ERROR)
    doc = {"n_real": args.n_real, "budget": args.budget, "n_test": args.n_test, "gans": []}
    mine, doc["json"] = [], args.json
    for name in args.only or list(fg.SPECS):
        logging.info("=== %s", name)
        mine.append(bench_one(name, args.n_test, args.n_real, args.budget, not args.no_defaults, args.retrain))
        doc["gans"] = _merge(doc, mine, bool(args.only))
        atomic_write_json(OUT / args.json, doc)
    return main(["--tables"])


if __name__ == "__main__":
    raise SystemExit(main())
