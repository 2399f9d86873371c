"""``sample_model``: load a model, refine a batch of its samples, and write the outputs.

This is what ``latentflow sample`` runs; the CLI only parses options and prints. Besides the registered
samplers, ``method="none"`` (:data:`NO_REFINEMENT`) writes the generator's samples as they are. A model
without a generator (``latentflow train dflow`` / ``dgd``) starts from ``x0`` drawn as its ``meta["x0"]``
says; :func:`check_method_fits` refuses a method the model cannot serve, naming what it lacks.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from . import rng
from .api import refine
from .errors import LatentflowError, OptionError
from .report import env_info, grid_png, scatter_png, write_json, write_samples
from .result import Result
from .samplers import methods
from .samplers._engine import chunk_slices, frozen

#: the ``method`` of :func:`sample_model` (``latentflow sample --method none``) that refines nothing
NO_REFINEMENT = "none"

# what each method needs of a model: a generator G, a discriminator D, and how it calls D
_NEEDS: dict[str, tuple[bool, bool, tuple]] = {
    NO_REFINEMENT: (True, False, ()),
    "ddls": (True, True, (None,)),
    "dot": (True, True, (None,)),
    "drs": (True, True, (None,)),
    "mh": (True, True, (None,)),
    "dflow": (False, True, ("time",)),
    "dg_langevin": (False, True, (None, "sigma")),
}
_CALLS = {None: "D(x)", "time": "D(x, t)", "sigma": "D(x, sigma)"}
_KIND = {None: "an unconditioned D(x)", "time": "a time-conditioned D(x, t)",
         "sigma": "a noise-conditioned D(x, sigma)"}


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise OptionError(f"device must be auto, cpu or cuda[:i]; got {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device cuda was asked for but CUDA is not available; use --device cpu")
    return dev


def meta_get(meta: Any, key: str, default=None):
    if isinstance(meta, dict):
        return meta.get(key, default)
    return getattr(meta, key, default)


def generate(G, z: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    with torch.no_grad(), frozen(G):
        return torch.cat([G(z[sl]) for sl in chunk_slices(z.shape[0], batch_size)])


def method_options(method: str, meta: Any, user: dict) -> dict:
    """The options a run uses: the model's recommended ones for ``method`` (manifest ``sampling``),
    the model's ``d_output`` and prior where the method takes them, then the user's on top."""
    valid = methods()[method].options
    opts: dict = {}
    rec = (meta_get(meta, "sampling") or {}).get(method, {})
    opts.update(rec)
    if "d_output" in valid and meta_get(meta, "d_output"):
        opts["d_output"] = meta_get(meta, "d_output")
    if "prior" in valid and meta_get(meta, "prior"):
        opts["prior"] = meta_get(meta, "prior")
    opts.update({k: v for k, v in user.items() if v is not None})
    return opts


def _roles(meta: Any) -> list[str]:
    return list(meta_get(meta, "roles") or ("G", "D"))


def describe_model(meta: Any) -> str:
    """``'a dflow model with D(x, t) only'``, ``'a scoregan model with G + S'``: for messages."""
    roles = _roles(meta)
    parts = [_CALLS.get(meta_get(meta, "d_conditioning"), "D") if r == "D" else r for r in roles]
    trainer = meta_get(meta, "trainer")
    return (f"a {trainer} model" if trainer else "a model") + " with " + " + ".join(parts) + \
        (" only" if len(parts) == 1 else "")


def misfit(method: str, meta: Any, options: dict | None = None) -> str | None:
    """Why ``method`` cannot sample the model ``meta`` describes (with ``options``), or None when it can."""
    if method not in _NEEDS:
        return None
    needs_g, needs_d, calls = _NEEDS[method]
    roles = _roles(meta)
    cond = meta_get(meta, "d_conditioning")
    if needs_g and "G" not in roles:
        return "needs a generator G, and the model has none"
    if needs_d and "D" not in roles:
        return "needs a discriminator D, and the model has none"
    if needs_d and cond not in calls:
        return (f"calls {' or '.join(_CALLS[c] for c in calls)}, and the model's D is {_KIND.get(cond, repr(cond))}")
    if method == "dg_langevin" and options is not None:
        if cond == "sigma" and options.get("sigmas") is None:
            return "needs sigmas (the noise levels) for a noise-conditioned D(x, sigma); pass --opt sigmas=[...]"
        if cond is None and options.get("sigmas") is not None:
            return "with sigmas calls D(x, sigma), and the model's D is an unconditioned D(x); drop sigmas"
    return None


def fitting_methods(meta: Any) -> list[str]:
    """The methods (and ``"none"``) that can sample the model ``meta`` describes."""
    return [m for m in (NO_REFINEMENT, *methods()) if misfit(m, meta) is None]


def check_method_fits(method: str, meta: Any, options: dict | None = None) -> None:
    """Raise ``OptionError`` naming the method and what the model lacks when ``method`` cannot sample it."""
    why = misfit(method, meta, options)
    if why is None:
        return
    fits = fitting_methods(meta)
    hint = ", ".join(f'"{m}"' + (" (no refinement)" if m == NO_REFINEMENT else "") for m in fits)
    raise OptionError(f'method "{method}" {why} (model "{meta_get(meta, "name")}" is {describe_model(meta)}). '
                      + (f"Methods that fit it: {hint}." if fits else "No method fits it."))


def _unrefined(x: torch.Tensor, z: torch.Tensor | None, wall_s: float) -> Result:
    n = x.shape[0]
    info = {"method": NO_REFINEMENT, "options": {}, "n_G_forward": n if z is not None else 0, "n_G_backward": 0,
            "n_D_forward": 0, "n_D_backward": 0, "wall_s": wall_s,
            "diverged": torch.zeros(n, dtype=torch.bool, device=x.device)}
    return Result(x=x.clone(), z=z, info=info)   # a copy: x_before and x are written as separate tensors


def sample_model(model: str = "grid25-wgangp", method: str = "ddls", *, num: int = 1000, seed: int = 0,
                 device: str | None = "auto", out: str | Path | None = None, options: dict | None = None,
                 batch_size: int | None = None, progress: bool = True, class_label: int | None = None) -> dict:
    """Refine ``num`` samples of ``model`` with ``method``; write samples, PNG and report to ``out``.

    ``method="none"`` keeps the generator's samples as they are. A model without a generator (a
    ``latentflow train dflow`` or ``dgd`` folder) starts from ``x0`` drawn per its ``meta["x0"]``, and the
    report's ``start`` says ``"x0"`` instead of ``"generator"``. Returns the report (``report.json``)."""
    from .models import load

    if num < 1:
        raise OptionError(f"num must be >= 1; got {num}")
    dev = resolve_device(device)
    pair = load(model, device=dev)
    if class_label is not None:
        pair.set_class(class_label)
    meta = pair.meta
    if method == NO_REFINEMENT:
        given = sorted(k for k, v in (options or {}).items() if v is not None)
        if given:
            raise OptionError(f'method "{NO_REFINEMENT}" (no refinement) takes no options; got {", ".join(given)}')
        opts: dict = {}
    else:
        opts = method_options(method, meta, options or {})
    check_method_fits(method, meta, opts)
    if batch_size is not None:
        opts["batch_size"] = batch_size
    opts["progress"] = progress
    gen = torch.Generator("cpu").manual_seed(seed)
    t0 = time.perf_counter()
    if pair.G is not None:
        dim = int(meta_get(meta, "latent_dim"))
        prior = meta_get(meta, "prior") or "normal"
        z = rng.sample_latents(num, dim, prior, generator=gen, device=dev)
        x0 = generate(pair.G, z)
        start, state = "generator", z
    else:   # a generator-free model: the particles start from x0
        z = None
        x0 = pair.initial_state(num, generator=gen, device=dev, dtype=torch.float32)
        start, state = "x0", x0
    t_gen = time.perf_counter() - t0
    if method == NO_REFINEMENT:
        res = _unrefined(x0, z, t_gen)
    else:
        res = refine(pair.G, pair.D, state, method=method, generator=gen, **opts)

    report: dict = {"schema": 1, "model": model, "method": method, "num": num, "seed": seed, "start": start,
                    "env": env_info(dev), "result": res.to_dict(), "generator_wall_s": t_gen}
    dataset = meta_get(meta, "dataset")
    report["metrics"] = _metrics(dataset, x0, res.x)
    report["evaluations_per_sample"] = {k: res.info[k] / num for k in
                                        ("n_G_forward", "n_G_backward", "n_D_forward", "n_D_backward")}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_samples(out / "samples.safetensors", x=res.x.detach().float().cpu(),
                      x_before=x0.detach().float().cpu(),
                      z=None if res.z is None else res.z.detach().float().cpu())
        if x0.dim() == 2 and x0.shape[1] == 2:
            from .data import TOY
            data = TOY[dataset].sample(2000, generator=1) if dataset in TOY else None
            scatter_png(out / "samples.png", x0, res.x, data, method, lim=3.0, title_before=start)
        elif x0.dim() == 4:
            rng_ = meta_get(meta, "output_range") or (-1.0, 1.0)
            grid_png(out / "samples.png", x0, res.x, method, value_range=tuple(rng_), title_before=start)
        report["files"] = {"samples": "samples.safetensors", "png": "samples.png", "report": "report.json"}
        write_json(out / "report.json", report)
    return report


def _metrics(dataset: str | None, before: torch.Tensor, after: torch.Tensor) -> dict:
    from .data import TOY
    if dataset in TOY:
        from .metrics.toy2d import toy_metrics
        return {"before": toy_metrics(before, dataset), "after": toy_metrics(after, dataset)}
    if dataset == "fashion-mnist" and before.shape[0] >= 2:
        # FID in the bundled classifier's feature space (FID-FMNIST; not comparable to Inception FID)
        try:
            from .metrics.fidelity import KEY_FID, to_uint8
            from .metrics.fmnist_classifier import fid_fmnist
            n = before.shape[0]
            note = ("FID-FMNIST of n samples vs the 10k test images; biased upward for small n "
                    "(compare runs at equal n; use `latentflow bench images` for tables)")
            return {"before": {"fid_fmnist": fid_fmnist(to_uint8(before))[KEY_FID]},
                    "after": {"fid_fmnist": fid_fmnist(to_uint8(after))[KEY_FID]}, "n": n, "note": note}
        except LatentflowError as e:  # e.g. Fashion-MNIST not installed: the samples are still written
            return {"error": str(e)}
    return {}
