"""Which noise levels should discriminator guidance (``dg_score``) act on by default? Measured on two cases.

    python benchmarks/guide_range.py                 # -> results/guide_range/results.{json,md}
    python benchmarks/guide_range.py --quick --out /tmp/q

1. The exact score of N(0, I) with a σ-blind ``d = -0.1 ||x||²`` (the case a new user met: guidance on every
   level of the default EDM grid, σ_max = 80, blew the samples up): sample std and diverged chains per range.
2. grid25: an EDM denoiser and a noise-conditioned discriminator trained with ``latentflow train denoiser`` /
   ``dgdisc`` (the score_guidance benchmark's grid25 preset, except that the discriminator keeps the trainer's
   default noise levels ``ln σ ~ N(-1.2, 1.2²)``: the D a user gets); EMD against the data at w = 1 and 2.

Every row samples the same starting noise with the same Heun grid (N = 10 on grid25, the default 18 on the
Gaussian); ranges are (0, hi), "all" is ``guide_range=None``. CPU, one thread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

import latentflow as lf
from latentflow._io import atomic_write_json, atomic_write_text
from latentflow.scores import edm_sigmas
from latentflow.train import get_trainer

RANGES = [None, 10.0, 3.0, 1.0, 0.3]


def _label(hi):
    return "all" if hi is None else f"σ <= {hi:g}"


def _sample(D, z, w, hi, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = lf.refine(
            None,
            D,
            z,
            method="dg_score",
            w=w,
            guide_range=None if hi is None else (0.0, hi),
            on_divergence="keep",
            progress=False,
            **kw,
        )
    return res.x, int(res.info["diverged"].sum())


def gaussian_case(n: int) -> list[dict]:
    def score(x, s):
        return -x / (1 + s.reshape(-1, *[1] * (x.dim() - 1)) ** 2)

    def d(x, s):
        return -0.1 * x.pow(2).flatten(1).sum(1)

    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    rows = []
    for hi in RANGES:
        x, div = _sample(d, z, 1.0, hi, score=score)
        ok = ~torch.isnan(x).any(1)
        rows.append({"range": _label(hi), "std": float(x[ok].std()), "diverged": div, "n": n})
    return rows


def _train(work: Path, quick: bool):
    Dn, train_den = get_trainer("denoiser")
    Dd, train_d = get_trainer("dgdisc")
    den_cfg = dict(
        arch="den_mlp",
        arch_kwargs={"in_dim": 2, "width": 128, "depth": 4, "x_freq": 32},
        sigma_data=1.0,
        batch_size=256,
        steps=40 if quick else 4000,
        lr=2e-3,
        ema=0.999,
    )
    d_cfg = dict(
        arch="dg_mlp",
        arch_kwargs={"in_dim": 2, "width": 128, "depth": 4, "x_freq": 32, "sigma_data": 1.0},
        n_fake=400 if quick else 10000,
        batch_size=256,
        steps=30 if quick else 3000,
        lr=1e-3,
    )  # p_mean / p_std: the trainer's defaults (-1.2, 1.2)
    den = train_den(Dn(data="grid25", seed=0, **den_cfg), str(work / "denoiser"), progress=False)
    D = train_d(
        Dd(data="grid25", seed=0, heun_steps=10, sigma_max=80.0, score=str(work / "denoiser"), **d_cfg),
        str(work / "dgdisc"),
        score_model=den,
        progress=False,
    )
    return den, D, {"denoiser": den_cfg, "dgdisc": d_cfg}


def grid25_rows(den, D, n: int) -> list[dict]:
    from latentflow.metrics import toy_metrics

    sig = [float(v) for v in edm_sigmas(10, 0.002, 80.0, 7.0)]
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(1000))
    rows = []
    x0, _ = _sample(None, z, 0.0, None, score=den, score_output="denoised", sigmas=sig)
    rows.append({"w": 0.0, "range": "-", "emd": toy_metrics(x0, "grid25", n_emd=2000)["emd"], "diverged": 0})
    for w in (1.0, 2.0):
        for hi in RANGES:
            x, div = _sample(D, z, w, hi, score=den, score_output="denoised", sigmas=sig)
            ok = torch.isfinite(x).all(1)
            emd = toy_metrics(x[ok], "grid25", n_emd=2000)["emd"] if int(ok.sum()) > 10 else float("nan")
            rows.append({"w": w, "range": _label(hi), "emd": emd, "diverged": div})
    return rows


def markdown(res: dict) -> str:
    out = [
        "# Default guidance range of dg_score",
        "",
        f"torch {res['torch']}, 1 thread, {res['cpu_seconds']:.0f} s CPU. Ranges are (0, hi); all = guide_range=None.",
        "",
        "## Exact N(0, I) score, σ-blind d = -0.1 ||x||², w = 1, default grid (N = 18, σ_max = 80)",
        "",
        "| range | sample std | diverged |",
        "|---|---|---|",
    ]
    out += [f"| {r['range']} | {r['std']:.4g} | {r['diverged']}/{r['n']} |" for r in res["gaussian"]]
    out += [
        "",
        f"## grid25: trained denoiser + dgdisc D (default training levels), Heun N = 10, n = {res['n_grid25']}",
        "",
        "| w | range | EMD | diverged |",
        "|---|---|---|---|",
    ]
    out += [f"| {r['w']:g} | {r['range']} | {r['emd']:.4g} | {r['diverged']} |" for r in res["grid25"]]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/guide_range")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.process_time()
    n = 200 if args.quick else 2000
    with tempfile.TemporaryDirectory(prefix="guide_range_") as tmp:
        den, D, cfgs = _train(Path(tmp), args.quick)
        grid = grid25_rows(den, D, n)
    res = {
        "benchmark": "guide_range",
        "quick": args.quick,
        "torch": torch.__version__,
        "gaussian": gaussian_case(256),
        "grid25": grid,
        "n_grid25": n,
        "configs": cfgs,
        "cpu_seconds": time.process_time() - t0,
    }
    out = Path(args.out)
    atomic_write_json(out / "results.json", res)
    md = markdown(res)
    atomic_write_text(out / "results.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
