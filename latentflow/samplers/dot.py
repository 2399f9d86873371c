"""DOT: Discriminator Optimal Transport (Tanaka 2019), in latent or target (data) space.

Each sample moves by gradient descent on ``H(y) = ||y - y0 + δ||₂ - d(y) / K_eff`` started at
``y = y0`` (``y`` is ``z`` in latent space with ``d(G(z))``, or ``x`` in target space with ``d(x)``);
``K_eff = max |d(a) - d(b)| / ||a - b||`` estimates D's Lipschitz constant over random pairs (those
whose D values are finite). Normal prior: the radial part of the latent gradient is removed (keeps
``||z||`` on its shell); uniform prior: ``z`` is clipped to [-1, 1]. Deterministic given ``K_eff``; the
pairs come from their own counter-based stream (pair j, slot 10/11), not from the chains'. A
class-conditional model moves each sample under its own label (``G(z, y[b])``, ``D(x, y[b])``); the two
ends of a K_eff pair share a label, uniform from the pairs' stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ..energy import to_logit
from ..errors import OptionError
from ..options import Options, field
from ..result import Evals
from ..rng import ChainStream
from ._checks import check_state, probe
from ._declare import Candidate, Needs, with_published
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register


def estimate_k_eff(pairs_a: Tensor, pairs_b: Tensor, d_a: Tensor, d_b: Tensor) -> Tensor:
    """``max |d(a) - d(b)| / ||a - b||`` over the given pairs (rows) whose D values are finite."""
    dist = (pairs_a - pairs_b).flatten(1).norm(dim=1).clamp_min(1e-12)
    ratio = (d_a - d_b).abs() / dist
    return torch.where(torch.isfinite(ratio), ratio, torch.zeros_like(ratio)).max()


@dataclass(frozen=True)
class DOTOptions(Options):
    steps: int = field(100, "N_update, gradient steps per sample", ge=0)
    lr: float = field(0.01, "step size of SGD (or Adam)", gt=0)
    space: Literal["latent", "target"] = field("latent", 'move z ("latent") or x = G(z) ("target")')
    d_output: Literal["logit", "prob", "critic"] = field("critic", "what D returns (a WGAN critic in DOT)")
    prior: Literal["normal", "uniform"] = field(
        "normal", 'latent prior; "normal" projects out the radial gradient, "uniform" clips to [-1, 1]'
    )
    k_eff: float | None = field(None, "K_eff; None estimates it on k_eff_pairs random pairs from the prior", gt=0)
    k_eff_pairs: int = field(100, "number of pairs for the K_eff estimate", ge=1)
    delta: float = field(0.001, "δ, keeps the norm differentiable at the start point")
    optimizer: Literal["sgd", "adam"] = field("sgd", "SGD, or Adam with β1 = 0, β2 = 0.9 as DOT's code")
    clip: float | None = field(None, "target space only: clip x to [-clip, clip] after each step", gt=0)


class State(NamedTuple):
    y: Tensor
    v: Tensor | None
    H: Tensor | None


class DOT(Kernel):
    """Discriminator optimal transport: descend H(y) = ||y - y0 + δ|| - d(y)/K_eff from each y0."""

    Options = DOTOptions
    needs = Needs(generator="optional", note="G=None with space='target': z holds the samples x")
    hint = "reduce lr"
    about = "latent- or target-space discriminator optimal transport with the `K_eff` estimate"
    paper = "Tanaka 2019"
    budget_option = "steps"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """A value-and-gradient of D per step (of G too in latent space), G once at the start (target
        space) or the end (latent space); the K_eff estimate evaluates G and D on 2 k_eff_pairs points."""
        o = cls.options_of(options)
        once = probe_cost(n) + (2 * o["k_eff_pairs"] / n if n and o["k_eff"] is None else 0.0)
        steps, latent = o["steps"], o["space"] == "latent"
        g_once = once if generator else 0.0
        return Evals((steps + 1 if latent else 1) * generator + g_once, steps if latent else 0, steps + once, steps)

    @classmethod
    def search_space(cls, ctx):
        """SGD in latent and target space over learning rate × steps; Tanaka 2019's settings (SGD at
        lr ≈ 0.05, and Adam with β = (0, 0.9), at most 100 updates) among them."""
        steps = ctx.steps
        out = [
            Candidate(cls.name, dict(steps=s, lr=ctx.step(lr), space=space))
            for space in ("latent", "target")
            for lr in (0.003, 0.01, 0.03, 0.1)
            for s in steps
        ]
        if not steps:
            return out
        s = steps[-1]
        return with_published(
            out,
            [
                Candidate(cls.name, dict(steps=s, lr=ctx.step(0.05), space="latent"), name="Tanaka 2019, SGD"),
                Candidate(
                    cls.name,
                    dict(steps=s, lr=ctx.step(0.01), space="latent", optimizer="adam"),
                    name="Tanaka 2019, Adam",
                ),
            ],
        )

    def validate(self, z):
        if self.G is None and self.o.space == "latent":
            raise OptionError('space="latent" needs a generator G; pass G or use space="target"')
        check_state(z, ndim=2 if self.G is not None else None)

    def draws(self):
        return self.o.k_eff is None

    def _dval(self, e, x, *ys):
        return to_logit(e.D(self.D, x, *ys), self.o.d_output)

    def _gmap(self, e, z, *ys):
        return e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *ys)

    def _dmap(self, e, x, *ys):
        return e.map(lambda t, *yy: self._dval(e, t, *yy), x, *ys)

    def _k_eff(self, e, z):
        o, dev, dt = self.o, z.device, z.dtype
        if o.k_eff is not None:
            return torch.tensor(float(o.k_eff), device=dev, dtype=dt)
        pairs = ChainStream(e.rng.key, torch.arange(o.k_eff_pairs, device=dev))
        if self.G is not None:
            za, zb = (pairs.latents(0, slot, z.shape[1], o.prior, dt) for slot in (10, 11))
            yp = e.aux_labels(pairs, o.k_eff_pairs)  # both ends of a pair share a label
            xa, xb = self._gmap(e, za, *yp), self._gmap(e, zb, *yp)
            da, db = (self._dmap(e, x, *yp) for x in (xa, xb))
            ka, kb = (za, zb) if o.space == "latent" else (xa, xb)
        else:
            B = z.shape[0]
            ia, ib = ((pairs.uniform(0, slot, (), torch.float64) * B).long().clamp_max(B - 1) for slot in (10, 11))
            ka, kb = z[ia], z[ib]
            keep = (ka - kb).flatten(1).norm(dim=1) > 0
            ka, kb = ka[keep], kb[keep]
            if ka.shape[0] == 0:
                raise OptionError(
                    f"dot without G estimates K_eff on pairs of distinct rows of z, and the "
                    f"{B} row(s) of z give none (one row, or all rows equal); pass k_eff="
                )
            ya, yb = (tuple(t[i][keep] for t in e.ys) for i in (ia, ib))
            da, db = self._dmap(e, ka, *ya), self._dmap(e, kb, *yb)
        return estimate_k_eff(ka, kb, da, db)

    def init(self, e, z):
        o = self.o
        probe(e, self.G, self.D, z, ys=e.ys)
        self.k_est = self._k_eff(e, z)
        inv_k = 1.0 / self.k_est.clamp_min(1e-12)
        latent = o.space == "latent"
        self.y0 = z.detach() if latent else (self._gmap(e, z, *e.ys) if self.G is not None else z).detach()
        self.z = z

        def objective(y, y0_rows, *labels):
            dist = (y - y0_rows + o.delta).flatten(1).norm(dim=1)
            return dist - self._dval(e, e.G(self.G, y, *labels) if latent else y, *labels) * inv_k, None

        self.objective = objective
        return State(self.y0.clone(), torch.zeros_like(self.y0) if o.optimizer == "adam" else None, None)

    def step(self, e, i, s):
        o = self.o
        H, g, _ = e.value_and_grad(self.objective, s.y, self.y0, *e.ys, uses_G=o.space == "latent")
        y, v = s.y, s.v
        if i == 0:  # H at the initial state: a non-finite value there is the model's
            e.check_finite(0, H)
        if o.space == "latent" and o.prior == "normal":
            g = g - y * (g * y).sum(1, keepdim=True) / (y * y).sum(1, keepdim=True).clamp_min(1e-12)
        if o.optimizer == "adam":
            v = 0.9 * v + 0.1 * g * g
            g = g / (torch.sqrt(v / (1 - 0.9 ** (i + 1))) + 1e-8)
        y_new = y - o.lr * g
        if o.space == "latent" and o.prior == "uniform":
            y_new = y_new.clamp(-1, 1)
        if o.space == "target" and o.clip is not None:
            y_new = y_new.clamp(-o.clip, o.clip)
        y = e.advance(i + 1, y_new, y, H)
        return State(y, v, H), loop_step(i, y, H, None, y if o.space == "latent" else None)

    def finish(self, e, s):
        info = dict(k_eff=self.k_est, objective=s.H if s.H is not None else torch.zeros(s.y.shape[0]))
        if self.o.space == "latent":
            return self._gmap(e, s.y, *e.ys), s.y, info
        return s.y, (self.z if self.G is not None else None), info


dot = register("dot", DOT)
