"""How much can D's own ranking help a GAN's Inception FID? An upper bound for every method that reweights or
selects G's samples by D (DRS, MH-GAN, the calibrated rejection inside DDLS's stationary law), measured on the
RGB test GANs of ``benchmarks/train_rgb_gans.py``.

For each model: ``--num`` samples of G (uniform labels for a class-conditional one), D's logit on each (a
sigmoid D's output made a logit), Inception pool3 rows once; then FID against the last 1,000 test images of
200 samples chosen four ways: the first 200 (random), the 200 D rates highest, the 200 it rates lowest, and
(class-conditional) the best third of each class. If "top 200" is not clearly below "random 200", no amount of
selection by this D lowers FID, and only methods that move samples (DDLS, DOT, DGflow) can.

    OMP_NUM_THREADS=1 python benchmarks/rgb_d_oracle.py --models /work/rgb_models --out results/tune_rgb

Writes ``<out>/d_oracle.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import latentflow
from latentflow import rng
from latentflow._io import atomic_write_json

MODELS = ("rgb-hinge-proj", "rgb-ns-bn", "rgb-wgangp-unif", "rgb-hinge-strongd")


def main(argv=None) -> None:
    from latentflow.metrics import feature_dict, fidelity_from_features, to_uint8

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="/work/rgb_models")
    p.add_argument("--only", nargs="*", default=list(MODELS), choices=MODELS)
    p.add_argument("--num", type=int, default=600)
    p.add_argument("--out", default="results/tune_rgb")
    a = p.parse_args(argv)
    root = Path(a.models)
    with np.load(root / "data" / "test.npz") as f:
        x_real = torch.from_numpy(f["x"])[-1000:]
    real = {"features": feature_dict(to_uint8(x_real))["features"]}

    def fid(rows: torch.Tensor) -> float:
        return float(fidelity_from_features({"features": rows}, real)["fid"])

    out = []
    for name in a.only:
        pair = latentflow.load(str(root / name))
        z = rng.sample_latents(a.num, pair.latent_dim, pair.meta.get("prior", "normal"), generator=1)
        y = pair.labels(a.num, generator=1) if pair.num_classes > 0 else None
        cond = () if y is None else (y,)
        with torch.no_grad():
            G, D = pair.G.eval(), pair.D.eval()
            xs = G(z, *cond)
            d = D(xs, *cond).reshape(-1).double()
        if pair.meta.get("d_output") == "prob":
            d = torch.logit(d.clamp(1e-6, 1 - 1e-6))
        f = feature_dict(to_uint8(xs))["features"]
        order = torch.argsort(d, descending=True)
        row = {
            "model": name,
            "random_200": fid(f[:200]),
            "top_200": fid(f[order[:200]]),
            "bottom_200": fid(f[order[-200:]]),
            f"all_{a.num}": fid(f),
        }
        if y is not None:
            idx = []
            for c in range(pair.num_classes):
                ic = (y == c).nonzero().reshape(-1)
                idx.append(ic[torch.argsort(d[ic], descending=True)[: max(1, len(ic) // 3)]])
            row["top_third_per_class"] = fid(f[torch.cat(idx)])
        out.append(row)
        print(json.dumps(row), flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(a.out) / "d_oracle.json", {"num": a.num, "models": out})
    print("| model | random 200 | D's top 200 | D's bottom 200 | best third per class |")
    print("|---|---|---|---|---|")
    for r in out:
        t = r.get("top_third_per_class")
        print(
            f"| {r['model']} | {r['random_200']:.1f} | {r['top_200']:.1f} | {r['bottom_200']:.1f} | "
            f"{'–' if t is None else f'{t:.1f}'} |"
        )


if __name__ == "__main__":
    main()
