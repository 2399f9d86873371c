"""``sample_model``: load a model, refine a batch of its samples, and write the outputs.

This is what ``latentflow sample`` runs; the CLI only parses options and prints.
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
from .samplers import methods
from .samplers._engine import chunk_slices, frozen


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


def sample_model(model: str = "grid25-wgangp", method: str = "ddls", *, num: int = 1000, seed: int = 0,
                 device: str | None = "auto", out: str | Path | None = None, options: dict | None = None,
                 batch_size: int | None = None, progress: bool = True, class_label: int | None = None) -> dict:
    """Refine ``num`` samples of ``model`` with ``method``; write samples, PNG and report to ``out``.

    Returns the report (the content of ``report.json``)."""
    from .models import load

    if num < 1:
        raise OptionError(f"num must be >= 1; got {num}")
    dev = resolve_device(device)
    pair = load(model, device=dev)
    if class_label is not None:
        pair.set_class(class_label)
    meta = pair.meta
    opts = method_options(method, meta, options or {})
    if batch_size is not None:
        opts["batch_size"] = batch_size
    opts["progress"] = progress
    dim = int(meta_get(meta, "latent_dim"))
    prior = meta_get(meta, "prior") or "normal"
    gen = torch.Generator("cpu").manual_seed(seed)
    z = rng.sample_latents(num, dim, prior, generator=gen, device=dev)
    t0 = time.perf_counter()
    x0 = generate(pair.G, z)
    t_gen = time.perf_counter() - t0
    res = refine(pair.G, pair.D, z, method=method, generator=gen, **opts)

    report: dict = {"schema": 1, "model": model, "method": method, "num": num, "seed": seed,
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
            scatter_png(out / "samples.png", x0, res.x, data, method, lim=3.0)
        elif x0.dim() == 4:
            rng_ = meta_get(meta, "output_range") or (-1.0, 1.0)
            grid_png(out / "samples.png", x0, res.x, method, value_range=tuple(rng_))
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
