"""Discriminator Flow on Fashion-MNIST, the stand-alone training loop of the third round of
``results/trainers_fmnist/experiments.md`` (runs E16-E33; every number in ``results/trainers_fmnist/round3/evals.txt``).

    python benchmarks/dflow_fmnist_variants.py --name e4_lr4 --prior gfit --gp 0.33 --eta 4 --lr 4e-4 \
        --steps 2000 --evals 1000,2000

The algorithm is ``latentflow.train.dflow.train_dflow``'s with ``time_sampling="uniform"`` (``--mode all``,
the default), ``reuse=8``, ``ch=32`` and B = 64, written out so that the round's variants can be switched on:
the starting distribution (``--prior normal | gfit | scaled:<s>``; ``gfit`` became ``prior="gaussian"``),
training on the final particles only (``--mode final``), no time input (``--notime``), velocity clipping,
instance noise, Heun in the training simulation, an EMA of D. FID-FMNIST on ``--nfid`` samples (Euler on the
training grid, one fixed x_0 seed) after each step of ``--evals``. Writes NAME.pt (D's state dict and the
arguments) and NAME.json (the FID-FMNIST points) in the working folder.

    python benchmarks/dflow_fmnist_variants.py --sweep e4_lr4

samples a saved NAME.pt with Euler and Heun on uniform grids of several sizes (the same x_0 for every row) and
prints FID-FMNIST per solver, steps and NFE: the solver lines of ``evals.txt``.
"""

import argparse
import copy
import json
import time

import torch
import torch.nn.functional as F

import latentflow
from latentflow.app.bench.images_metrics import fmnist_row_metrics
from latentflow.data import load_fashion_mnist
from latentflow.metrics import to_uint8
from latentflow.nets import build


def sweep(name: str) -> None:
    """FID-FMNIST of the critic saved in NAME.pt, sampled from the fitted Gaussian start with Euler and Heun."""
    torch.set_num_threads(1)
    ck = torch.load(f"{name}.pt", weights_only=True)
    a = ck["args"]
    D = build("tconv_d", channels=1, size=28, ch=a["ch"], freq_scale=1.0)
    D.load_state_dict(ck["D"])
    D.eval()
    for p in D.parameters():
        p.requires_grad_(False)
    imgs = load_fashion_mnist("train")[0].float().div(127.5).sub(1)
    P = build("gaussian_prior", shape=[1, 28, 28]).fit(imgs)
    x0 = P(torch.randn(1000, 784, generator=torch.Generator().manual_seed(1234)))
    for solver, steps in [("euler", s) for s in (8, 12, 16, 24, 32)] + [("heun", s) for s in (5, 7, 9, 10, 13, 17)]:
        r = latentflow.refine(
            None, D, x0, method="dflow", eta=a["eta"], steps=steps, loss="ipm", solver=solver, progress=False
        )
        fid = fmnist_row_metrics(to_uint8(r.x.clamp(-1, 1)), fid_only=True)[0]["fid_fmnist"]
        nfe = 2 * steps - 1 if solver == "heun" else steps
        print(f"{name} {solver} steps {steps} NFE {nfe} FID {fid:.1f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", help="the run's name (its NAME.pt and NAME.json)")
    ap.add_argument("--sweep", metavar="NAME", help="sample a saved NAME.pt with Euler and Heun instead of training")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--evals", type=str, default="500,1000")
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--eta", type=float, default=2.0)
    ap.add_argument("--gp", type=float, default=0.04)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--b1", type=float, default=0.5)
    ap.add_argument("--B", type=int, default=64)
    ap.add_argument("--reuse", type=int, default=8)
    ap.add_argument("--ch", type=int, default=32)
    ap.add_argument("--prior", default="normal")  # normal | gfit | scaled:<s>
    ap.add_argument("--mode", default="all")  # all (S0 uniform t) | final (CD on x_1) | mix
    ap.add_argument("--notime", action="store_true")
    ap.add_argument("--loss", default="ipm")
    ap.add_argument("--vclip", type=float, default=0.0)
    ap.add_argument("--inoise", type=float, default=0.0)  # instance noise std on critic inputs
    ap.add_argument("--lrdecay", action="store_true")
    ap.add_argument("--nfid", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--heun", action="store_true")
    a = ap.parse_args(argv)
    if a.sweep:
        return sweep(a.sweep)
    if a.name is None:
        ap.error("--name is required (or --sweep NAME)")
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    imgs = load_fashion_mnist("train")[0].float().div(127.5).sub(1)
    D = build("tconv_d", channels=1, size=28, ch=a.ch, freq_scale=1.0)
    opt = torch.optim.Adam(D.parameters(), lr=a.lr, betas=(a.b1, 0.999))
    g = torch.Generator().manual_seed(a.seed + 1)
    N, B = a.N, a.B
    flat = imgs.flatten(1)
    mu = flat.mean(0)
    if a.prior == "gfit":
        C = torch.cov((flat - mu).T) + 1e-3 * torch.eye(784)
        L = torch.linalg.cholesky(C)

    def prior(n, gen):
        z = torch.randn(n, 784, generator=gen)
        if a.prior == "normal":
            x = z
        elif a.prior == "gfit":
            x = mu + z @ L.T
        elif a.prior.startswith("scaled:"):
            x = z * float(a.prior.split(":")[1])
        return x.reshape(n, 1, 28, 28)

    def tt(t, n):
        return torch.zeros(n) if a.notime else torch.full((n,), float(t))

    def vel(x, t):
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            f = D(xx, t if not a.notime else torch.zeros_like(t))
            c = f if a.loss == "ipm" else -F.softplus(f)  # ns: c = -log sigmoid(f)?? f high on real: c(f)=softplus(-f)
            if a.loss == "ns":
                c = F.softplus(-f)
            (gr,) = torch.autograd.grad(c.sum(), xx)
        v = -a.eta * gr
        if a.vclip > 0:
            nrm = v.flatten(1).norm(dim=1).clamp_min(1e-12)
            v = v * (a.vclip / nrm).clamp(max=1.0)[:, None, None, None]
        return v.detach()

    def simulate(x0, steps=None, keep=True):
        steps = steps or N
        traj = [x0]
        x = x0
        for i in range(steps - (1 if keep else 0)):
            t = torch.full((x.shape[0],), i / steps)
            k1 = vel(x, t)
            if a.heun and i < steps - 1:
                xt = x + (1 / steps) * k1
                k2 = vel(xt, torch.full((x.shape[0],), (i + 1) / steps))
                x = x + (0.5 / steps) * (k1 + k2)
            else:
                x = x + (1 / steps) * k1
            traj.append(x)
        return torch.stack(traj) if keep else x

    def frozen(fn, *args, **kw):
        D.eval()
        for p in D.parameters():
            p.requires_grad_(False)
        try:
            return fn(*args, **kw)
        finally:
            for p in D.parameters():
                p.requires_grad_(True)
            D.train()

    def dloss(fr, ff):
        if a.loss == "ipm":
            return fr.mean() - ff.mean()  # f high on fakes
        return F.softplus(-fr).mean() + F.softplus(ff).mean()  # ns: f high on real

    def gp(real, fake, t):
        al = torch.rand(real.shape[0], 1, 1, 1, generator=g)
        xh = (al * real + (1 - al) * fake).requires_grad_(True)
        (gr,) = torch.autograd.grad(D(xh, t).sum(), xh, create_graph=True)
        return gr.flatten(1).pow(2).sum(1).mean()

    Dema = copy.deepcopy(D) if a.ema > 0 else None
    evals = [int(s) for s in a.evals.split(",")]
    log = {"args": vars(a), "points": []}
    cpu = 0.0
    traj = None
    for k in range(a.steps):
        t0 = time.process_time()
        real = imgs[torch.randint(imgs.shape[0], (B,), generator=g)]
        if a.mode == "final":
            if k % a.reuse == 0:
                x1 = frozen(simulate, prior(B, g), keep=False)
            fake = x1
            tb = torch.ones(B) * (N - 1) / N
        else:
            if k % a.reuse == 0:
                traj = frozen(simulate, prior(B, g))
            ib = torch.randint(N, (B,), generator=g)
            fake = traj[ib, torch.arange(B)]
            u = torch.rand(B, generator=g)
            tb = ib.float() / N
            v = frozen(vel, fake, tb)
            fake = fake + (u / N)[:, None, None, None] * v
            tb = tb + u / N
        if a.notime:
            tb = torch.zeros(B)
        if a.inoise > 0:
            real = real + a.inoise * torch.randn(real.shape, generator=g)
            fake = fake + a.inoise * torch.randn(fake.shape, generator=g)
        fr, ff = D(real, tb), D(fake, tb)
        loss = dloss(fr, ff)
        if a.gp > 0:
            loss = loss + a.gp * gp(real, fake, tb)
        if a.lrdecay:
            for grp in opt.param_groups:
                grp["lr"] = a.lr * (1 - k / a.steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if Dema is not None:
            with torch.no_grad():
                for pe, p in zip(Dema.parameters(), D.parameters()):
                    pe.lerp_(p, 1 - a.ema)
        cpu += time.process_time() - t0
        if (k + 1) % 100 == 0:
            print(
                f"{a.name} step {k + 1} cpu {cpu:.0f} loss {loss.item():.3g} fr {fr.mean().item():.3g} ff {ff.mean().item():.3g}",
                flush=True,
            )
        if (k + 1) in evals:
            gs = torch.Generator().manual_seed(1234)
            xs = []
            for _j in range(0, a.nfid, 250):
                xs.append(frozen(simulate, prior(250, gs), keep=False).clamp(-1, 1))
            x = torch.cat(xs)
            fid = fmnist_row_metrics(to_uint8(x), fid_only=True)[0]["fid_fmnist"]
            if Dema is not None:
                Dlive = D
                D = Dema
                gs = torch.Generator().manual_seed(1234)
                xe = torch.cat(
                    [frozen(simulate, prior(250, gs), keep=False).clamp(-1, 1) for j in range(0, a.nfid, 250)]
                )
                D = Dlive
                fe = fmnist_row_metrics(to_uint8(xe), fid_only=True)[0]["fid_fmnist"]
                print(f"{a.name} EVAL-EMA step {k + 1} FID {fe:.1f}", flush=True)
            log["points"].append({"step": k + 1, "cpu_s": round(cpu, 1), "fid": round(fid, 1)})
            print(f"{a.name} EVAL step {k + 1} cpu {cpu:.0f} FID {fid:.1f}", flush=True)
            torch.save({"D": D.state_dict(), "args": vars(a)}, f"{a.name}.pt")
            json.dump(log, open(f"{a.name}.json", "w"), indent=1)


if __name__ == "__main__":
    main()
