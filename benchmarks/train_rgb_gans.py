"""Small RGB test GANs, built unlike each other, to test ``latentflow.tune`` and ``bench images`` on.

**The data: "RGB Fashion-MNIST", 3x32x32 in [-1, 1].** Each Fashion-MNIST image (28x28 grey, padded by 2
pixels to 32x32) is the alpha mask ``a`` of a coloured foreground over a textured background:

* foreground: the class's own hue, ``hue = class / 10`` on the HSV wheel (saturation 0.9, value 1), times a
  per-image brightness ``b ~ U(0.75, 1)``;
* background: sine stripes of the complementary hue (``hue + 0.5``, saturation 0.6), value
  ``0.15 + 0.25 s`` with ``s = (1 + sin(2 pi (x cos t + y sin t) / period + phase)) / 2``; the orientation
  ``t = class * pi / 10`` and period ``4 + 2 (class mod 3)`` pixels belong to the class, the ``phase ~ U(0, 2 pi)``
  to the image;
* pixel = ``a * b * foreground + (1 - a) * background``, then ``2 * pixel - 1``.

The colouring is drawn with a fixed seed per split. The models train on the train split (60,000); the test
split (10,000) is written for evaluation as ``<out>/data/test.npz`` (``x``: float32 ``[N, 3, 32, 32]`` in
[-1, 1], ``y``: int64 labels) and ``<out>/data/test_uint8.npz`` (``arr_0``: uint8 ``[N, 32, 32, 3]``, the
layout the FID tools read) with ``<out>/data/test_labels.npy``.

**The models** (each a folder ``<out>/<name>/`` that ``latentflow.load`` reads: the ``export`` layout with
the right ``d_output``, prior and ``num_classes``; plus ``samples.png`` and ``train_info.json`` with the
training CPU seconds):

* ``rgb-hinge-proj``  class-conditional SN-GAN CNN (conditional BatchNorm in G, projection D with spectral
  norm), hinge loss, normal prior; ``d_output="logit"``, ``num_classes=10``.
* ``rgb-ns-bn``       DCGAN, non-saturating loss, BatchNorm in G and D, D ends in a sigmoid
  (``d_output="prob"``; trained on the logit), normal prior.
* ``rgb-wgangp-unif`` DCGAN G, critic without normalisation, WGAN-GP (lambda = 10, 5 critic steps),
  UNIFORM prior on [-1, 1]^64; ``d_output="critic"``.
* ``rgb-hinge-strongd`` a small DCGAN G (ch = 16, ~0.1 M parameters) against a wide, deep SN-GAN CNN D
  (~0.6 M parameters) with 2 D steps per G step, hinge loss, batch 32 (G's learning rate 4e-4 against D's
  2e-4: with ch = 8 and equal rates G learned almost nothing in 10 CPU-minutes); ``d_output="logit"``.
* ``ring8-wgangp-unif`` the DOT paper's 2-D setting: 8 Gaussians on a ring, WGAN-GP MLPs (G 2-256-256-256-2,
  D 2-512-512-512-1), UNIFORM prior, raw critic; trained with latentflow's own ``train_gan``.

Each image model trains until ``--cpu-minutes`` of process CPU time (default 10) or ``--steps``, whichever
comes first (the 2-D model: ``--toy-steps``); run single-threaded (``OMP_NUM_THREADS=1``) so the CPU time is that of one core.

    OMP_NUM_THREADS=1 python benchmarks/train_rgb_gans.py --out /work/rgb_models
    OMP_NUM_THREADS=1 python benchmarks/train_rgb_gans.py --only rgb-ns-bn --no-test-set  # a second process
    python benchmarks/train_rgb_gans.py --out /tmp/smoke --smoke      # seconds: tiny sizes
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentflow import rng
from latentflow._io import atomic_write_json
from latentflow.data import load_fashion_mnist
from latentflow.models import export, make_pair
from latentflow.nets import build
from latentflow.train.gan import d_loss, g_loss, gradient_penalty

LATENT = 64
SPECS = {
    "rgb-hinge-proj": dict(
        g=("sngan_cnn32_g", dict(latent_dim=LATENT, num_classes=10, widths=[128, 64, 32, 16])),
        d=("sngan_cnn32_d", dict(num_classes=10, widths=[16, 32, 64, 64])),
        loss="hinge",
        prior="normal",
        d_output="logit",
        n_d=1,
        lr=(2e-4, 2e-4),
        betas=(0.0, 0.9),
        batch=64,
        conditional=True,
    ),
    "rgb-ns-bn": dict(
        g=("dcgan32_g", dict(latent_dim=LATENT, ch=32)),
        d=("dcgan32_d", dict(ch=32, norm="bn")),
        d_export={"sigmoid": True},
        loss="ns",
        prior="normal",
        d_output="prob",
        n_d=1,
        lr=(2e-4, 2e-4),
        betas=(0.5, 0.999),
        batch=64,
    ),
    "rgb-wgangp-unif": dict(
        g=("dcgan32_g", dict(latent_dim=LATENT, ch=32)),
        d=("dcgan32_d", dict(ch=16, norm="none")),
        loss="wgan-gp",
        prior="uniform",
        d_output="critic",
        n_d=5,
        lr=(2e-4, 2e-4),
        betas=(0.5, 0.9),
        batch=64,
    ),
    "rgb-hinge-strongd": dict(
        g=("dcgan32_g", dict(latent_dim=LATENT, ch=16)),
        d=("sngan_cnn32_d", dict(widths=[32, 64, 128, 128])),
        loss="hinge",
        prior="normal",
        d_output="logit",
        n_d=2,
        lr=(4e-4, 2e-4),
        betas=(0.0, 0.9),
        batch=32,
    ),
}
TOY = "ring8-wgangp-unif"
NAMES = (*SPECS, TOY)


# -- the data --------------------------------------------------------------------------------------------
def hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB; ``h, s, v`` broadcastable tensors in [0, 1] (``h`` wraps); returns ``[..., 3]``."""
    h = torch.remainder(h, 1.0) * 6
    k = torch.stack([(5 + h) % 6, (3 + h) % 6, (1 + h) % 6], -1)
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def colourise(imgs, labels, seed: int):
    """uint8 ``[N, 1, 28, 28]`` grey images and labels -> float32 ``[N, 3, 32, 32]`` in [-1, 1] (module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    n = imgs.shape[0]
    a = F.pad(imgs.float() / 255, (2, 2, 2, 2))[:, 0]  # [N, 32, 32]
    c = labels.float()
    hue = c / 10
    fg = hsv_to_rgb(hue, torch.full_like(hue, 0.9), torch.ones_like(hue))  # [N, 3]
    bright = 0.75 + 0.25 * torch.rand(n, generator=gen)
    theta = c * math.pi / 10
    period = 4 + 2 * (labels % 3).float()
    phase = 2 * math.pi * torch.rand(n, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    arg = (xx * theta.cos()[:, None, None] + yy * theta.sin()[:, None, None]) / period[:, None, None]
    s = 0.5 + 0.5 * torch.sin(2 * math.pi * arg + phase[:, None, None])  # [N, 32, 32]
    bh = (hue + 0.5)[:, None, None].expand_as(s)
    bg = hsv_to_rgb(bh, torch.full_like(s, 0.6), 0.15 + 0.25 * s)  # [N, 32, 32, 3]
    fgx = (fg * bright[:, None])[:, None, None, :]
    x = a[..., None] * fgx + (1 - a[..., None]) * bg
    return (2 * x - 1).permute(0, 3, 1, 2).contiguous().clamp(-1, 1)


def rgb_fashion(split: str, limit: int | None = None):
    imgs, labels = load_fashion_mnist(split)
    if limit is not None:
        imgs, labels = imgs[:limit], labels[:limit]
    return colourise(imgs, labels, seed={"train": 1, "test": 2}[split]), labels


def write_test_set(out: Path, limit: int | None = None) -> Path:
    d = out / "data"
    d.mkdir(parents=True, exist_ok=True)
    x, y = rgb_fashion("test", limit)
    np.savez(d / "test.npz", x=x.numpy(), y=y.numpy())
    u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(d / "test_uint8.npz", u8)
    np.save(d / "test_labels.npy", y.numpy())
    return d


def save_grid(x, path: Path, nrow: int = 10) -> None:
    """Images in [-1, 1] as a PNG grid, ``nrow`` a row, 1-pixel gaps (PIL only: torchvision imports slowly)."""
    from PIL import Image

    x = ((x[: nrow * nrow].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    grid = torch.zeros(c, rows * (h + 1) + 1, nrow * (w + 1) + 1, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = x[i]
    arr = grid.permute(1, 2, 0).numpy()
    Image.fromarray(arr[..., 0] if c == 1 else arr).save(path)


# -- training --------------------------------------------------------------------------------------------
def train_image_gan(
    name: str, out: Path, x_train, y_train, *, cpu_minutes: float, steps: int, seed: int = 0, batch: int | None = None
) -> dict:
    s = SPECS[name]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    (ag, kg), (ad, kd) = s["g"], s["d"]
    G, D = build(ag, **kg), build(ad, **kd)
    opt_g = torch.optim.Adam(G.parameters(), lr=s["lr"][0], betas=s["betas"])
    opt_d = torch.optim.Adam(D.parameters(), lr=s["lr"][1], betas=s["betas"])
    B, cond, n = batch or s["batch"], s.get("conditional", False), x_train.shape[0]

    def fake_labels():
        return torch.randint(0, 10, (B,), generator=gen) if cond else None

    def call(net, x, y):
        return net(x, y) if cond else net(x)

    t0, step, log = time.process_time(), 0, []
    while step < steps and time.process_time() - t0 < cpu_minutes * 60:
        G.train()
        D.train()
        for _ in range(s["n_d"]):
            idx = torch.randint(0, n, (B,), generator=gen)
            xr, yr = x_train[idx], y_train[idx]
            yf = fake_labels()
            with torch.no_grad():
                xf = call(G, rng.sample_latents(B, LATENT, s["prior"], generator=gen), yf)
            ld = d_loss(s["loss"], call(D, xr, yr), call(D, xf, yf))
            if s["loss"] == "wgan-gp":
                ld = ld + 10.0 * gradient_penalty(D, xr, xf, gen)
            opt_d.zero_grad(set_to_none=True)
            ld.backward()
            opt_d.step()
        yf = fake_labels()
        lg = g_loss(s["loss"], call(D, call(G, rng.sample_latents(B, LATENT, s["prior"], generator=gen), yf), yf))
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        step += 1
        if step % 100 == 0:
            log.append({"step": step, "cpu_s": round(time.process_time() - t0, 1), "ld": ld.item(), "lg": lg.item()})
            print(name, json.dumps(log[-1]), flush=True)
        if not (math.isfinite(ld.item()) and math.isfinite(lg.item())):
            raise RuntimeError(f"{name}: non-finite loss at step {step}")
    cpu = time.process_time() - t0
    G.eval()
    D.eval()
    kd_out = {**kd, **s.get("d_export", {})}
    D_out = build(ad, **kd_out)
    D_out.load_state_dict(D.state_dict())
    D_out.eval()
    info = {"name": name, "steps": step, "train_cpu_s": round(cpu, 1), "spec": {k: v for k, v in s.items()}}
    pair = make_pair(
        G,
        D_out,
        arch_g={"name": ag, "kwargs": kg},
        arch_d={"name": ad, "kwargs": kd_out},
        name=name,
        latent_dim=LATENT,
        prior=s["prior"],
        d_output=s["d_output"],
        output_shape=[3, 32, 32],
        recipe=json.dumps({"trainer": "benchmarks/train_rgb_gans.py", "config": info}, default=str),
        dataset="rgb-fashion-mnist",
    )
    folder = out / name
    export(pair, folder)
    atomic_write_json(folder / "train_info.json", {**info, "log": log})
    with torch.no_grad():
        z = rng.sample_latents(100, LATENT, s["prior"], generator=123)
        y = torch.arange(100) % 10 if cond else None
        save_grid(call(G, z, y), folder / "samples.png")
    return info


def train_toy(out: Path, *, steps: int, seed: int = 0) -> dict:
    from latentflow.train.gan import GANConfig, train_gan

    cfg = GANConfig(
        data="ring8", prior="uniform", latent_dim=2, gp_weight=0.1, lr_g=2e-4, lr_d=2e-4, steps=steps, seed=seed
    )
    folder = out / TOY
    t0 = time.process_time()
    G, _ = train_gan(cfg, str(folder), progress=False, log_every=250, ckpt_every=max(steps // 4, 1))
    cpu = time.process_time() - t0
    info = {"name": TOY, "steps": steps, "train_cpu_s": round(cpu, 1), "config": "GANConfig(data=ring8, prior=uniform)"}
    atomic_write_json(folder / "train_info.json", info)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        x = G(rng.sample_latents(2000, 2, "uniform", generator=123))
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(x[:, 0], x[:, 1], s=2)
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    fig.savefig(folder / "samples.png", dpi=80)
    plt.close(fig)
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/work/rgb_models")
    p.add_argument("--only", nargs="*", choices=NAMES, default=None)
    p.add_argument("--cpu-minutes", type=float, default=10.0, help="CPU-time cap per image model")
    p.add_argument("--steps", type=int, default=100_000, help="step cap per image model")
    p.add_argument("--toy-steps", type=int, default=2500)
    p.add_argument("--no-test-set", action="store_true", help="do not (re)write <out>/data (a parallel run does)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes: 512 train images, 5 steps of batch 8, 64 test images"
    )
    a = p.parse_args(argv)
    out = Path(a.out)
    names = a.only or list(NAMES)
    limit = 512 if a.smoke else None
    steps, toy_steps = (5, 5) if a.smoke else (a.steps, a.toy_steps)
    smoke_batch = 8 if a.smoke else None
    if not a.no_test_set:
        write_test_set(out, 64 if a.smoke else None)
    x_train, y_train = rgb_fashion("train", limit)
    if not a.no_test_set:
        save_grid(x_train[:100], out / "data" / "train_samples.png")
    infos = []
    for name in names:
        if name == TOY:
            infos.append(train_toy(out, steps=toy_steps, seed=a.seed))
        else:
            infos.append(
                train_image_gan(
                    name, out, x_train, y_train, cpu_minutes=a.cpu_minutes, steps=steps, seed=a.seed, batch=smoke_batch
                )
            )
        print(json.dumps({k: infos[-1][k] for k in ("name", "steps", "train_cpu_s")}), flush=True)
    return infos


if __name__ == "__main__":
    torch.set_num_threads(1)  # CPU seconds of one core
    main()
