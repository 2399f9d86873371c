"""Rows of the image suite: which methods (:data:`VARIANTS`, :func:`parse_method`), at which budget (each
method's own ``Kernel.fit_budget``), and how one row runs (:func:`run_row`, with the calibrated "(cal)" D of
Che et al. 2020, §5.2, fitted on held-out Fashion-MNIST train images)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TypedDict

import torch

from ...options import field_types, parse_pairs
from ...result import GD_EVAL_KEYS as EVAL_KEYS
from ...result import Evals
from ...rng import sample_latents
from ...samplers import NO_REFINEMENT, kernel, kernels

#: the method the suite follows (Che et al. 2020's DDLS): its best row's Inception FID, and the budget's
#: default (the model's recommended steps for it)
FOCUS = "ddls"


@dataclass(frozen=True)
class ImageVariant:
    """One row: a key (as given on the command line), a label, a method (``"none"`` = the generator
    alone), explicit options (over the model's recommended ones and the budget's), whether D is
    calibrated first (the "(cal)" rows), and whether the row records FID-FMNIST against steps (``curve``)."""

    key: str
    label: str
    method: str
    options: dict = field(default_factory=dict)
    calibrated: bool = False
    curve: bool = False


def _row(label: str, method: str, options=None, *, key=None, calibrated=False, curve=False) -> ImageVariant:
    """A row keyed by its method (``-cal`` for a calibrated D) unless ``key`` says otherwise."""
    key = key or method + ("-cal" if calibrated else "")
    return ImageVariant(key, label, method, dict(options or {}), calibrated, curve)


VARIANTS = {
    v.key: v
    for v in (
        _row("generator", NO_REFINEMENT, key="generator"),
        _row("DRS", "drs"),
        _row("MH-GAN", "mh"),
        _row("DOT", "dot", curve=True),
        # the model's recommended DDLS settings apply to every DDLS row; the ULA/MALA rows pin the one
        # option that tells them apart, so a manifest recommending MALA cannot turn the ULA row into MALA
        _row("DDLS (ULA)", "ddls", {"mala": False}, curve=True),
        _row("DDLS (MALA)", "ddls", {"mala": True}, key="ddls-mala", curve=True),
        _row("DRS (cal)", "drs", calibrated=True),
        _row("MH-GAN (cal)", "mh", calibrated=True),
        _row("DDLS (cal, MALA)", "ddls", {"mala": True}, calibrated=True, curve=True),
        # the peers: DGflow (Ansari et al. 2021) at the paper's η, γ; Ex2MCMC (Samsonov et al. 2022) with
        # N = 5 candidates and 4 MALA steps per iteration (9 D evaluations: its fit_budget counts them)
        _row("DGflow (KL)", "dgflow"),
        _row("Ex2MCMC", "ex2mcmc", {"n_particles": 5, "mala_steps": 4}),
        # the simplest fidelity-for-diversity trade (Brock et al. 2019): what every method must beat
        _row("truncation ψ=1", "truncation", {"psi": 1.0}),
        _row("truncation ψ=0.5", "truncation", {"psi": 0.5}, key="truncation-0.5"),
    )
}
DEFAULT_METHODS = tuple(VARIANTS)
#: other names of rows (-> a key or a label; the labels themselves, e.g. "mh-gan", work as they are)
ALIASES = {
    NO_REFINEMENT: "generator",
    "g": "generator",
    "ddls-ula": "DDLS (ULA)",
    "ula": "DDLS (ULA)",
    "mala": "DDLS (MALA)",
}


class RunSize(TypedDict):
    """The defaults of a run's size (``budget`` None: the model's recommended DDLS steps)."""

    num: int
    budget: int | None
    n_cal: int
    drs_pilot: int
    inception_num: int
    curve_points: int


QUICK = RunSize(num=200, budget=5, n_cal=256, drs_pilot=1000, inception_num=16, curve_points=3)
FULL = RunSize(num=2000, budget=None, n_cal=2000, drs_pilot=10000, inception_num=1000, curve_points=6)
DEFAULT_BUDGET = 50


def parse_method(spec: str) -> ImageVariant:
    """``"ddls"``, ``"ddls-cal"``, ``"DDLS (MALA)"`` or with options ``"ddls:step_size=0.05:steps=20"`` (read by
    the method's declared types, :func:`latentflow.options.parse_pairs`).

    Known keys are those of :data:`VARIANTS` (and their labels); any other registered sampler name works
    too, with a ``-cal`` suffix for a calibrated D. An unknown name still becomes a row (that fails),
    so that a typo shows up as an error row rather than stopping the run."""
    if isinstance(spec, ImageVariant):
        return spec
    head, *opts = str(spec).strip().split(":")
    name = head.strip()
    name = ALIASES.get(name.lower(), name).lower()
    by_label = {v.label.lower(): v for v in VARIANTS.values()}
    if name in VARIANTS:
        base = VARIANTS[name]
    elif name in by_label:
        base = by_label[name]
    else:
        cal = name.endswith("-cal")
        method = name[:-4] if cal else name
        plain = VARIANTS.get(method)
        curve = plain.curve if plain is not None else False
        base = ImageVariant(name, f"{method} (cal)" if cal else method, method, calibrated=cal, curve=curve)
    types = field_types(kernel(base.method).Options) if base.method in kernels() else None
    options = parse_pairs(opts, types, name=f"{base.method} option")
    if options:
        label = base.label + " [" + ", ".join(f"{k}={v}" for k, v in options.items()) + "]"
        return ImageVariant(str(spec), label, base.method, {**base.options, **options}, base.calibrated, base.curve)
    return base


def budget_options(method: str, budget: int, options: dict | None = None) -> dict:
    """The options that put ``method`` at ``budget`` D forward evaluations per sample: its kernel's
    ``fit_budget`` (``options``: the row's own, for methods whose cost per step depends on them)."""
    return kernel(method).fit_budget(int(budget), options or {})


def real_for_calibration(n: int, seed: int, value_range=(-1.0, 1.0)) -> torch.Tensor:
    """``n`` Fashion-MNIST *train* images (random, seeded) scaled to ``value_range``: held out from the
    test split the metrics use."""
    from ...data import load_fashion_mnist

    x = load_fashion_mnist("train")[0]
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    lo, hi = value_range
    return x[idx].float() / 255.0 * (hi - lo) + lo


def _calibrated_d(pair, n_cal: int, seed: int, device, real=None, real_y=None):
    """Platt-scaled D on ``n_cal`` held-out real images (``real``; default Fashion-MNIST train) against as
    many generated ones; a class-conditional D sees the real images' labels ``real_y`` and the generated
    ones' (uniform, from their own stream)."""
    from ...calibration import CalibratedD, calibrate
    from ...samplers import generate
    from ..fit import meta_get

    vr = tuple(meta_get(pair.meta, "output_range") or (-1.0, 1.0))
    real = (real_for_calibration(n_cal, seed, vr) if real is None else real[:n_cal]).to(device)
    n = real.shape[0]
    # latents (and labels) for the fake half come from their own stream, never the benchmark's
    gen = 777_000 + seed
    zc = sample_latents(n, pair.latent_dim, pair.meta.get("prior", "normal"), generator=gen, device=device)
    k, d_output = pair.num_classes, pair.meta.get("d_output") or "logit"
    if k > 0:
        from ...errors import OptionError

        if real_y is None:
            raise OptionError(
                "labels: the (cal) rows calibrate a class-conditional D on real images with their labels; "
                "give the real images' labels (--labels) or leave the (cal) rows out"
            )
        yc = pair.labels(n, generator=gen, device=device)
        fake = generate(pair.G, zc, y=yc)
        fit = calibrate(_InOrder(pair.D, [real_y[:n].to(device), yc]), real, fake, d_output=d_output, batch_size=n)
        cal = CalibratedD(pair.D, fit.fit_info["a"], fit.fit_info["b"], d_output)
        cal.fit_info = fit.fit_info
    else:
        fake = generate(pair.G, zc)
        cal = calibrate(pair.D, real, fake, d_output=d_output)
    cost = Evals(n_G_forward=n, n_D_forward=2 * n).as_dict()
    return cal, {k: cost[k] for k in EVAL_KEYS}


class _InOrder(torch.nn.Module):
    """``x -> D(x, y)`` with the labels of the sets :func:`latentflow.calibrate` scores, in the order it scores
    them (the real set, then the generated one, each in one call: ``batch_size`` = the set size)."""

    def __init__(self, D, ys):
        super().__init__()
        self.D, self.ys = D, list(ys)

    def forward(self, x):
        y = self.ys.pop(0)
        if y.shape[0] != x.shape[0]:
            raise RuntimeError(f"calibration scored {x.shape[0]} samples in one call; expected {y.shape[0]}")
        return self.D(x, y)


class _Snapshots:
    """Sampler callback keeping the chains' latents (``Step.z``) every ``every`` steps (and at the last)."""

    def __init__(self, every: int, last: int):
        self.every, self.last = max(1, int(every)), int(last)
        self.states: dict[int, torch.Tensor] = {}

    def __call__(self, step) -> None:
        n = step.i + 1
        if step.z is not None and (n % self.every == 0 or n == self.last):
            self.states[n] = step.z.detach().clone()


def run_row(
    pair,
    v: ImageVariant,
    z: torch.Tensor,
    *,
    seed: int,
    budget: int,
    n_cal: int,
    drs_pilot: int,
    curve_points: int = 0,
    progress: bool = False,
    cal_cache: dict | None = None,
    y=None,
    cal_real=None,
    cal_real_y=None,
):
    """Run one row; returns ``(x, row fields, snapshots {step: z})``. ``y``: the chains' labels (a
    class-conditional model); ``cal_real`` / ``cal_real_y``: the (cal) rows' real images and labels
    (default Fashion-MNIST train)."""
    from ...dist import world
    from ..fit import sampling_options
    from ..sample.sample_dist import gather_rows, refine_split

    k = kernel(v.method)
    user = {
        **k.fit_budget(int(budget), v.options),
        **({"pilot": drs_pilot} if "pilot" in k.defaults() else {}),  # the suite's size of a pilot run
        **v.options,
    }
    D, opts = pair.run_d(sampling_options(v.method, pair.meta, user))  # a block's calibration applies
    extra, fields = None, {}
    if v.calibrated:
        t0 = time.perf_counter()
        if cal_cache is not None and "D" in cal_cache:
            D, extra, fit = cal_cache["D"], cal_cache["cost"], cal_cache["fit"]
        else:
            D, extra = _calibrated_d(pair, n_cal, seed, z.device, cal_real, cal_real_y)
            fit = dict(D.fit_info)
            fit["wall_s"] = time.perf_counter() - t0
            if cal_cache is not None:
                cal_cache.update(D=D, cost=extra, fit=fit)
        opts["d_output"] = "logit"
        fields["calibration"] = fit
    snaps = None
    steps = opts.get("steps")
    if curve_points and v.curve and isinstance(steps, int) and steps > 0:
        snaps = _Snapshots(math.ceil(steps / curve_points), steps)
        opts["callback"] = snaps
    if y is not None:
        opts["y"] = y
    t1 = time.perf_counter()
    # under torch.distributed the rows are split over the ranks and gathered back (sample_dist)
    res = refine_split(pair.G, D, z, v.method, seed, progress=progress, **opts)
    if snaps is not None and world().distributed:
        snaps.states = {k: gather_rows(t) for k, t in snaps.states.items()}
    wall = time.perf_counter() - t1
    info = res.to_dict()
    evals = {k: int(info[k]) for k in EVAL_KEYS}
    if extra:
        fields["calibration_evals"] = extra
        evals = {k: evals[k] + extra[k] for k in EVAL_KEYS}
    fields.update(
        {
            "options": {k: val for k, val in opts.items() if k not in ("callback", "progress", "y")},
            "evals": evals,
            # a (cal) row's wall time includes the calibration it needs (shared between cal rows)
            "wall_s": wall + (fields["calibration"]["wall_s"] if v.calibrated else 0.0),
        }
    )
    if k.refines:  # the generator alone has no diagnostics to report
        fields.update(diagnostics(info, ("accept_rate", "accept_rate_mean", "n_diverged", "k_eff")))
    return res.x, fields, (snaps.states if snaps is not None else {})


def diagnostics(info: dict, keys: tuple) -> dict:
    """The scalar diagnostics ``keys`` of a run (``Result.to_dict()``) that it has."""
    return {k: info[k] for k in keys if k in info and not isinstance(info[k], (list, dict))}
