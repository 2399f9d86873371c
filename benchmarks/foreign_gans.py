"""Four GANs built unlike the bundled ones, trained with fixed seeds, to test ``latentflow.tune`` on.

The bundled models are WGAN-GP MLPs (grid25, swissroll) and a spectrally normalised DCGAN on Fashion-MNIST.
These differ in loss, D head, prior, normalisation and G/D balance:

* ``grid25-ns-bn``   25-Gaussian grid, non-saturating loss, BatchNorm in G and D, D ends in a sigmoid
                      (returns a probability: ``d_output="prob"``), normal prior, latent dim 2.
* ``ring8-wgp-unif`` 8-Gaussian ring, WGAN-GP critic (``d_output="critic"``), UNIFORM prior on [-1, 1]^4.
* ``swiss-hinge-strongd`` Swiss roll, hinge loss, a wide deep D (3 x 512) against a small G (2 x 64),
                      5 D steps per G step; ``d_output="logit"``.
* ``fmnist-mlp-ns``  Fashion-MNIST MLP GAN (no convolutions), non-saturating loss, D ends in a sigmoid
                      (``d_output="prob"``), latent dim 32; evaluated by FID-FMNIST.

Weights go to ``results/tune/models/<name>_{G,D}.safetensors`` with ``<name>.json`` (spec + training
CPU seconds); ``load_gan(name)`` rebuilds them, training first when they are missing (or ``--retrain``).

    OMP_NUM_THREADS=1 python benchmarks/foreign_gans.py [--only NAME ...] [--retrain]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentflow import sample_latents
from latentflow._io import atomic_save_safetensors, atomic_write_json
from latentflow.data import load_fashion_mnist, toy

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "results" / "tune" / "models"


class MLP(nn.Module):
    """Linear layers with an activation (and optional BatchNorm) between; optional output head."""

    def __init__(self, sizes, act=nn.ReLU, bn=False, head=None):
        super().__init__()
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                if bn:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(act())
        if head is not None:
            layers.append(head)
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))


class ImageG(nn.Module):
    def __init__(self, latent_dim=32):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = MLP([latent_dim, 256, 512, 784], act=lambda: nn.LeakyReLU(0.2), bn=True, head=nn.Tanh())

    def forward(self, z):
        return self.net(z).view(-1, 1, 28, 28)


SPECS = {
    "grid25-ns-bn": dict(
        data="grid25",
        loss="ns",
        prior="normal",
        latent_dim=2,
        d_output="prob",
        g=[2, 128, 128, 2],
        d=[2, 128, 128, 1],
        g_bn=True,
        d_bn=True,
        d_sigmoid=True,
        n_d=1,
        steps=3000,
        batch=256,
        lr=(2e-4, 2e-4),
        betas=(0.5, 0.999),
    ),
    "ring8-wgp-unif": dict(
        data="ring8",
        loss="wgan-gp",
        prior="uniform",
        latent_dim=4,
        d_output="critic",
        g=[4, 256, 256, 2],
        d=[2, 256, 256, 1],
        g_bn=False,
        d_bn=False,
        d_sigmoid=False,
        n_d=5,
        steps=6000,
        batch=256,
        lr=(2e-4, 2e-4),
        betas=(0.5, 0.9),
    ),
    "swiss-hinge-strongd": dict(
        data="swissroll",
        loss="hinge",
        prior="normal",
        latent_dim=2,
        d_output="logit",
        g=[2, 64, 64, 2],
        d=[2, 512, 512, 512, 1],
        g_bn=False,
        d_bn=False,
        d_sigmoid=False,
        n_d=5,
        steps=1500,
        batch=256,
        lr=(2e-4, 2e-4),
        betas=(0.5, 0.9),
    ),
    "fmnist-mlp-ns": dict(
        data="fashion-mnist",
        loss="ns",
        prior="normal",
        latent_dim=32,
        d_output="prob",
        d_sigmoid=True,
        n_d=1,
        steps=4000,
        batch=64,
        lr=(2e-4, 2e-4),
        betas=(0.5, 0.999),
    ),
}


def build(name: str):
    s = SPECS[name]
    head = nn.Sigmoid() if s["d_sigmoid"] else None
    if s["data"] == "fashion-mnist":
        G = ImageG(s["latent_dim"])
        D = MLP([784, 512, 256, 1], act=lambda: nn.LeakyReLU(0.2), head=head)
    else:
        G = MLP(s["g"], act=nn.ReLU, bn=s["g_bn"])
        D = MLP(s["d"], act=lambda: nn.LeakyReLU(0.2), bn=s["d_bn"], head=head)
    return G, D


def _logit(d_out, s):
    # a sigmoid D gives probabilities: clamp and take the logit for a stable BCE
    return torch.logit(d_out.clamp(1e-6, 1 - 1e-6)) if s["d_sigmoid"] else d_out


def train(name: str, seed: int = 0) -> dict:
    s = SPECS[name]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = build(name)
    opt_g = torch.optim.Adam(G.parameters(), lr=s["lr"][0], betas=s["betas"])
    opt_d = torch.optim.Adam(D.parameters(), lr=s["lr"][1], betas=s["betas"])
    if s["data"] == "fashion-mnist":
        imgs, _ = load_fashion_mnist("train")
        real_all = imgs.float() / 127.5 - 1

        def real_batch(n):
            return real_all[torch.randint(0, real_all.shape[0], (n,), generator=gen)]
    else:
        ds = toy(s["data"])

        def real_batch(n):
            return ds.sample(n, generator=gen)

    t0 = time.process_time()
    for step in range(s["steps"]):
        for _ in range(s["n_d"]):
            xr = real_batch(s["batch"])
            with torch.no_grad():
                xf = G(sample_latents(s["batch"], s["latent_dim"], s["prior"], generator=gen))
            dr, df = D(xr).squeeze(1), D(xf).squeeze(1)
            if s["loss"] == "ns":
                lr_, lf = _logit(dr, s), _logit(df, s)
                loss_d = F.softplus(-lr_).mean() + F.softplus(lf).mean()
            elif s["loss"] == "hinge":
                loss_d = F.relu(1 - dr).mean() + F.relu(1 + df).mean()
            else:
                eps = torch.rand(xr.shape[0], *([1] * (xr.dim() - 1)), generator=gen)
                xh = (eps * xr + (1 - eps) * xf).requires_grad_(True)
                g = torch.autograd.grad(D(xh).sum(), xh, create_graph=True)[0]
                gp = ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
                loss_d = df.mean() - dr.mean() + 10.0 * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        xf = G(sample_latents(s["batch"], s["latent_dim"], s["prior"], generator=gen))
        df = D(xf).squeeze(1)
        if s["loss"] == "ns":
            loss_g = F.softplus(-_logit(df, s)).mean()
        else:
            loss_g = -df.mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step % 500 == 0:
            print(f"{name} step {step} loss_d {loss_d.item():.4f} loss_g {loss_g.item():.4f}", flush=True)
    cpu_s = time.process_time() - t0
    G.eval()
    D.eval()
    MODELS.mkdir(parents=True, exist_ok=True)
    for role, m in (("G", G), ("D", D)):
        atomic_save_safetensors(
            {k: v.detach().contiguous() for k, v in m.state_dict().items()}, MODELS / f"{name}_{role}.safetensors"
        )
    meta = {"name": name, "seed": seed, "train_cpu_s": cpu_s, **{k: v for k, v in s.items()}}
    atomic_write_json(MODELS / f"{name}.json", meta)
    print(f"{name}: trained in {cpu_s:.1f} CPU s", flush=True)
    return meta


def load_gan(name: str, retrain: bool = False):
    """``(G, D, meta)`` of the named GAN in eval mode, trained first when its files are missing."""
    from safetensors.torch import load_file

    if retrain or not (MODELS / f"{name}_G.safetensors").exists():
        train(name)
    G, D = build(name)
    G.load_state_dict(load_file(str(MODELS / f"{name}_G.safetensors")))
    D.load_state_dict(load_file(str(MODELS / f"{name}_D.safetensors")))
    G.eval()
    D.eval()
    for p in list(G.parameters()) + list(D.parameters()):
        p.requires_grad_(False)
    meta = json.loads((MODELS / f"{name}.json").read_text())
    return G, D, meta


def real_samples(name: str, n: int, split: str = "train", seed: int = 1) -> torch.Tensor:
    """``n`` real samples of the GAN's data (images in [-1, 1]); ``split`` picks Fashion-MNIST's part."""
    s = SPECS[name]
    if s["data"] == "fashion-mnist":
        imgs, _ = load_fashion_mnist(split)
        idx = torch.randperm(imgs.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        return imgs[idx].float() / 127.5 - 1
    return toy(s["data"]).sample(n, generator=seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, choices=sorted(SPECS))
    ap.add_argument("--retrain", action="store_true", help="train even when the weights exist")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.only or list(SPECS):
        if args.retrain or not (MODELS / f"{name}_G.safetensors").exists():
            train(name)
        else:
            print(f"{name}: exists ({MODELS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
