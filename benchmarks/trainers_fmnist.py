"""Discriminator Flow and Score GAN on Fashion-MNIST with small CPU configs: FID-FMNIST, grids, memorisation.

    python benchmarks/trainers_fmnist.py                          # CPU presets -> results/trainers_fmnist/
    python benchmarks/trainers_fmnist.py --quick --out /tmp/q     # smoke test (seconds)
    python benchmarks/trainers_fmnist.py --trainers scoregan --set scoregan.steps=2000 --set score_m=2000

Each trainer runs in ``--evals`` chunks that resume bit-exactly from the checkpoint (so the curve is that of
one uninterrupted run; evaluation time is not counted in the training times), with FID-FMNIST after each
chunk. At the end, on ``--n`` samples: FID-FMNIST, KID-FMNIST and the classifier score against the
Fashion-MNIST test split (the bundled classifier's features, through
``latentflow.app.bench.images.fmnist_row_metrics``; **not** Inception FID), an 8x8 sample grid, and
memorisation statistics: the L2 distance (pixels in [-1, 1], 784 of them) from each sample to its nearest
training image, beside the same distance for held-out test images. The same metrics are computed for
``n`` real training images (the floor at this ``n``) and for the bundled ``dcgan-fashion`` generator.

Score GAN's data score: the project has no pre-trained image denoiser, so the data score is the exact
score of the Gaussian-smoothed empirical distribution of ``score_m`` training images
(``mixture_score(images, 0.0)``, S0's "data score" replaced by a closed form). At small σ that score
points at the nearest of those images, so a generator trained with it is pulled towards copies of them:
the nearest-neighbour statistics against those ``score_m`` images make this visible.

These are FID-FMNIST values after minutes on a CPU; they are not comparable with seed 000's Table 3
(Inception FID on MNIST after 100k-200k GPU steps).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import latentflow
from latentflow._io import atomic_write_text
from latentflow.train import get_trainer, parse_overrides
from latentflow.train.dflow import PRESETS as DFLOW_PRESETS

# ---------------------------------------------------------------------------------------------------
# presets. "bench" holds the benchmark's own settings; the others are trainer config fields.
# Chosen from short runs (1,000-1,500 steps, FID-FMNIST on 1,000 samples, 2 shared CPU cores):
# * dflow: latentflow.train.dflow.PRESETS["fmnist-cpu"]: x_0 from a Gaussian fitted to the training images
#   (prior="gaussian"), IPM + zero-centred GP 0.33, η = 4, N = 32, the tconv_d critic (orthogonal init, smooth
#   Fourier time embedding ω ~ N(0, 1)), continuous time, lr 4e-4 with linear decay, 14,000 steps. How it was
#   chosen (and the earlier N(0, I) recipes, best 190): results/trainers_fmnist/experiments.md.
#   Earlier still (tconv28_d, grid times, N(0, I)): EMA of D (0.999) left the noise almost untouched (FID-FMNIST
#   467 after 1,000 steps); the NS loss left the particles in place (FID 470); GP 1 with η = 10 or GP 0.2
#   with η = 2 were no better (225-355).
# * scoregan: σ ∈ [1, 10] (S0's [0.32, 40] is for its EDM denoiser; with the exact empirical score a small
#   σ_min snaps samples to their nearest training image and the run collapsed onto tops: FID 256 at
#   σ_min 0.5, 281 at [0.32, 40], 140 at [1, 10] after 1,200 steps); σ_max 10 is ample for [-1, 1] images
#   (noise norm 10·28 = 280 against image distances below 56). lr_G 1e-3 / lr_φ 2e-3 (r = 2): with S0's
#   2e-4 the generator stayed dark after 1,200 steps (FID 390). The conv denoiser tconv28_den (ch 8)
#   cost twice the MLP's time per step and did worse (FID 244 vs 140 at 1,200 steps).
PRESETS = {
    "bench": dict(n=2000, evals=4, score_m=5000, euler_steps=[8, 12, 16, 24, 32], heun_steps=[5, 7, 9, 10, 13, 17]),
    "dflow": {k: v for k, v in DFLOW_PRESETS["fmnist-cpu"].items() if k != "data"},
    "scoregan": dict(
        arch_g="dcgan28_g",
        arch_g_kwargs={"latent_dim": 64, "ch": 32},
        latent_dim=64,
        arch_s="mlp_den",
        arch_s_kwargs={"in_dim": 784, "width": 512, "depth": 4},
        sigma_min=1.0,
        sigma_max=10.0,
        k=1,
        lr_s=2e-3,
        lr_g=1e-3,
        batch_size=128,
        steps=4500,
        ema=0.0,
    ),
}
QUICK = {
    "bench": dict(n=200, evals=1, score_m=256, euler_steps=[2, 4], heun_steps=[2, 3]),
    "dflow": dict(
        arch="tconv_d",
        arch_kwargs={"channels": 1, "ch": 8, "n_freq": 8},
        loss="ipm",
        prior="gaussian",
        eta=2.0,
        flow_steps=4,
        reuse=2,
        ema=0.9,
        time_sampling="uniform",
        batch_size=16,
        steps=20,
        lr=2e-4,
    ),
    "scoregan": dict(
        arch_g="dcgan28_g",
        arch_g_kwargs={"latent_dim": 16, "ch": 8},
        latent_dim=16,
        arch_s="mlp_den",
        arch_s_kwargs={"in_dim": 784, "width": 64, "depth": 3, "n_freq": 8},
        sigma_min=1.0,
        sigma_max=10.0,
        k=1,
        lr_s=2e-3,
        lr_g=1e-3,
        batch_size=16,
        steps=20,
        ema=0.9,
    ),
}
LABELS = {"dflow": "Discriminator Flow", "scoregan": "Score GAN"}
SHAPE = (1, 28, 28)


# ---------------------------------------------------------------------------------------------------
# data


def fmnist(split: str, root=None) -> torch.Tensor:
    """Fashion-MNIST ``split`` as float images in [-1, 1], ``[N, 1, 28, 28]`` (as the trainers see them)."""
    from latentflow.data import load_fashion_mnist

    return load_fashion_mnist(split, root)[0].float() / 127.5 - 1.0


def score_subset(train: torch.Tensor, m: int, seed: int) -> torch.Tensor:
    """The ``m`` training images (seeded random choice) whose smoothed empirical score is Score GAN's data score."""
    idx = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:m]
    return train[idx]


def image_data_score(images: torch.Tensor):
    """``score(x [B, 1, 28, 28], σ [B]) -> [B, 1, 28, 28]``: the exact score of the empirical distribution of
    ``images`` smoothed by ``N(0, σ² I)`` (``mixture_score`` on the flattened images, reshaped back).
    At small σ it points at the nearest of ``images``: a generator trained with it can memorise them."""
    from latentflow.train.score_gan import mixture_score

    s = mixture_score(images.flatten(1), 0.0)

    def score(x, sigma):
        return s(x.flatten(1), sigma).reshape(x.shape)

    return score


# ---------------------------------------------------------------------------------------------------
# sampling

_PRIORS: dict = {}


def dflow_x0(cfg, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` starting particles of a Discriminator Flow: ``N(0, I)``, or with ``prior="gaussian"`` the
    trainer's fitted Gaussian (refitted here by ``latentflow.train.dflow.fit_prior``: deterministic, the
    same net the trainer writes as ``P.safetensors``) applied to ``N(0, I)`` draws."""
    z = torch.randn((n,) + SHAPE, generator=g)
    if getattr(cfg, "prior", "normal") != "gaussian":
        return z
    key = (cfg.data, cfg.data_root, cfg.prior_eps)
    if key not in _PRIORS:
        from latentflow.train.data_source import DataSource
        from latentflow.train.dflow import fit_prior

        _PRIORS[key] = fit_prior(cfg, DataSource(cfg.data, cfg.data_root))
    with torch.no_grad():
        return _PRIORS[key](z.reshape(n, -1))


def sample(
    kind: str, cfg, model, n: int, seed: int, batch: int = 500, solver: str = "euler", steps: int | None = None
) -> tuple[torch.Tensor, float, int]:
    """``(samples [n, 1, 28, 28], wall seconds, NFE per sample)`` from a trained model; a Discriminator
    Flow integrates with ``solver`` on ``steps`` uniform steps (default: its training grid N)."""
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    if kind == "dflow":
        x0 = dflow_x0(cfg, n, g)
        steps = steps or cfg.flow_steps
        res = [
            latentflow.refine(
                None,
                model,
                x0[i : i + batch],
                method="dflow",
                eta=cfg.eta,
                steps=steps,
                loss=cfg.loss,
                solver=solver,
                progress=False,
            )
            for i in range(0, n, batch)
        ]
        x, nfe = torch.cat([r.x for r in res]), (2 * steps - 1 if solver == "heun" else steps)
    elif kind == "scoregan":
        G = model[0]
        with torch.no_grad():
            z = torch.randn(n, cfg.latent_dim, generator=g)
            x, nfe = torch.cat([G(z[i : i + batch]) for i in range(0, n, batch)]), 1
    else:
        raise ValueError(kind)
    return x.detach(), time.perf_counter() - t0, nfe


def dflow_trajectory(cfg, D, n: int = 8, points: int = 8, seed: int = 99) -> tuple[torch.Tensor, list]:
    """``x_{M/N}`` of ``n`` particles at ``points`` stopping steps M (seed 000's early stopping), rows = times."""
    x0 = dflow_x0(cfg, n, torch.Generator().manual_seed(seed))
    N = cfg.flow_steps
    stops = sorted({max(1, round(N * (k + 1) / points)) for k in range(points - 1)} | {N})
    rows = [x0] + [
        latentflow.refine(
            None, D, x0, method="dflow", eta=cfg.eta, steps=N, loss=cfg.loss, stop_step=s, progress=False
        ).x
        for s in stops
    ]
    return torch.cat(rows[:points]), [0] + stops[: points - 1]


def solver_sweep(cfg, D, n: int, seed: int, euler_steps, heun_steps, echo=print) -> list[dict]:
    """FID-FMNIST of the flow integrated by Euler and by Heun on several uniform grids, the same ``x_0``
    for every row: ``[{solver, steps, nfe, fid_fmnist, sample_wall_s}]`` (Heun: NFE = 2 steps - 1)."""
    rows = []
    for solver, steps_list in (("euler", euler_steps), ("heun", heun_steps)):
        for k in steps_list:
            x, wall, nfe = sample("dflow", cfg, D, n, seed, solver=solver, steps=int(k))
            fid = fid_metrics(x, seed, fid_only=True)["fid_fmnist"] if torch.isfinite(x).all() else float("nan")
            rows.append(
                {"solver": solver, "steps": int(k), "nfe": nfe, "fid_fmnist": fid, "sample_wall_s": round(wall, 1)}
            )
            echo(f"  dflow     {solver:5s} steps {k:3d}  NFE {nfe:3d}  FID-FMNIST {fid:.2f}")
    return rows


def solver_table(rows: list[dict], summary: dict, n: int) -> str:
    """Markdown: FID-FMNIST (n samples, the same x_0 for every row) against NFE for Euler and Heun."""
    lines = [
        f"FID-FMNIST (n = {n}) of the trained Discriminator Flow integrated on uniform grids; Heun's "
        "last step is Euler (NFE = 2 steps - 1).",
        "",
        "| solver | steps | NFE | FID-FMNIST | sampling wall s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['solver']} | {r['steps']} | {r['nfe']} | {r['fid_fmnist']:.2f} | {r['sample_wall_s']} |" for r in rows
    ]
    if summary:
        if summary.get("heun_nfe") is None:
            lines += [
                "",
                f"No Heun row reached Euler's FID-FMNIST {summary['euler_fid_fmnist']:.2f} "
                f"(NFE {summary['euler_nfe']}, the training grid).",
            ]
        else:
            lines += [
                "",
                f"Euler on the training grid (NFE {summary['euler_nfe']}): {summary['euler_fid_fmnist']:.2f}; "
                f"Heun reaches it at NFE {summary['heun_nfe']} ({summary['heun_fid_fmnist']:.2f}), "
                f"{summary['nfe_ratio']:.2f}x the NFE.",
            ]
    return "\n".join(lines) + "\n"


def heun_vs_euler(rows: list[dict], N: int) -> dict:
    """Heun's smallest NFE that reaches Euler's FID at the training grid ``N`` (``None`` if none does)."""
    ref = next((r for r in rows if r["solver"] == "euler" and r["steps"] == N), None)
    if ref is None:
        return {}
    ok = [r for r in rows if r["solver"] == "heun" and r["fid_fmnist"] <= ref["fid_fmnist"]]
    best = min(ok, key=lambda r: r["nfe"]) if ok else None
    return {
        "euler_steps": N,
        "euler_nfe": ref["nfe"],
        "euler_fid_fmnist": ref["fid_fmnist"],
        "heun_nfe": best["nfe"] if best else None,
        "heun_fid_fmnist": best["fid_fmnist"] if best else None,
        "nfe_ratio": round(best["nfe"] / ref["nfe"], 3) if best else None,
    }


# ---------------------------------------------------------------------------------------------------
# metrics


def fid_metrics(x: torch.Tensor, seed: int, fid_only: bool = False) -> dict:
    """FID-FMNIST (+ KID-FMNIST and classifier score) against the test split, as the image benchmark does."""
    from latentflow.app.bench.images import fmnist_row_metrics
    from latentflow.metrics import to_uint8

    return fmnist_row_metrics(to_uint8(x), rng_seed=seed, fid_only=fid_only)[0]


def nearest(x: torch.Tensor, ref: torch.Tensor, chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 distance from each row of ``x`` to its nearest row of ``ref`` (both flattened) and that row's index.

    The search runs in float32 (``|a|² + |b|² - 2 a·b``); the distance to the row found is then recomputed
    directly in float64."""
    a, b = x.flatten(1).float(), ref.flatten(1).float()
    bb = b.pow(2).sum(1)
    ids = []
    for i in range(0, a.shape[0], chunk):
        ai = a[i : i + chunk]
        ids.append((bb[None] - 2 * ai @ b.T).argmin(1))
    j = torch.cat(ids)
    d = (a.double() - b[j].double()).norm(dim=1)
    return d.float(), j


def _stats(d: torch.Tensor) -> dict:
    q = torch.quantile(d, torch.tensor([0.01, 0.05, 0.5]))
    return {
        "mean": round(float(d.mean()), 3),
        "median": round(float(q[2]), 3),
        "p5": round(float(q[1]), 3),
        "p1": round(float(q[0]), 3),
    }


def memorisation(x: torch.Tensor, sets: dict, test_ref: dict) -> dict:
    """Nearest-neighbour distances of ``x`` to each reference set, beside held-out test images' (``test_ref``,
    computed once); ``near_copy_pct``: % of samples closer to a set than 99 % of test images are."""
    out = {}
    for name, ref in sets.items():
        d, _ = nearest(x, ref)
        t = test_ref[name]
        thr = torch.quantile(t, 0.01)
        out[name] = {
            "samples": _stats(d),
            "test_images": _stats(t),
            "near_copy_pct": round(100.0 * float((d < thr).float().mean()), 2),
            "near_copy_threshold": round(float(thr), 3),
        }
    return out


# ---------------------------------------------------------------------------------------------------
# pictures


def save_grid(path: Path, x: torch.Tensor, nrow: int = 8, scale: int = 2) -> None:
    """An ``nrow``-column grid of images in [-1, 1] as a grey PNG (nearest-neighbour upscaled ``scale``x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latentflow.app.report import image_grid

    g = image_grid(x[: nrow * nrow] if x.shape[0] > nrow * nrow else x, nrow)[0]
    g = g.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(str(path), g.numpy(), cmap="gray", vmin=0.0, vmax=1.0)


def plot_curves(path: Path, doc: dict) -> None:
    """FID-FMNIST against training CPU seconds for each trainer, the references as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in doc["runs"]:
        pts = [(c["cpu_s"] / 60, c["fid_fmnist"]) for c in r["curve"] if "fid_fmnist" in c]
        ax.plot(*zip(*pts), "o-", label=r["label"])
    for r in doc["references"]:
        if "metrics" in r:
            ax.axhline(r["metrics"]["fid_fmnist"], ls="--", lw=1, color="grey" if r["key"] == "real_train" else "k")
            ax.text(0, r["metrics"]["fid_fmnist"], r["label"], fontsize=7, va="bottom")
    ax.set_xlabel("training CPU minutes (1 thread)")
    ax.set_ylabel("FID-FMNIST")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


def save_pairs(path: Path, x: torch.Tensor, nn_imgs: torch.Tensor, n: int = 32, scale: int = 2) -> None:
    """Samples (odd columns) beside their nearest training images (even columns), 8 pairs per row."""
    pairs = torch.stack([x[:n], nn_imgs[:n]], 1).reshape((-1,) + tuple(x.shape[1:]))
    save_grid(path, pairs, nrow=8, scale=scale)


# ---------------------------------------------------------------------------------------------------
# runs


def make_config(kind: str, quick: bool, overrides: dict, seed: int, data_root):
    Config, _ = get_trainer(kind)
    preset = dict((QUICK if quick else PRESETS)[kind])
    preset.update(overrides.get(kind, {}))
    return Config(data="fashion-mnist", data_root=data_root, seed=seed, **preset), preset


def train_in_chunks(kind: str, cfg, out: Path, evals: int, n: int, seed: int, data_score=None, echo=print):
    """Train ``cfg`` in ``evals`` chunks; FID-FMNIST on ``n`` samples after each. Returns (model, curve)."""
    _, train = get_trainer(kind)
    chunk = max(1, math.ceil(cfg.steps / evals))
    kw = {"data_score": data_score} if kind == "scoregan" else {}
    curve, wall, cpu, step, model = [], 0.0, 0.0, 0, None
    while step < cfg.steps:
        t0, c0 = time.perf_counter(), time.process_time()
        model = train(
            cfg, out, progress=False, stop_after=chunk, ckpt_every=10**9, log_every=max(1, min(100, chunk)), **kw
        )
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        step = min(step + chunk, cfg.steps)
        row = {"step": step, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        if step < cfg.steps:  # the last point is evaluated in full by the caller
            x, _, _ = sample(kind, cfg, model, n, seed + 1000 + step)
            row.update(fid_metrics(x, seed, fid_only=True))
            echo(f"  {kind:9s} step {step:6d}  wall {wall:7.1f}s  cpu {cpu:7.1f}s  FID-FMNIST {row['fid_fmnist']:.2f}")
        curve.append(row)
    return model, curve


def last_losses(out: Path) -> dict:
    p = out / "metrics.jsonl"
    if not p.exists():
        return {}
    lines = p.read_text().strip().splitlines()
    return {k: round(v, 4) for k, v in json.loads(lines[-1]).items() if k not in ("time",)} if lines else {}


def run_trainer(
    kind: str,
    quick: bool,
    overrides: dict,
    bench: dict,
    seed: int,
    work: Path,
    outdir: Path,
    train_imgs: torch.Tensor,
    test_nn: dict,
    data_root,
    echo=print,
) -> dict:
    cfg, preset = make_config(kind, quick, overrides, seed, data_root)
    n = bench["n"]
    data_score, sets = None, {"train": train_imgs}
    res = {"trainer": kind, "label": LABELS[kind], "preset": preset}
    if kind == "scoregan":
        subset = score_subset(train_imgs, bench["score_m"], seed)
        data_score = image_data_score(subset)
        sets["score_set"] = subset
        res["data_score"] = {
            "kind": "exact score of the N(0, σ² I)-smoothed empirical distribution of score_m training images "
            "(latentflow.train.score_gan.mixture_score(images, 0.0))",
            "score_m": bench["score_m"],
            "caveat": "no pre-trained image denoiser: at small σ this score points at the nearest of the score_m "
            "images, so the generator can memorise them; see memorisation.score_set",
        }
    rdir = work / f"{kind}-fmnist"
    model, curve = train_in_chunks(kind, cfg, rdir, bench["evals"], n, seed, data_score, echo)
    x, sample_s, nfe = sample(kind, cfg, model, n, seed + 7)
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"{kind}: non-finite samples")
    t_m = time.perf_counter()
    metrics = fid_metrics(x, seed)
    curve[-1].update({"fid_fmnist": metrics["fid_fmnist"]})
    mem = memorisation(x, sets, test_nn)
    _, nn_idx = nearest(x[:32], sets.get("score_set", train_imgs))
    metrics_s = time.perf_counter() - t_m
    grid = f"grid_{kind}.png"
    save_grid(outdir / grid, x[:64])
    files = {"grid": grid}
    pairs = f"nearest_{kind}.png"
    save_pairs(outdir / pairs, x[:32], sets.get("score_set", train_imgs)[nn_idx])
    files["nearest"] = pairs
    if kind == "dflow":
        traj, stops = dflow_trajectory(cfg, model)
        files["trajectory"] = f"trajectory_{kind}.png"
        save_grid(outdir / files["trajectory"], traj, nrow=8)
        res["trajectory_rows_stop_steps"] = stops
        res["solvers"] = solver_sweep(
            cfg, model, n, seed + 7, bench.get("euler_steps", []), bench.get("heun_steps", []), echo
        )
        res["heun_vs_euler"] = heun_vs_euler(res["solvers"], cfg.flow_steps)
        files["solvers"] = "dflow_solvers.md"
        atomic_write_text(outdir / files["solvers"], solver_table(res["solvers"], res["heun_vs_euler"], n))
    from latentflow.train._loop import config_dict

    final = curve[-1]
    res.update(
        {
            "config": config_dict(cfg),
            "steps": cfg.steps,
            "train_cpu_s": final["cpu_s"],
            "train_wall_s": final["wall_s"],
            "sample_wall_s": round(sample_s, 2),
            "nfe_per_sample": nfe,
            "n": n,
            "metrics": metrics,
            "memorisation": mem,
            "curve": curve,
            "last_losses": last_losses(rdir),
            "metrics_wall_s": round(metrics_s, 1),
            "files": files,
        }
    )
    echo(
        f"  {kind:9s} done: cpu {final['cpu_s']}s  FID-FMNIST {metrics['fid_fmnist']:.2f}  "
        f"NN-to-train median {mem['train']['samples']['median']} (test images {mem['train']['test_images']['median']})"
    )
    return res


def reference_rows(n: int, seed: int, train_imgs: torch.Tensor, sets_fn, test_nn: dict, outdir: Path) -> list:
    """The real-data floor (``n`` training images) and the bundled dcgan-fashion generator, same metrics."""
    from latentflow import rng
    from latentflow.app.fit import generate

    rows = []
    idx = torch.randperm(train_imgs.shape[0], generator=torch.Generator().manual_seed(seed + 11))[:n]
    real = train_imgs[idx]
    rows.append(
        {"label": f"real training images (n = {n})", "key": "real_train", "n": n, "metrics": fid_metrics(real, seed)}
    )
    # the Discriminator Flow's fitted starting distribution on its own (what the flow starts from)
    from latentflow.nets import build

    P = build("gaussian_prior", shape=list(SHAPE)).fit(train_imgs, DFLOW_PRESETS["fmnist-cpu"].get("prior_eps", 1e-3))
    with torch.no_grad():
        xg = P(torch.randn(n, P.dim, generator=torch.Generator().manual_seed(seed + 12))).clamp(-1, 1)
    rows.append(
        {
            "label": "Gaussian fit to the training images (the flow's x_0, no flow)",
            "key": "gaussian_fit",
            "n": n,
            "metrics": fid_metrics(xg, seed),
            "memorisation": memorisation(xg, sets_fn(), test_nn),
        }
    )
    save_grid(outdir / "grid_gaussian_fit.png", xg[:64])
    rows[-1]["files"] = {"grid": "grid_gaussian_fit.png"}
    try:
        pair = latentflow.load("dcgan-fashion")
        z = rng.sample_latents(n, pair.latent_dim, pair.meta.get("prior", "normal"), generator=1000 + seed)
        x = generate(pair.G, z)
        rows.append(
            {
                "label": "dcgan-fashion generator (bundled)",
                "key": "dcgan_fashion",
                "n": n,
                "metrics": fid_metrics(x, seed),
                "memorisation": memorisation(x, sets_fn(), test_nn),
                "note": "same latents as latentflow bench images (generator=1000+seed, rng_seed=seed)",
            }
        )
        save_grid(outdir / "grid_dcgan_fashion.png", x[:64])
        rows[-1]["files"] = {"grid": "grid_dcgan_fashion.png"}
    except Exception as e:  # noqa: BLE001  (a missing bundled model is a result, not a crash)
        rows.append(
            {"label": "dcgan-fashion generator (bundled)", "key": "dcgan_fashion", "error": f"{type(e).__name__}: {e}"}
        )
    return rows


def table(doc: dict) -> str:
    lines = [
        "| model | config | steps | train CPU s | train wall s | sampling s (n) | NFE | FID-FMNIST ↓ | "
        "KID-FMNIST ↓ | classifier score ↑ | NN dist. to train, median: samples / test images | near-copies % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        c, m, mem = r["config"], r["metrics"], r["memorisation"]["train"]
        if r["trainer"] == "dflow":
            desc = (
                f"{c['arch']} ch {c['arch_kwargs'].get('ch')}, {c['loss']}, η = {c['eta']:g}, N = {c['flow_steps']}, "
                f"reuse {c['reuse']}, EMA {c['ema']:g}, B {c['batch_size']}"
            )
        else:
            desc = (
                f"{c['arch_g']} ch {c['arch_g_kwargs'].get('ch')} / {c['arch_s']} w {c['arch_s_kwargs'].get('width')}, "
                f"σ ∈ [{c['sigma_min']:g}, {c['sigma_max']:g}], K = {c['k']}, lr φ/G {c['lr_s']:g}/{c['lr_g']:g}, "
                f"EMA {c['ema']:g}, B {c['batch_size']}, M = {r['data_score']['score_m']}"
            )
        near = f"{mem['near_copy_pct']:.1f}"
        if "score_set" in r["memorisation"]:
            ms = r["memorisation"]["score_set"]
            near += f" (to the M images: {ms['near_copy_pct']:.1f})"
        lines.append(
            f"| {r['label']} | {desc} | {r['steps']} | {r['train_cpu_s']:.0f} | {r['train_wall_s']:.0f} | "
            f"{r['sample_wall_s']:.1f} ({r['n']}) | {r['nfe_per_sample']} | {m['fid_fmnist']:.2f} | "
            f"{m['kid_fmnist']:.3f} | {m['classifier_score']:.2f} | "
            f"{mem['samples']['median']:.2f} / {mem['test_images']['median']:.2f} | {near} |"
        )
    for r in doc["references"]:
        if "error" in r:
            lines.append(f"| {r['label']} | – | – | – | – | – | – | error: {r['error']} | | | | |")
            continue
        m = r["metrics"]
        mem = r.get("memorisation", {}).get("train")
        nn_s = f"{mem['samples']['median']:.2f} / {mem['test_images']['median']:.2f}" if mem else "–"
        near = f"{mem['near_copy_pct']:.1f}" if mem else "–"
        lines.append(
            f"| {r['label']} | – | – | – | – | – | 1 | {m['fid_fmnist']:.2f} | {m['kid_fmnist']:.3f} | "
            f"{m['classifier_score']:.2f} | {nn_s} | {near} |"
        )
    return "\n".join(lines)


def main(argv=None, echo=None) -> dict:
    echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trainers", default="dflow,scoregan")
    ap.add_argument("--quick", action="store_true", help="smoke-test size (seconds)")
    ap.add_argument("--n", type=int, default=None, help="samples for FID-FMNIST and the statistics (default 2000)")
    ap.add_argument("--evals", type=int, default=None, help="FID-FMNIST points along training (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--data-root", default=None, help="folder with Fashion-MNIST's IDX files (default: found)")
    ap.add_argument("--workdir", default=None, help="where runs go (default: a temporary folder)")
    ap.add_argument(
        "--keep-runs",
        default=None,
        metavar="RESULTS.json",
        help="copy the runs of trainers not trained now from an earlier results.json (marked as such)",
    )
    ap.add_argument("--no-references", action="store_true", help="skip the real-data and dcgan-fashion rows")
    ap.add_argument("--out", default="results/trainers_fmnist", help="output folder (JSON, table, PNG grids)")
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="TRAINER.KEY=JSON",
        help="override a preset field, e.g. --set dflow.eta=4 or --set bench.score_m=2000",
    )
    a = ap.parse_args(argv)
    overrides = parse_overrides(a.sets)
    torch.set_num_threads(a.threads)
    bench = dict((QUICK if a.quick else PRESETS)["bench"])
    bench.update(overrides.pop("bench", {}))
    if a.n is not None:
        bench["n"] = a.n
    if a.evals is not None:
        bench["evals"] = a.evals
    outdir = Path(a.out)
    outdir.mkdir(parents=True, exist_ok=True)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="trainers-fmnist-"))
    t_start = time.perf_counter()
    train_imgs, test_imgs = fmnist("train", a.data_root), fmnist("test", a.data_root)
    n = bench["n"]
    test_sample = test_imgs[torch.randperm(test_imgs.shape[0], generator=torch.Generator().manual_seed(a.seed + 5))[:n]]
    kinds = [k for k in a.trainers.split(",") if k]
    sets = {"train": train_imgs}
    if "scoregan" in kinds:
        sets["score_set"] = score_subset(train_imgs, bench["score_m"], a.seed)
    test_nn = {name: nearest(test_sample, ref)[0] for name, ref in sets.items()}
    from latentflow.app.report import env_info

    doc = {
        "suite": "trainers_fmnist",
        "quick": a.quick,
        "env": env_info("cpu"),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "seed": a.seed,
        "bench": bench,
        "metrics_info": {
            "fid_fmnist": "FID in the bundled fmnist-classifier's feature space vs Fashion-MNIST test (10k); "
            "not Inception FID, not comparable with seed 000 Table 3",
            "kid_fmnist": "KID, same features",
            "classifier_score": "Inception-Score formula, classifier softmax",
            "memorisation": "L2 distance (pixels in [-1, 1], 784 dims) to the nearest image of a set: 'train' "
            "(all 60k), 'score_set' (Score GAN's M data-score images); 'test_images' is the same "
            "for n held-out test images; near_copy_pct: % of samples closer than the 1st "
            "percentile of the test images' distances",
        },
        "runs": [],
        "references": [],
    }
    for kind in kinds:
        echo(f"{kind}: training")
        doc["runs"].append(
            run_trainer(kind, a.quick, overrides, bench, a.seed, work, outdir, train_imgs, test_nn, a.data_root, echo)
        )
    if a.keep_runs:
        old = json.loads(Path(a.keep_runs).read_text())
        for r in old.get("runs", []):
            if r["trainer"] not in kinds:
                doc["runs"].append(
                    {**r, "kept_from": {"file": str(a.keep_runs), "git_commit": old.get("env", {}).get("git_commit")}}
                )
    if not a.no_references:
        doc["references"] = reference_rows(n, a.seed, train_imgs, lambda: {"train": train_imgs}, test_nn, outdir)
        save_grid(
            outdir / "grid_real_train.png",
            train_imgs[torch.randperm(train_imgs.shape[0], generator=torch.Generator().manual_seed(a.seed + 11))[:64]],
        )
    doc["loadavg_end"] = os.getloadavg()
    doc["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    plot_curves(outdir / "fid_vs_cpu.png", doc)
    md = table(doc)
    doc["table_md"] = md
    atomic_write_text(outdir / "results.json", json.dumps(doc, indent=1, default=str) + "\n")
    atomic_write_text(outdir / "results.md", md + "\n")
    print(md)
    echo(f"wrote {outdir}/results.json, results.md and the PNG grids")
    return doc


if __name__ == "__main__":
    main()
