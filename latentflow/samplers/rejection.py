"""Samplers that accept or reject generator samples on the density ratio ``exp(d(x))``.

* ``drs`` — Discriminator Rejection Sampling (Azadi et al. 2019): output row b accepts the first of
  its own proposals ``x ~ p_g`` with ``u < sigmoid(F(x))``, ``F = L - log(1 - exp(L - ε)) - γ``,
  ``L = min(d(x) - d_M, 0)``; ``d_M`` is the max of ``d`` over a pilot run, ``γ`` a percentile of ``F``
  on it. With ``γ = 0`` and small ε this is exact rejection sampling with acceptance ``exp(d - d_M)``
  (capped at 1 above the pilot's max).
* ``mh`` — MH-GAN (Turner et al. 2019): an independence Metropolis–Hastings chain per output over
  ``K`` proposals ``x' ~ p_g``, accepting with ``min(1, exp(d(x') - d(x)))`` (= ``(1/D(x)-1)/(1/D(x')-1)``).

Non-finite D values: a NaN is never accepted (the rows are counted in ``info["nonfinite_d"]``, and the run
warns as divergence does, with the share of the proposals: the region where D is NaN is missing from the
samples); a ``+inf`` logit is an infinite density ratio and always accepted; ``-inf`` never. Proposals are drawn
per row from the prior by the counter-based streams (row b, round/step r, slot 0; accept uniform slot
1; the pilot run has its own stream, slot 3), so results do not depend on chunking or on how rows are
split across calls.

Class-conditional models (labels ``y``): output row ``b`` keeps its label, and every proposal of row (chain)
``b`` is ``G(z', y[b])`` scored by ``D(x', y[b])``, so DRS samples ``p(x | y[b])`` and each MH chain targets
it. The DRS pilot run draws uniform labels from its own stream (the chains' labels cycled when the number of
classes is not known), so ``d_M`` is the maximum over the classes.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ..energy import to_logit, user_stacklevel
from ..errors import DivergenceWarning, OptionError
from ..options import ENGINE_FIELDS, SPEED_FIELDS, Options, field
from ..result import Evals
from ..rng import ChainStream
from ._checks import check_state, probe
from ._declare import Candidate, with_published
from ._driver import Kernel, loop_step, probe_cost
from ._registry import register

D_OUTPUT = Literal["logit", "prob", "critic"]
PRIOR = Literal["normal", "uniform"]
NO_SPEED = tuple(f for f in ENGINE_FIELDS if f not in SPEED_FIELDS)


log = logging.getLogger("latentflow")


class _GX(Kernel):
    """Shared by DRS and MH: chunked ``x = G(z)`` and ``d(x)`` without gradients."""

    engine_fields = NO_SPEED
    hint = "check that D returns finite values"
    calibration = "discriminator"  # the accept tests read the calibrated logit itself

    def warn_nan(self, n_nan: int, n_prop: int) -> None:
        """Say (as the driver says of diverged chains; ``on_divergence="keep"``: at INFO only) that D was NaN
        on ``n_nan`` of ``n_prop`` proposals: they were rejected, so the samples miss that region of G."""
        if n_nan == 0:
            return
        msg = (
            f"{self.name}: D returned NaN on {n_nan} of {n_prop} proposals ({100 * n_nan / max(n_prop, 1):.1f} %); "
            "they were rejected, so the samples miss the part of G's output where D is NaN (per chain: "
            'info["nonfinite_d"]). Check D on those inputs (its d_output, the range of x)'
        )
        if self.eo.on_divergence == "keep":
            log.info("%s", msg)
            return
        log.warning("%s", msg)
        warnings.warn(msg, DivergenceWarning, stacklevel=user_stacklevel())

    def gx(self, e, z: Tensor, *ys: Tensor):
        """``(G(z), d(G(z)))`` chunked; ``ys = (y,)``: the labels of these rows, ``G(z, y)``, ``D(x, y)``."""
        x = e.map(lambda t, *yy: e.G(self.G, t, *yy), z, *ys)
        return x, e.map(lambda t, *yy: to_logit(e.D(self.D, t, *yy), self.o.d_output), x, *ys)


@dataclass(frozen=True)
class DRSOptions(Options):
    d_output: D_OUTPUT = field("logit", 'what D returns ("logit", "prob", "critic")')
    prior: PRIOR = field("normal", "latent prior of the proposals")
    gamma_percentile: float | None = field(
        50.0,
        "set γ to this percentile of F over the pilot run (DRS's "
        "recipe: 95, which made a GAN with a poor D twice as bad "
        "(EMD +102 %, 50: +22 %; results/defaults); None uses gamma "
        "as given",
        ge=0,
        le=100,
    )
    gamma: float = field(0.0, "γ when gamma_percentile is None (0 = exact rejection sampling)")
    epsilon: float = field(1e-6, "ε in F, keeps the log finite at L = 0", gt=0)
    pilot: int = field(10000, "size of the pilot run that sets d_M (and γ)", ge=1)
    proposal_batch: int | None = field(
        None, "kept for compatibility; every pending row draws one proposal per round", ge=1
    )
    max_proposals: int | None = field(None, "give up (OptionError) after this many proposals (default 1000·B)", ge=1)


class DRSState(NamedTuple):
    x: Tensor | None
    z: Tensor
    done: Tensor
    n_prop: int
    nonfinite: Tensor


class DRS(_GX):
    """Discriminator rejection sampling: keep x ~ G with probability sigmoid(F(x)); returns exactly B samples."""

    Options = DRSOptions
    about = (
        "discriminator rejection sampling (γ percentile, `d_M` the max of a pilot run, each output row accepting "
        "the first of its own proposals); returns exactly the number asked; NaN D values are never accepted, "
        "`+inf` always"
    )
    paper = "Azadi et al. 2019"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """At least one proposal (G and D) per sample: the number depends on the acceptance rate; the pilot
        run evaluates G and D on ``pilot`` points."""
        once = probe_cost(n) + (cls.options_of(options)["pilot"] / n if n else 0.0)
        return Evals(1 + once, 0, 1 + once, 0)

    @classmethod
    def search_space(cls, ctx):
        """γ at the 95th (Azadi et al. 2019's recipe), 80th and 50th percentile of the pilot's F, with the
        raw and (when at hand) the calibrated D."""
        out = []
        for cal in (False, True) if ctx.calibrated else (False,):
            out += [Candidate(cls.name, dict(gamma_percentile=g, pilot=1000), cal) for g in (95.0, 80.0, 50.0)]
        azadi = Candidate(cls.name, dict(gamma_percentile=95.0, pilot=1000), ctx.calibrated, "Azadi et al. 2019")
        return with_published(out, [azadi])

    def n_steps(self):
        return None

    def done(self, s):
        return bool(s.done.all())

    def f_of(self, d, d_max):
        L = torch.clamp(d - d_max, max=0.0)
        return L - torch.log1p(-torch.exp(L - self.o.epsilon))

    def init(self, e, z):
        o = self.o
        B, k = z.shape
        probe(e, self.G, self.D, z, ys=e.ys)
        pilot = ChainStream(e.rng.key, torch.arange(o.pilot, device=z.device))
        zp = pilot.latents(0, 3, k, o.prior, z.dtype)
        _, dp = self.gx(e, zp, *e.aux_labels(pilot, o.pilot))
        dp = dp[torch.isfinite(dp)]
        if dp.numel() == 0:
            raise OptionError("drs: D returned no finite value on the pilot run; check D and d_output")
        self.d_max = dp.max()
        self.g = (
            torch.quantile(self.f_of(dp, self.d_max).float(), o.gamma_percentile / 100.0).to(z.dtype)
            if o.gamma_percentile is not None
            else torch.tensor(float(o.gamma), device=z.device, dtype=z.dtype)
        )
        self.z0, self.k = z, k
        self.max_proposals = 1000 * B if o.max_proposals is None else o.max_proposals
        done = torch.zeros(B, dtype=torch.bool, device=z.device)
        return DRSState(None, z.clone(), done, 0, torch.zeros(B, dtype=torch.long, device=z.device))

    def step(self, e, r, s):
        o = self.o
        rows = torch.nonzero(~s.done).flatten()
        if s.n_prop >= self.max_proposals:
            raise OptionError(
                f"drs accepted {int(s.done.sum())} of {s.done.numel()} samples after {s.n_prop} "
                "proposals (max_proposals); lower gamma_percentile or raise max_proposals"
            )
        stream = e.rng.subset(rows)
        zb = self.z0[rows] if r == 0 else stream.latents(r, 0, self.k, o.prior, self.z0.dtype)
        x, d = self.gx(e, zb, *(t[rows] for t in e.ys))
        nan = torch.isnan(d)
        p = torch.where(d == float("inf"), torch.ones_like(d), torch.sigmoid(self.f_of(d, self.d_max) - self.g))
        acc = ~nan & (stream.uniform(r, 1, (), self.z0.dtype) < p)
        take = rows[acc]
        xo = (
            s.x
            if s.x is not None
            else torch.zeros((s.done.numel(),) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
        )
        xo[take], s.z[take] = x[acc], zb[acc]
        s.done[take] = True
        s.nonfinite[rows] += nan.long()
        return DRSState(xo, s.z, s.done, s.n_prop + rows.numel(), s.nonfinite), loop_step(r, zb, d, acc)

    def finish(self, e, s):
        nf = s.nonfinite
        self.warn_nan(int(nf.sum()), s.n_prop)
        return (
            s.x,
            s.z,
            dict(
                accept_rate=s.done.numel() / max(s.n_prop, 1),
                n_proposals=s.n_prop,
                gamma=self.g,
                d_max=self.d_max,
                nonfinite_d=nf,
                n_nonfinite_d=int(nf.sum()),
            ),
        )


@dataclass(frozen=True)
class MHOptions(Options):
    k: int = field(100, "K, proposals per chain", ge=1)
    d_output: D_OUTPUT = field("logit", "what D returns; acceptance is min(1, exp(d(x') - d(x))) on the logit")
    prior: PRIOR = field("normal", "latent prior of the proposals")
    x_init: Tensor | None = field(
        None,
        "optional real samples [B, *X] to start the chains from (MH-GAN's "
        "recipe); a chain that never leaves its real start is run again from G(z[b])",
    )


class MHState(NamedTuple):
    x: Tensor
    d: Tensor
    z: Tensor
    moved: Tensor
    counts: Tensor
    nonfinite: Tensor


class MH(_GX):
    """MH-GAN: independence Metropolis-Hastings over K generator proposals per chain."""

    Options = MHOptions
    about = "MH-GAN: independence Metropolis–Hastings over K proposals per chain"
    paper = "Turner et al. 2019"
    budget_option = "k"

    @classmethod
    def cost(cls, options=None, *, n=None, generator=True):
        """The start and one proposal per step, each one G and one D forward (a real start: D only)."""
        o = cls.options_of(options)
        g = o["k"] + (1 if o["x_init"] is None else 0)
        return Evals(g + probe_cost(n), 0, o["k"] + 1 + probe_cost(n), 0)

    @classmethod
    def search_space(cls, ctx):
        """K = 10, 30 and the most the budget allows (the start and the boundary probe take two of it), with
        the raw and (when at hand) the calibrated D; Turner et al. 2019's chains (K = 640 with a calibrated D,
        cut to the budget) among them."""
        top = ctx.budget - 2
        ks = sorted({min(10, top), 30, top})
        out = []
        for cal in (False, True) if ctx.calibrated else (False,):
            out += [Candidate(cls.name, dict(k=k), cal) for k in ks if 1 <= k <= top]
        k = min(640, top)
        turner = [Candidate(cls.name, dict(k=k), ctx.calibrated, "Turner et al. 2019")] if k >= 1 else []
        return with_published(out, turner)

    def n_steps(self):
        return self.o.k

    def move(self, e, stream, i, s: MHState, ys: tuple = ()) -> tuple[MHState, Tensor]:
        """One independence-MH step of the chains of ``stream`` (step ``i``; ``ys``: their labels)."""
        zp = stream.latents(i, 0, s.z.shape[1], self.o.prior, s.z.dtype)
        xp, dp = self.gx(e, zp, *ys)
        log_u = torch.log(stream.uniform(i, 1, (), s.z.dtype))
        nan = torch.isnan(dp)
        acc = ~nan & ((log_u < dp - s.d) | torch.isnan(s.d) | (dp == float("inf")))
        x = torch.where(acc.reshape((-1,) + (1,) * (s.x.dim() - 1)), xp, s.x)
        new = MHState(
            x,
            torch.where(acc, dp, s.d),
            torch.where(acc.unsqueeze(1), zp, s.z),
            s.moved | acc,
            s.counts + acc.float(),
            s.nonfinite + nan.long(),
        )
        return new, acc

    def init(self, e, z):
        B = z.shape[0]
        shape = probe(e, self.G, self.D, z, ys=e.ys)
        x0 = self.o.x_init
        if x0 is not None:
            check_state(x0, "x_init", ndim=None)
            if tuple(x0.shape) != (B,) + tuple(shape):
                raise OptionError(f"x_init must have shape {(B,) + tuple(shape)}; got {tuple(x0.shape)}")
            x0 = x0.to(device=z.device, dtype=z.dtype)
            d0 = e.map(lambda t, *yy: to_logit(e.D(self.D, t, *yy), self.o.d_output), x0, *e.ys)
        else:
            x0, d0 = self.gx(e, z, *e.ys)
        zeros = torch.zeros(B, device=z.device)
        self.z0 = z
        return MHState(x0, d0, z.clone(), zeros.bool(), zeros, zeros.long())

    def step(self, e, i, s):
        s, acc = self.move(e, e.rng, i, s, e.ys)
        return s, loop_step(i, s.z, s.d, acc, s.z)

    def finish(self, e, s):
        k, n_rerun = self.o.k, 0
        if self.o.x_init is not None and not bool(s.moved.all()):
            idx = torch.nonzero(~s.moved).flatten()
            n_rerun = idx.numel()
            stream = e.rng.subset(idx)
            ys = tuple(t[idx] for t in e.ys)
            xr, dr = self.gx(e, self.z0[idx], *ys)
            zeros = torch.zeros(idx.numel(), device=xr.device)
            sub = MHState(xr, dr, self.z0[idx].clone(), zeros.bool(), zeros, zeros.long())
            for i in range(k, 2 * k):  # the rerun continues each chain's own stream
                sub, _ = self.move(e, stream, i, sub, ys)
            s.x[idx], s.d[idx], s.z[idx], s.counts[idx] = sub.x, sub.d, sub.z, sub.counts
            s.nonfinite[idx] += sub.nonfinite
        e.check_finite(k, s.x, torch.where(torch.isnan(s.d), s.d, torch.zeros_like(s.d)))
        self.warn_nan(int(s.nonfinite.sum()), (s.counts.numel() + n_rerun) * k)
        return (
            s.x,
            s.z,
            dict(accept_rate=s.counts / k, d=s.d, nonfinite_d=s.nonfinite, n_nonfinite_d=int(s.nonfinite.sum())),
        )


drs = register("drs", DRS)
mh = register("mh", MH)
