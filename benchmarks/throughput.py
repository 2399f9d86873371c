"""Throughput of DDLS (ULA): ``latentflow.refine`` against two hand-written loops, in the same run.

Loops compared on the same G, D, chains and step size (per-step time: median over interleaved repeats):

* ``plain``: the loop a user writes by hand (seed 001 Alg. 1): frozen G/D in eval mode, a detached
  leaf, one ``autograd.grad``, noise from a generator on the device;
* ``studiogan-style``: the structure of PyTorch-StudioGAN's ``langevin_sampling`` (written anew here):
  ``MultivariateNormal`` prior ``log_prob`` and noise ``sample``, the gradient through
  ``autograd.grad(..., create_graph=True, retain_graph=True)`` and G/D parameters left trainable;
* ``latentflow``: ``refine(method="ddls")`` eager, and with ``compile`` / ``autocast`` / ``cuda_graph``
  where asked for (and available). A ``refine`` call of n steps evaluates the energy gradient n + 1
  times (the start state too, which also gives the final ``x`` and energies) plus a 2-row shape probe;
  the hand loops do n. The per-step times below divide the whole call by n, so short runs
  (``--quick``) charge latentflow (n + 1) / n; use 40+ steps for the per-step ratio.

Models (random weights): ``sngan`` the SN-GAN CIFAR-10 ResNet (``sngan_resnet32_g``/``_d``; paper widths
unless ``--quick``), ``simplecnn`` xyfJASON's SN-GAN CIFAR-10 SimpleCNN (``xyfjason_simple_cnn_g``/``_d``,
``with_sn=True``), ``studiogan`` StudioGAN's CIFAR-10 SNGAN ResNet (``studiogan_resnet32_g``/``_d``, class
0), and ``mlp`` the bundled 2-D model ``grid25-wgangp`` (random ``mlp_g``/``mlp_d`` of the same shape if
it is not installed). ``--batches 1024,8192`` runs every image model at each number of chains. Reports chain-steps/s (= samples advanced one step per second),
G+D evaluations/s (one G and one D forward+backward per chain-step: 2 per chain-step), ratios against
``plain``, peak memory (CUDA ``max_memory_allocated``; CPU: peak RSS above the start, sampled every
2 ms), and the projected time for 50,000 samples x 1,000 steps.

Checks (optional): ``--check-compile`` (max |x| difference of compiled / graphed / bf16 samples against
eager on the same chains and seed), ``--auto-50k`` (one DDLS step on 50,000 chains with
``batch_size="auto"``: the chunk it chose, the time and whether it ran out of memory), and
``--time-budget S`` (configurations not started within S seconds are recorded as skipped).

    python benchmarks/throughput.py --quick                     # CI size, CPU, < 1 min
    python benchmarks/throughput.py --device cuda --compile --autocast bf16 --cuda-graph --estimate-50k
    benchmarks/gpu_check.sh                                     # the whole GPU check (results/gpu/)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

import latentflow as lf
from latentflow import nets
from latentflow.app.report import env_info, write_json

# -- the loops compared ----------------------------------------------------------------------------------


def plain_ddls(G, D, z, steps, eps, gen):
    """The obvious hand-written loop (seed 001 Algorithm 1), frozen models."""
    z = z.clone()
    for _ in range(steps):
        z.requires_grad_(True)
        E = 0.5 * (z**2).sum(1) - D(G(z)).reshape(-1)
        (g,) = torch.autograd.grad(E.sum(), z)
        noise = torch.randn(z.shape, generator=gen, device=z.device)
        z = (z - 0.5 * eps * g + math.sqrt(eps) * noise).detach()
    return z


def studiogan_style_ddls(G, D, z, steps, eps, gen):
    """A Langevin loop in the style of StudioGAN's ``langevin_sampling``: distribution objects for the
    prior and the noise, a second-order-capable gradient (``create_graph=True``) and trainable
    parameters, so autograd records graphs over every weight. Written for this benchmark."""
    from torch.distributions import MultivariateNormal

    k = z.shape[1]
    mean = torch.zeros(k, device=z.device)
    eye = torch.eye(k, device=z.device)
    prior = MultivariateNormal(loc=mean, covariance_matrix=eye)
    noise_dist = MultivariateNormal(loc=mean, covariance_matrix=eye * 1.0)
    zs = z.clone()
    for _ in range(steps):
        zs = zs.detach().requires_grad_(True)
        energy = -prior.log_prob(zs) - D(G(zs)).reshape(-1)
        (grad,) = torch.autograd.grad(
            outputs=energy,
            inputs=zs,
            grad_outputs=torch.ones_like(energy),
            create_graph=True,
            retain_graph=True,
            only_inputs=True,
        )
        zs = zs - 0.5 * eps * grad + eps**0.5 * noise_dist.sample([zs.shape[0]])
    return zs.detach()


# -- measurement -----------------------------------------------------------------------------------------


class PeakRSS:
    """Peak resident set size above the start, sampled every 2 ms in a thread (Linux /proc)."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self):
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self.page
        except OSError:
            return 0

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, self._rss())

    @property
    def bytes(self):
        return self.peak - self.base


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev):
    """Seconds of one call, and its CUDA allocator peak above the start (0 on the CPU, where the RSS
    sampler thread would slow the loops it watches: CPU memory is measured in a separate pass)."""
    sync(dev)
    if dev.type == "cuda":
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        dt = time.perf_counter() - t
        return dt, torch.cuda.max_memory_allocated(dev) - base
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, 0


class FixedClass(torch.nn.Module):
    """``m(x, y)`` of a class-conditional net with ``y`` fixed to one class: the ``G(z)`` / ``D(x)`` the
    loops call."""

    def __init__(self, m, label: int = 0):
        super().__init__()
        self.m, self.label = m, int(label)

    def forward(self, x):
        return self.m(x, torch.full((x.shape[0],), self.label, dtype=torch.long, device=x.device))


def build_models(name, dev, a):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if name == "simplecnn":
            dim = a.sngan_g_ch if a.quick else 256
            G = nets.build("xyfjason_simple_cnn_g", z_dim=128, dim=dim)
            D = nets.build("xyfjason_simple_cnn_d", dim=dim, with_sn=True)
            return (
                G.to(dev),
                D.to(dev),
                128,
                "critic",
                f"xyfjason_simple_cnn (SN-GAN CIFAR-10, dim={dim}), random weights",
            )
        if name == "studiogan":
            cd = max(a.sngan_d_ch // 2, 4) if a.quick else 64
            G = nets.build("studiogan_resnet32_g", z_dim=128, g_conv_dim=cd)
            D = nets.build("studiogan_resnet32_d", d_conv_dim=cd)
            G, D = FixedClass(G), FixedClass(D)
            return (
                G.to(dev),
                D.to(dev),
                128,
                "critic",
                f"studiogan_resnet32 (SNGAN CIFAR-10, conv_dim={cd}, class 0), random weights",
            )
        if name == "sngan":
            G = nets.build("sngan_resnet32_g", latent_dim=128, ch=a.sngan_g_ch)
            D = nets.build("sngan_resnet32_d", ch=a.sngan_d_ch)
            return (
                G.to(dev),
                D.to(dev),
                128,
                "critic",
                f"sngan_resnet32 (g ch={a.sngan_g_ch}, d ch={a.sngan_d_ch}), random weights",
            )
        try:
            pair = lf.load("grid25-wgangp", device=dev)
            return pair.G, pair.D, pair.latent_dim, pair.meta.get("d_output", "critic"), "grid25-wgangp"
        except Exception:
            G = nets.build("mlp_g", latent_dim=2, hidden=[512, 512, 512], out_dim=2)
            D = nets.build("mlp_d", in_dim=2, hidden=[512, 512, 512])
            return G.to(dev), D.to(dev), 2, "critic", "random mlp_g/mlp_d 3x512 (grid25-wgangp not installed)"


def bench_model(name, a, dev, chains=None):
    G, D, k, d_output, desc = build_models(name, dev, a)
    if chains is None:
        chains = a.sngan_chains if name != "mlp" else a.mlp_chains
    steps = a.sngan_steps if name != "mlp" else a.mlp_steps
    eps = 0.01
    z0 = lf.sample_latents(chains, k, generator=0, device=dev)
    gen_dev = dev if dev.type == "cuda" else torch.device("cpu")

    def frozen_eval():
        for m in (G, D):
            m.eval()
            m.requires_grad_(False)

    def lf_run(**opts):
        def run():
            frozen_eval()  # refine freezes and restores; keep the models as plain leaves it
            lf.refine(
                G,
                D,
                z0,
                method="ddls",
                steps=steps,
                step_size=eps,
                d_output=d_output,
                generator=torch.Generator(gen_dev).manual_seed(0),
                progress=False,
                **opts,
            )

        return run

    def plain_run():
        frozen_eval()
        plain_ddls(G, D, z0, steps, eps, torch.Generator(gen_dev).manual_seed(0))

    def studio_run():
        for m in (G, D):
            m.eval()
            m.requires_grad_(True)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(0)
            studiogan_style_ddls(G, D, z0, steps, eps, None)
        frozen_eval()

    variants = {"plain": plain_run, "studiogan-style": studio_run, "latentflow": lf_run()}
    if a.compile:
        variants["latentflow+compile"] = lf_run(compile=True)
    if a.autocast:
        variants[f"latentflow+{a.autocast}"] = lf_run(autocast=a.autocast)
    if a.cuda_graph and dev.type == "cuda":
        variants["latentflow+cuda_graph"] = lf_run(cuda_graph=True)
    if a.cuda_graph and a.compile and dev.type == "cuda":
        variants["latentflow+compile+cuda_graph"] = lf_run(compile=True, cuda_graph=True)

    times = {v: [] for v in variants}
    mem = {v: 0 for v in variants}
    compile_s = {}
    for v, f in variants.items():  # warm-up (and compile) once each
        t0 = time.perf_counter()
        f()
        if "compile" in v:
            compile_s[v] = time.perf_counter() - t0
    names = list(variants)
    for r in range(a.repeats):  # interleaved, order rotated every repeat
        for v in names[r % len(names) :] + names[: r % len(names)]:
            dt, m = timed(variants[v], dev)
            times[v].append(dt / steps)
            mem[v] = max(mem[v], m)
    if dev.type != "cuda":  # untimed pass for the peak RSS of each loop
        for v in names:
            with PeakRSS() as m:
                variants[v]()
            mem[v] = m.bytes
    base = statistics.median(times["plain"])
    rows = []
    for v in names:
        s = statistics.median(times[v])
        rows.append(
            {
                "loop": v,
                "s_per_step": s,
                "chain_steps_per_s": chains / s,
                "gd_evals_per_s": 2 * chains / s,
                "ratio_vs_plain": base / s,
                "peak_mem_bytes": mem[v],
                "all_s_per_step": times[v],
                "est_50k_x_1000_s": 50_000 * 1000 * s / chains,
            }
        )
    out = {"model": name, "desc": desc, "chains": chains, "steps": steps, "rows": rows, "compile_warmup_s": compile_s}
    checked = a.__dict__.setdefault("_checked", set())
    if a.check_compile and name not in checked:  # once per model (its first batch)
        checked.add(name)
        out["equal_to_eager"] = check_equal(G, D, k, d_output, a, dev)
    return out


def check_equal(G, D, k, d_output, a, dev, n=256, steps=5):
    """Max |x - x_eager| (and |z - z_eager|) of the speed paths on the same chains and seed; the
    compiled and graphed paths should agree to float round-off, bf16 to its precision."""
    z0 = lf.sample_latents(n, k, generator=1, device=dev)

    def run(**opts):
        return lf.refine(
            G, D, z0, method="ddls", steps=steps, step_size=0.01, d_output=d_output, seed=0, progress=False, **opts
        )

    ref = run()
    paths = {}
    if a.compile:
        paths["compile"] = dict(compile=True)
    if a.cuda_graph and dev.type == "cuda":
        paths["cuda_graph"] = dict(cuda_graph=True)
    if a.autocast:
        paths[a.autocast] = dict(autocast=a.autocast)
    out = {}
    for p, o in paths.items():
        try:
            r = run(**o)
            out[p] = {
                "max_abs_dx": float((r.x - ref.x).abs().max()),
                "max_abs_dz": float((r.z - ref.z).abs().max()),
                "x_scale": float(ref.x.abs().max()),
            }
        except Exception as e:  # noqa: BLE001  (recorded, the benchmark goes on)
            out[p] = {"error": f"{type(e).__name__}: {e}"}
    return out


def auto_50k(name, a, dev, n=50_000):
    """One DDLS step on ``n`` chains with ``batch_size="auto"``: the chunk chosen, the time, OOM or not."""
    G, D, k, d_output, desc = build_models(name, dev, a)
    try:
        z0 = lf.sample_latents(n, k, generator=2, device=dev)
        t = time.perf_counter()
        r = lf.refine(
            G,
            D,
            z0,
            method="ddls",
            steps=1,
            step_size=0.01,
            d_output=d_output,
            seed=0,
            batch_size="auto",
            progress=False,
        )
        sync(dev)
        return {
            "model": name,
            "desc": desc,
            "chains": n,
            "ok": True,
            "oom": False,
            "s": time.perf_counter() - t,
            "auto_batch_size": r.info.get("auto_batch_size"),
            "peak_mem_bytes": torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None,
        }
    except torch.cuda.OutOfMemoryError as e:
        return {"model": name, "chains": n, "ok": False, "oom": True, "error": str(e).splitlines()[0]}
    except Exception as e:  # noqa: BLE001
        return {"model": name, "chains": n, "ok": False, "oom": False, "error": f"{type(e).__name__}: {e}"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="CI size on the CPU (< 1 min)")
    p.add_argument("--models", default="mlp,sngan", help="comma list of mlp (2-D model), sngan, simplecnn, studiogan")
    p.add_argument("--batches", default=None, help="comma list of chain counts for the image models (e.g. 1024,8192)")
    p.add_argument("--check-compile", action="store_true", help="record compiled/graphed/bf16 vs eager differences")
    p.add_argument(
        "--auto-50k", action="store_true", help='one step on 50,000 chains with batch_size="auto" per image model'
    )
    p.add_argument("--auto-n", type=int, default=50_000, help="chains of the --auto-50k check")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; later configurations are skipped")
    p.add_argument("--mlp-chains", type=int, default=None)
    p.add_argument("--mlp-steps", type=int, default=None)
    p.add_argument("--sngan-chains", type=int, default=None)
    p.add_argument("--sngan-steps", type=int, default=None)
    p.add_argument("--sngan-g-ch", type=int, default=None, help="SN-GAN G width (paper: 256)")
    p.add_argument("--sngan-d-ch", type=int, default=None, help="SN-GAN D width (paper: 128)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="add refine(compile=True) (compiles first)")
    p.add_argument("--autocast", choices=["bf16", "fp16"], default=None)
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument(
        "--estimate-50k", action="store_true", help="print the projected time for 50,000 samples x 1,000 DDLS steps"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default="results/throughput.json")
    a = p.parse_args(argv)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = dev.type == "cuda"
    q = a.quick
    dflt = dict(
        mlp_chains=512 if q else (16384 if cuda else 4096),
        mlp_steps=10 if q else 40,
        sngan_chains=8 if q else (1024 if cuda else 64),
        sngan_steps=3 if q else 10,
        sngan_g_ch=16 if q else 256,
        sngan_d_ch=16 if q else 128,
        repeats=3 if q else 5,
    )
    for k, v in dflt.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    t_start = time.perf_counter()
    batches = [int(b) for b in a.batches.split(",")] if a.batches else [None]
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    images = [m for m in models if m != "mlp"]
    # the order keeps the most telling runs inside a time budget: the 2-D model, every image model at
    # the first batch, the 50k-chain auto check, then the larger batches
    tasks = [("bench", "mlp", None)] if "mlp" in models else []
    tasks += [("bench", m, batches[0]) for m in images]
    tasks += [("auto", m, a.auto_n) for m in images] if a.auto_50k else []
    tasks += [("bench", m, b) for b in batches[1:] for m in images]
    results, skipped, auto = [], [], []
    for kind, name, b in tasks:
        if a.time_budget is not None and time.perf_counter() - t_start >= a.time_budget:
            skipped.append({"model": name, "chains": b, "why": f"{kind}: time budget {a.time_budget:.0f} s"})
            continue
        if kind == "auto":
            auto.append(auto_50k(name, a, dev, b))
        else:
            try:
                results.append(bench_model(name, a, dev, b))
            except Exception as e:  # noqa: BLE001  (an OOM or a failing path: recorded, the rest goes on)
                skipped.append(
                    {
                        "model": name,
                        "chains": b,
                        "why": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                    }
                )
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    doc = {
        "schema": 1,
        "suite": "throughput",
        "env": env_info(dev),
        "quick": q,
        "torch_threads": torch.get_num_threads(),
        "results": results,
        "skipped": skipped,
        "auto_50k": auto,
        "total_s": time.perf_counter() - t_start,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(a.out), doc)

    mem_label = "peak mem (MiB, CUDA alloc)" if cuda else "peak RSS (MiB, above start)"
    for res in results:
        print(f"\n### DDLS on {res['desc']}: {res['chains']} chains, {res['steps']} steps, {dev.type}\n")
        print(f"| loop | ms / step | chain-steps / s | G+D evals / s | x plain | {mem_label} |")
        print("|---|---|---|---|---|---|")
        for r in res["rows"]:
            print(
                f"| {r['loop']} | {1e3 * r['s_per_step']:.2f} | {r['chain_steps_per_s']:.0f} | "
                f"{r['gd_evals_per_s']:.0f} | {r['ratio_vs_plain']:.3f} | {r['peak_mem_bytes'] / 2**20:.1f} |"
            )
        for v, s in res["compile_warmup_s"].items():
            print(f"\n{v}: first call (compile + {res['steps']} steps) took {s:.1f} s")
        if a.estimate_50k:
            best = max(res["rows"], key=lambda r: r["chain_steps_per_s"])
            lfr = next(r for r in res["rows"] if r["loop"] == "latentflow")
            print(
                f"\nestimate-50k ({res['model']}): 50,000 samples x 1,000 steps at the measured rate "
                f"(batch {res['chains']}): latentflow {lfr['est_50k_x_1000_s'] / 3600:.2f} h; "
                f"fastest ({best['loop']}) {best['est_50k_x_1000_s'] / 3600:.2f} h"
            )
    for r in auto:
        print(
            f"\nauto-{r['chains']} ({r['model']}): "
            + (f"ok in {r['s']:.1f} s, chunks {r['auto_batch_size']}" if r["ok"] else f"FAILED ({r['error']})")
        )
    for r in skipped:
        print(f"skipped {r['model']} chains={r['chains']}: {r['why']}")
    print(f"\nwrote {a.out} ({doc['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
