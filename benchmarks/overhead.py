"""Overhead of ``latentflow.refine`` (DDLS) against a minimal hand-written PyTorch Langevin loop on the
same G and D, as a ratio of per-step times measured in the same run (interleaved repeats). The primary
ratio uses each loop's fastest repeat (as ``timeit`` does: on a shared machine, slower repeats measure
the neighbours); the ratio of medians is reported beside it.

    python benchmarks/overhead.py                       # bundled grid25-wgangp model, CPU
    python benchmarks/overhead.py --arch random-mlp --chains 4096 --device cuda
"""

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import latentflow as lf
from latentflow.app.report import env_info, write_json


def plain_ddls(G, D, z, steps, eps, gen):
    """The loop a user would write by hand (seed 001 Algorithm 1)."""
    z = z.clone()
    for _ in range(steps):
        z.requires_grad_(True)
        E = 0.5 * (z**2).sum(1) - D(G(z)).reshape(-1)
        (g,) = torch.autograd.grad(E.sum(), z)
        noise = torch.randn(z.shape, generator=gen, device=gen.device).to(z.device)
        z = (z - 0.5 * eps * g + math.sqrt(eps) * noise).detach()
    with torch.no_grad():
        return G(z)  # the samples, as refine returns them


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="grid25-wgangp")
    p.add_argument("--chains", type=int, default=2048)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="results/overhead.json")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 gives steadier timings)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    pair = lf.load(a.model, device=dev)
    G, D = pair.G, pair.D
    z0 = lf.sample_latents(a.chains, pair.latent_dim, generator=0, device=dev)
    eps = 0.01

    def t_refine():
        sync(dev)
        t = time.perf_counter()
        lf.refine(
            G,
            D,
            z0,
            method="ddls",
            steps=a.steps,
            step_size=eps,
            d_output=pair.meta["d_output"],
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )
        sync(dev)
        return (time.perf_counter() - t) / a.steps

    def t_plain():
        sync(dev)
        t = time.perf_counter()
        plain_ddls(G, D, z0, a.steps, eps, torch.Generator().manual_seed(0))
        sync(dev)
        return (time.perf_counter() - t) / a.steps

    t_refine(), t_plain()  # warm-up
    tr, tp = [], []
    for i in range(a.repeats):  # interleaved, alternating order
        for f, acc in ((t_refine, tr), (t_plain, tp)) if i % 2 == 0 else ((t_plain, tp), (t_refine, tr)):
            acc.append(f())
    ratio = min(tr) / min(tp)
    ratio_median = statistics.median(tr) / statistics.median(tp)
    doc = {
        "schema": 1,
        "suite": "overhead",
        "env": env_info(dev),
        "model": a.model,
        "chains": a.chains,
        "steps": a.steps,
        "repeats": a.repeats,
        "refine_s_per_step": min(tr),
        "plain_s_per_step": min(tp),
        "ratio_refine_over_plain": ratio,
        "ratio_of_medians": ratio_median,
        "refine_all": tr,
        "plain_all": tp,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(a.out), doc)
    print("| loop | ms / step (best of repeats) | ms / step (median) |\n|---|---|---|")
    print(f"| plain PyTorch | {1e3 * min(tp):.2f} | {1e3 * statistics.median(tp):.2f} |")
    print(f"| latentflow.refine (ddls) | {1e3 * min(tr):.2f} | {1e3 * statistics.median(tr):.2f} |")
    print(
        f"\nratio refine / plain = {ratio:.3f} (best of {a.repeats}; ratio of medians {ratio_median:.3f}); "
        f"{a.chains} chains, {a.steps} steps, {dev.type}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
