"""``sample_model``: load a model, refine a batch of its samples, and write the outputs as one set.

This is what ``latentflow sample`` runs; the CLI only parses options and prints. Besides the registered
samplers, ``method="none"`` (:data:`NO_REFINEMENT`) writes the generator's samples as they are. A model
without a generator (``latentflow train dflow`` / ``dgd``) starts from ``x0`` drawn as its ``meta["x0"]``
says; :func:`check_method_fits` refuses a method the model cannot serve, naming what it lacks.

Under ``torchrun`` (a process group of more than one rank) :mod:`latentflow.app.sample_dist` takes
over and writes the same set: the per-chain random streams make every rank's rows those of one process.

Every argument (``num``, ``seed``, ``out``, the device) is checked before the model is loaded; the three
output files are written into a staging folder and renamed into place together
(:class:`~latentflow.app.outputs.OutputSet`), under a lock that refuses a concurrent run into ``out``.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..api import refine
from ..dist import world
from ..errors import LatentflowError, OptionError
from ..result import Result
from ..rng import sample_latents
from .fit import NO_REFINEMENT, check_method_fits, generate, meta_get, method_options, resolve_device
from .outputs import OutputSet, check_seed
from .report import env_info, grid_png, scatter_png, write_json, write_samples

#: the files of one ``sample`` output set
SAMPLES, PNG, REPORT = "samples.safetensors", "samples.png", "report.json"
OUTPUT_FILES = (SAMPLES, PNG, REPORT)


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
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise OptionError(f"num must be an int >= 1; got {num!r}")
    seed = check_seed(seed)
    dev = resolve_device(device)
    if world().distributed:   # under torchrun: every rank takes its blocks, rank 0 writes the set
        return _distributed(model, method, num, seed, dev, options, batch_size, progress, class_label, out)
    outset = OutputSet(out, OUTPUT_FILES) if out is not None else None   # checks out, before any compute
    if outset is None:
        return _run(model, method, num, seed, dev, options, batch_size, progress, class_label, None)
    with outset:
        report = _run(model, method, num, seed, dev, options, batch_size, progress, class_label, outset.staging)
        outset.commit()
    return report


def _distributed(*args) -> dict:
    """``sample_model`` under a process group (``latentflow.app.sample_dist``), with this module's steps."""
    from . import sample_dist
    return sample_dist.sample_distributed(*args, steps={"files": OUTPUT_FILES, "prepare": _prepare,
                                                        "initial": initial_state, "report": write_report})


def _prepare(model, method, dev, options, batch_size, progress, class_label):
    """Load the model and settle the options a run uses: ``(pair, meta, opts)``."""
    from ..models import load

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
    return pair, meta, opts


def initial_state(pair, num: int, gen: torch.Generator, dev):
    """``(start, z, x0_or_None)`` of the ``num`` chains of a run, drawn from ``gen`` (``Generator(seed)``):
    latents from the prior for a model with a generator, else ``x0`` as its ``meta["x0"]`` says."""
    meta = pair.meta
    if pair.G is not None:
        dim = int(meta_get(meta, "latent_dim"))
        prior = meta_get(meta, "prior") or "normal"
        return "generator", sample_latents(num, dim, prior, generator=gen, device=dev), None
    return "x0", None, pair.initial_state(num, generator=gen, device=dev, dtype=torch.float32)


def _run(model, method, num, seed, dev, options, batch_size, progress, class_label, folder) -> dict:
    pair, meta, opts = _prepare(model, method, dev, options, batch_size, progress, class_label)
    gen = torch.Generator("cpu").manual_seed(seed)
    t0 = time.perf_counter()
    start, z, x0 = initial_state(pair, num, gen, dev)
    if z is not None:
        x0 = generate(pair.G, z)
    state = z if z is not None else x0
    t_gen = time.perf_counter() - t0
    if method == NO_REFINEMENT:
        res = _unrefined(x0, z, t_gen)
    else:
        res = refine(pair.G, pair.D, state, method=method, generator=gen, **opts)
    return write_report(model, method, num, seed, dev, meta, start, x0, res, t_gen, folder)


def write_report(model, method, num, seed, dev, meta, start, x0, res, t_gen, folder) -> dict:
    """The report of a run (and, with ``folder``, its samples, picture and report files)."""
    report: dict = {"schema": 1, "model": model, "method": method, "num": num, "seed": seed, "start": start,
                    "env": env_info(dev), "result": res.to_dict(), "generator_wall_s": t_gen}
    dataset = meta_get(meta, "dataset")
    report["metrics"] = _metrics(dataset, x0, res.x)
    report["evaluations_per_sample"] = {k: res.info[k] / num for k in
                                        ("n_G_forward", "n_G_backward", "n_D_forward", "n_D_backward")}
    if folder is not None:
        folder = Path(folder)
        write_samples(folder / SAMPLES, x=res.x.detach().float().cpu(), x_before=x0.detach().float().cpu(),
                      z=None if res.z is None else res.z.detach().float().cpu())
        files = {"samples": SAMPLES, "report": REPORT}
        if x0.dim() == 2 and x0.shape[1] == 2:
            from ..data import TOY
            data = TOY[dataset].sample(2000, generator=1) if dataset in TOY else None
            scatter_png(folder / PNG, x0, res.x, data, method, lim=3.0, title_before=start)
            files["png"] = PNG
        elif x0.dim() == 4:
            rng_ = meta_get(meta, "output_range") or (-1.0, 1.0)
            grid_png(folder / PNG, x0, res.x, method, value_range=tuple(rng_), title_before=start)
            files["png"] = PNG
        report["files"] = files
        write_json(folder / REPORT, report)
    return report


def _metrics(dataset: str | None, before: torch.Tensor, after: torch.Tensor) -> dict:
    from ..data import TOY
    if dataset in TOY:
        from ..metrics import toy_metrics
        return {"before": toy_metrics(before, dataset), "after": toy_metrics(after, dataset)}
    if dataset == "fashion-mnist" and before.shape[0] >= 2:
        # FID in the bundled classifier's feature space (FID-FMNIST; not comparable to Inception FID)
        try:
            from ..metrics import KEY_FID, fid_fmnist, to_uint8
            n = before.shape[0]
            note = ("FID-FMNIST of n samples vs the 10k test images; biased upward for small n "
                    "(compare runs at equal n; use `latentflow bench images` for tables)")
            return {"before": {"fid_fmnist": fid_fmnist(to_uint8(before))[KEY_FID]},
                    "after": {"fid_fmnist": fid_fmnist(to_uint8(after))[KEY_FID]}, "n": n, "note": note}
        except LatentflowError as e:  # e.g. Fashion-MNIST not installed: the samples are still written
            return {"error": str(e)}
    return {}
