"""Seed 001 Tables 1 and 2 on the bundled 2-D models: generator alone, DRS, MH-GAN, DOT, DDLS (ULA, MALA)
at ≈100 discriminator evaluations per sample.

    python benchmarks/toy2d.py --num 5000 --seeds 3 --out results/toy2d.json
    python benchmarks/toy2d.py --quick            # CI size
"""

import argparse
import sys
from pathlib import Path

import torch

from latentflow.app.bench.toy2d import TOY2D, toy2d, toy2d_table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num", type=int, default=5000, help="samples per method and seed")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (error bars)")
    p.add_argument("--models", nargs="+", default=["grid25-wgangp", "swissroll-wgangp"])
    p.add_argument("--out", default="results/toy2d.json")
    p.add_argument("--quick", action="store_true", help="500 samples, 1 seed (CI)")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    num, seeds = (500, 1) if a.quick else (a.num, a.seeds)
    doc = toy2d(a.models, num=num, seeds=tuple(range(seeds)))
    TOY2D.write_outputs(doc, {}, Path(a.out))
    print(toy2d_table(doc))
    print(f"\nwrote {a.out} and {a.out[:-5]}.md")
    return 1 if any("error" in r for r in doc["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
