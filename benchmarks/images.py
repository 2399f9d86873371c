"""Seed 001's image comparison on the bundled Fashion-MNIST DCGAN: generator alone, DRS, MH-GAN, DOT,
DDLS (ULA, MALA) and the calibrated DRS / MH-GAN / DDLS rows at an equal budget of D evaluations per
sample; FID-FMNIST, KID and classifier score (fmnist-classifier features, vs Fashion-MNIST test).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/images.py --num 2000 --out results/images
    python benchmarks/images.py --quick --out /tmp/images-quick        # CI size (< 1 min on 2 cores)
    python benchmarks/images.py --methods generator,ddls,ddls:step_size=0.05 --budget 20

Any other image model (RGB, class-conditional) with ``--real`` (and ``--labels``): Inception FID / KID / IS /
PRDC on every row against those images. Same as ``latentflow bench images``. Writes OUT/results.json, OUT/results.md, OUT/fid_vs_steps.png and
OUT/grid_*.png; exits 1 if any row failed (the other rows are still written).
"""

import argparse
import logging
import sys

import torch

from latentflow.app.bench.images import DEFAULT_METHODS, run_images_bench


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dcgan-fashion", help="model name, folder or hf: reference")
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated rows [default: {','.join(DEFAULT_METHODS)}]; options as ddls:steps=20",
    )
    p.add_argument("--num", type=int, default=None, help="samples per row [2000; quick 200]")
    p.add_argument(
        "--budget",
        type=int,
        default=None,
        help="D evaluations per sample [the model's recommended DDLS steps, else 50; quick 5]",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inception", action="store_true", help="also Inception FID (generator and best DDLS)")
    p.add_argument("--inception-num", type=int, default=None, help="samples for Inception FID [1000]")
    p.add_argument("--real", default=None, help="real images (any other image model: every row vs these)")
    p.add_argument("--real-num", type=int, default=None, help="use the first N real images")
    p.add_argument("--labels", default=None, help="the real images' class labels (class-conditional (cal) rows)")
    p.add_argument("--out", default="results/images")
    p.add_argument("--quick", action="store_true", help="CI size: 200 samples, budget 5")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.threads:
        torch.set_num_threads(a.threads)
    return run_images_bench(
        model=a.model,
        methods=a.methods.split(",") if a.methods else None,
        num=a.num,
        seed=a.seed,
        out=a.out,
        quick=a.quick,
        inception=a.inception,
        progress=not a.quiet,
        budget=a.budget,
        inception_num=a.inception_num,
        real=a.real,
        num_real=a.real_num,
        labels=a.labels,
    )


if __name__ == "__main__":
    sys.exit(main())
