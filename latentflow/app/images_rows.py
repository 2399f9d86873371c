"""Rows of the image suite: which methods (:data:`VARIANTS`, :func:`parse_method`), at which budget
(:func:`budget_options`), and how one row runs (:func:`run_row`, with the calibrated "(cal)" D of
Che et al. 2020, §5.2, fitted on held-out Fashion-MNIST train images)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..errors import OptionError
from ..rng import sample_latents

EVAL_KEYS = ("n_G_forward", "n_G_backward", "n_D_forward", "n_D_backward")


@dataclass(frozen=True)
class ImageVariant:
    """One row: a key (as given on the command line), a label, a method (``"none"`` = the generator
    alone), explicit options (over the model's recommended ones and the budget's), and whether D is
    calibrated first (the "(cal)" rows)."""

    key: str
    label: str
    method: str
    options: dict = field(default_factory=dict)
    calibrated: bool = False


VARIANTS = {
    "generator": ImageVariant("generator", "generator", "none"),
    "drs": ImageVariant("drs", "DRS", "drs"),
    "mh": ImageVariant("mh", "MH-GAN", "mh"),
    "dot": ImageVariant("dot", "DOT", "dot"),
    # the model's recommended DDLS settings apply to every DDLS row; the ULA/MALA rows pin the one
    # option that tells them apart, so a manifest recommending MALA cannot turn the ULA row into MALA
    "ddls": ImageVariant("ddls", "DDLS (ULA)", "ddls", {"mala": False}),
    "ddls-mala": ImageVariant("ddls-mala", "DDLS (MALA)", "ddls", {"mala": True}),
    "drs-cal": ImageVariant("drs-cal", "DRS (cal)", "drs", calibrated=True),
    "mh-cal": ImageVariant("mh-cal", "MH-GAN (cal)", "mh", calibrated=True),
    "ddls-cal": ImageVariant("ddls-cal", "DDLS (cal, MALA)", "ddls", {"mala": True}, calibrated=True),
    # the peers: DGflow (Ansari et al. 2021) at the paper's η, γ; Ex2MCMC (Samsonov et al. 2022) with
    # N = 5 candidates and 4 MALA steps per iteration (9 D evaluations: budget_options counts them)
    "dgflow": ImageVariant("dgflow", "DGflow (KL)", "dgflow"),
    "ex2mcmc": ImageVariant("ex2mcmc", "Ex2MCMC", "ex2mcmc", {"n_particles": 5, "mala_steps": 4}),
    # the simplest fidelity-for-diversity trade (Brock et al. 2019): what every method must beat
    "truncation": ImageVariant("truncation", "truncation ψ=1", "truncation", {"psi": 1.0}),
    "truncation-0.5": ImageVariant("truncation-0.5", "truncation ψ=0.5", "truncation", {"psi": 0.5}),
}
DEFAULT_METHODS = tuple(VARIANTS)
ALIASES = {
    "none": "generator",
    "g": "generator",
    "mh-gan": "mh",
    "ddls-ula": "ddls",
    "ula": "ddls",
    "mala": "ddls-mala",
}

QUICK = dict(num=200, budget=5, n_cal=256, drs_pilot=1000, inception_num=16, curve_points=3)
FULL = dict(num=2000, budget=None, n_cal=2000, drs_pilot=10000, inception_num=1000, curve_points=6)
DEFAULT_BUDGET = 50


def _parse_value(s: str):
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def parse_method(spec: str) -> ImageVariant:
    """``"ddls"``, ``"ddls-cal"``, ``"DDLS (MALA)"`` or with options ``"ddls:step_size=0.05:steps=20"``.

    Known keys are those of :data:`VARIANTS` (and their labels); any other registered sampler name works
    too, with a ``-cal`` suffix for a calibrated D. An unknown name still becomes a row (that fails),
    so that a typo shows up as an error row rather than stopping the run."""
    if isinstance(spec, ImageVariant):
        return spec
    head, *opts = str(spec).strip().split(":")
    options = {}
    for o in opts:
        if "=" not in o:
            raise OptionError(f"method option {o!r} in {spec!r}: expected key=value")
        k, v = o.split("=", 1)
        options[k.strip()] = _parse_value(v.strip())
    name = head.strip()
    key = ALIASES.get(name.lower(), name.lower())
    by_label = {v.label.lower(): v for v in VARIANTS.values()}
    if key in VARIANTS:
        base = VARIANTS[key]
    elif name.lower() in by_label:
        base = by_label[name.lower()]
    else:
        cal = key.endswith("-cal")
        method = key[:-4] if cal else key
        base = ImageVariant(key, f"{method} (cal)" if cal else method, method, calibrated=cal)
    if options:
        label = base.label + " [" + ", ".join(f"{k}={v}" for k, v in options.items()) + "]"
        return ImageVariant(str(spec), label, base.method, {**base.options, **options}, base.calibrated)
    return base


def ex2mcmc_evals_per_step(options: dict | None = None) -> int:
    """D forward evaluations per chain in one Ex2MCMC iteration: ``N - 1`` candidates, and ``L + 1`` energy
    evaluations when there are ``L > 0`` MALA steps (defaults from the method's record)."""
    from ..samplers import methods

    defaults = methods()["ex2mcmc"].options
    o = {**defaults, **(options or {})}
    n, L = int(o["n_particles"]), int(o["mala_steps"])
    return n - 1 + (L + 1 if L else 0)


def budget_options(method: str, budget: int, options: dict | None = None) -> dict:
    """The options that put ``method`` at ``budget`` D forward evaluations per sample (``options``: the
    row's own, for methods whose cost per step depends on them; Ex2MCMC runs at least one iteration)."""
    if method in ("ddls", "dot", "dg_langevin", "dgflow"):
        return {"steps": int(budget)}
    if method == "mh":
        return {"k": int(budget)}
    if method == "ex2mcmc":
        return {"steps": max(1, int(budget) // ex2mcmc_evals_per_step(options))}
    return {}


def real_for_calibration(n: int, seed: int, value_range=(-1.0, 1.0)) -> torch.Tensor:
    """``n`` Fashion-MNIST *train* images (random, seeded) scaled to ``value_range``: held out from the
    test split the metrics use."""
    from ..data import load_fashion_mnist

    x = load_fashion_mnist("train")[0]
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    lo, hi = value_range
    return x[idx].float() / 255.0 * (hi - lo) + lo


def _calibrated_d(pair, n_cal: int, seed: int, device):
    from ..calibration import calibrate
    from .fit import generate, meta_get

    vr = tuple(meta_get(pair.meta, "output_range") or (-1.0, 1.0))
    real = real_for_calibration(n_cal, seed, vr).to(device)
    # latents for the fake half come from their own stream, never the benchmark's
    zc = sample_latents(
        n_cal, pair.latent_dim, pair.meta.get("prior", "normal"), generator=777_000 + seed, device=device
    )
    fake = generate(pair.G, zc)
    cal = calibrate(pair.D, real, fake, d_output=pair.meta.get("d_output") or "logit")
    cost = {"n_G_forward": n_cal, "n_G_backward": 0, "n_D_forward": 2 * n_cal, "n_D_backward": 0}
    return cal, cost


class _Snapshots:
    """Sampler callback keeping the latents every ``every`` steps (and at the last step)."""

    def __init__(self, every: int, last: int, k: int, prior: str):
        self.every, self.last, self.k, self.prior = max(1, int(every)), int(last), k, prior
        self.states: dict[int, torch.Tensor] = {}

    def __call__(self, step) -> None:
        from ..energy import latent_from_u

        n = step.i + 1
        if n % self.every == 0 or n == self.last:
            self.states[n] = latent_from_u(step.state[:, : self.k], self.prior).detach().clone()


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
):
    """Run one row; returns ``(x, row fields, snapshots {step: z})``."""
    from ..dist import world
    from .fit import generate, method_options
    from .sample_dist import gather_rows, refine_split

    num = z.shape[0]
    if v.method == "none":
        t0 = time.perf_counter()
        x = generate(pair.G, z)
        return (
            x,
            {
                "options": {},
                "evals": {"n_G_forward": num, "n_G_backward": 0, "n_D_forward": 0, "n_D_backward": 0},
                "wall_s": time.perf_counter() - t0,
            },
            {},
        )
    user = {
        **budget_options(v.method, budget, v.options),
        **({"pilot": drs_pilot} if v.method == "drs" else {}),
        **v.options,
    }
    opts = method_options(v.method, pair.meta, user)
    D, extra, fields = pair.D, None, {}
    if v.calibrated:
        t0 = time.perf_counter()
        if cal_cache is not None and "D" in cal_cache:
            D, extra, fit = cal_cache["D"], cal_cache["cost"], cal_cache["fit"]
        else:
            D, extra = _calibrated_d(pair, n_cal, seed, z.device)
            fit = dict(D.fit_info)
            fit["wall_s"] = time.perf_counter() - t0
            if cal_cache is not None:
                cal_cache.update(D=D, cost=extra, fit=fit)
        opts["d_output"] = "logit"
        fields["calibration"] = fit
    snaps = None
    steps = opts.get("steps")
    if curve_points and v.method in ("ddls", "dot") and isinstance(steps, int) and steps > 0:
        space = opts.get("space", "latent")
        if space == "latent":
            snaps = _Snapshots(
                math.ceil(steps / curve_points),
                steps,
                pair.latent_dim,
                opts.get("prior", pair.meta.get("prior", "normal")),
            )
            opts["callback"] = snaps
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
            "options": {k: val for k, val in opts.items() if k not in ("callback", "progress")},
            "evals": evals,
            # a (cal) row's wall time includes the calibration it needs (shared between cal rows)
            "wall_s": wall + (fields["calibration"]["wall_s"] if v.calibrated else 0.0),
        }
    )
    for k in ("accept_rate", "accept_rate_mean", "n_diverged", "k_eff"):
        if k in info and not isinstance(info[k], (list, dict)):
            fields[k] = info[k]
    if res.info.get("n_diverged") is None and "diverged" in res.info:
        fields["n_diverged"] = int(res.info["diverged"].sum())
    return res.x, fields, (snaps.states if snaps is not None else {})
