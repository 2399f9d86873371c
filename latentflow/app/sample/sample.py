"""``sample_model``: load a model, refine a batch of its samples, and write the outputs as one set.

This is what ``latentflow sample`` runs; the CLI only parses options and prints. The sampling itself is the
model's (:meth:`ModelPair.start <latentflow.models.ModelPair.start>` draws the chains' starting points and
labels, :meth:`ModelPair.refine <latentflow.models.ModelPair.refine>` runs the method with the model's
settings); this module adds the files and the report. ``method="none"`` is the generator alone. A model
without a generator (``latentflow train dflow`` / ``dgd``) starts from ``x0`` drawn as its ``meta["x0"]``
says; :func:`check_method_fits` refuses a method the model cannot serve, naming what it lacks.

Under ``torchrun`` (a process group of more than one rank) :mod:`latentflow.app.sample.sample_dist` takes
over and writes the same set: the per-chain random streams make every rank's rows those of one process.

Every argument (``num``, ``seed``, ``out``, the device, ``formats``, ``real``) is checked before the model is
loaded; the output files (samples in the chosen formats, see :mod:`latentflow.app.sample.sample_files`, the PNG
picture and the report) are written into a staging folder and renamed into place together
(:class:`~latentflow.app.outputs.OutputSet`), under a lock that refuses a concurrent run into ``out``.

The report's metrics (2-D metrics, FID-FMNIST, FID / KID / IS and PRDC against a real image set) are
:mod:`latentflow.app.sample.sample_metrics`'s.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...dist import world
from ...errors import OptionError
from ...result import GD_EVAL_KEYS
from ...samplers import DEFAULT_METHOD, generate
from ..fit import check_method_fits, meta_get, resolve_device, sampling_options
from ..outputs import OutputSet, check_seed
from ..report import env_info, grid_png, scatter_png, write_json, write_samples
from .sample_files import NPZ, SAMPLES_DIR, parse_formats
from .sample_metrics import add_real_metrics, model_metrics

#: the files of one ``sample`` output set
SAMPLES, PNG, REPORT = "samples.safetensors", "samples.png", "report.json"
OUTPUT_FILES = (SAMPLES, PNG, REPORT)
#: every name a ``sample`` output set may hold (the formats' files): a folder holding only these is a previous set
ALL_OUTPUT_FILES = (SAMPLES, SAMPLES_DIR, NPZ, PNG, REPORT)


def sample_model(
    model: str = "grid25-wgangp",
    method: str = DEFAULT_METHOD,
    *,
    num: int = 1000,
    seed: int = 0,
    device: str | None = "auto",
    out: str | Path | None = None,
    options: dict | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    class_label: int | str | None = None,
    formats=None,
    real=None,
    num_real: int | None = None,
) -> dict:
    """Refine ``num`` samples of ``model`` with ``method``; write samples, PNG and report to ``out``.

    A class-conditional model samples class ``class_label`` (an int), or uniform classes drawn per sample
    (``None`` or ``"random"``, the default); the labels ``y`` are written beside ``x`` and ``z``.

    ``method="none"`` keeps the generator's samples as they are. A model without a generator (a
    ``latentflow train dflow`` or ``dgd`` folder) starts from ``x0`` drawn per its ``meta["x0"]``, and the
    report's ``start`` says ``"x0"`` instead of ``"generator"``. ``formats``: ``"safetensors"`` (default),
    ``"png"``, ``"npz"`` (a list or a comma list). ``real`` / ``num_real``: the real images for Inception
    FID/KID/IS of image models (default: the model's dataset's, where it has one). Returns the report
    (``report.json``)."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise OptionError(f"num must be an int >= 1; got {num!r}")
    seed = check_seed(seed)
    dev = resolve_device(device)
    extras = _check_extras(formats, real, num_real)
    names = tuple(n for n in ALL_OUTPUT_FILES if n in extras["files"] + (PNG, REPORT))
    if world().distributed:  # under torchrun: every rank takes its blocks, rank 0 writes the set
        return _distributed(
            model, method, num, seed, dev, options, batch_size, progress, class_label, out, extras=extras, names=names
        )
    outset = OutputSet(out, names, allowed=ALL_OUTPUT_FILES) if out is not None else None  # before any compute
    if outset is None:
        return _run(model, method, num, seed, dev, options, batch_size, progress, class_label, None, extras)
    with outset:
        report = _run(model, method, num, seed, dev, options, batch_size, progress, class_label, outset.staging, extras)
        outset.commit()
    return report


def _distributed(*args, extras: dict, names: tuple) -> dict:
    """``sample_model`` under a process group (``latentflow.app.sample.sample_dist``), with this module's steps."""
    from . import sample_dist

    return sample_dist.sample_distributed(
        *args,
        steps={
            "files": names,
            "allowed": ALL_OUTPUT_FILES,
            "prepare": functools.partial(_prepare, extras=extras),
            "initial": initial_state,
            "report": write_report,
        },
    )


@dataclass(frozen=True)
class SampleRun:
    """What one ``sample`` run is: the arguments, the loaded model, the options it uses and its extras (output
    formats and real set, checked against what the model can serve)."""

    model: str
    method: str
    num: int
    seed: int
    dev: torch.device
    class_label: int | str | None
    pair: Any
    opts: dict
    extras: dict

    @property
    def meta(self):
        return self.pair.meta


def _prepare(model, method, num, seed, dev, options, batch_size, progress, class_label, extras=None) -> SampleRun:
    """Load the model and settle the options a run uses (before any sampling)."""
    from ...models import load

    pair = load(model, device=dev)
    meta = pair.meta
    extras = _fit_extras(extras or _check_extras(None, None, None), meta)
    # the options given are values: --opt noise_scale=none is noise_scale=None (τ = √ε), as in Python
    opts = sampling_options(method, meta, options or {}, none_is_unset=False)
    check_method_fits(method, meta, opts)
    if batch_size is not None:
        opts["batch_size"] = batch_size
    opts["progress"] = progress
    return SampleRun(model, method, num, seed, dev, class_label, pair, opts, extras)


def initial_state(run: SampleRun, gen: torch.Generator):
    """``(start, z, x0_or_None, y)`` of the chains of a run, drawn from ``gen`` (``Generator(seed)``) by
    :meth:`ModelPair.start <latentflow.models.ModelPair.start>`."""
    kind, state, y = run.pair.start(run.num, generator=gen, device=run.dev, class_label=run.class_label)
    return (kind, state, None, y) if kind == "generator" else (kind, None, state, None)


def _run(model, method, num, seed, dev, options, batch_size, progress, class_label, folder, extras=None) -> dict:
    run = _prepare(model, method, num, seed, dev, options, batch_size, progress, class_label, extras)
    gen = torch.Generator("cpu").manual_seed(seed)
    t0 = time.perf_counter()
    start, z, x0, y = initial_state(run, gen)
    if z is not None:
        x0 = generate(run.pair.G, z, y=y)
    t_gen = time.perf_counter() - t0
    res = run.pair.refine(z if z is not None else x0, method, generator=gen, y=y, **run.opts)
    return write_report(run, start, x0, res, t_gen, folder)


def write_report(run: SampleRun, start, x0, res, t_gen, folder) -> dict:
    """The report of a run (and, with ``folder``, its samples in the chosen formats, picture and report)."""
    model, method, num, seed, meta, extras = run.model, run.method, run.num, run.seed, run.meta, run.extras
    report: dict = {
        "schema": 1,
        "model": model,
        "method": method,
        "num": num,
        "seed": seed,
        "start": start,
        "env": env_info(run.dev),
        "result": res.to_dict(),
        "generator_wall_s": t_gen,
    }
    y = res.y
    if y is not None:
        k = run.pair.num_classes or int(y.max()) + 1
        report["classes"] = {
            "class": run.class_label if isinstance(run.class_label, int) else "random",
            "counts": torch.bincount(y.cpu(), minlength=int(k)).tolist(),
        }
    dataset = meta_get(meta, "dataset")
    report["metrics"] = model_metrics(dataset, x0, res.x)
    add_real_metrics(report["metrics"], extras["real"], x0, res.x, meta)
    report["evaluations_per_sample"] = {k: res.info[k] / num for k in GD_EVAL_KEYS}
    if folder is not None:
        folder = Path(folder)
        files = {
            **_write_sample_files(folder, extras, model, method, run.opts, seed, num, start, meta, x0, res, y),
            "report": REPORT,
        }
        if x0.dim() == 2 and x0.shape[1] == 2:
            from ...data import TOY

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


# ---------------------------------------------------------------------------------------------------
# output formats and the real set (kept apart from the sampling above)


def _check_extras(formats, real, num_real) -> dict:
    """The formats and the real set, checked before any compute (one-line ``OptionError`` otherwise)."""
    from .sample_files import format_files

    fmts = parse_formats(formats)
    rs = None
    if real is not None:
        from ...metrics import resolve_real

        rs = resolve_real(real, num_real)
    elif num_real is not None and (isinstance(num_real, bool) or not isinstance(num_real, int) or num_real < 2):
        raise OptionError(f"num_real: expected an int >= 2 (FID needs two real images); got {num_real!r}")
    return {
        "formats": fmts,
        "files": format_files(fmts),
        "real": rs,
        "num_real": num_real,
        "real_given": real is not None,
    }


def _fit_extras(extras: dict, meta) -> dict:
    """Refuse formats / a real set the model cannot serve; pick the default real set of its dataset."""
    from .sample_files import check_formats_fit

    shape = meta_get(meta, "output_shape")
    check_formats_fit(extras["formats"], shape)
    images = shape is not None and len(shape) == 3 and shape[0] in (1, 3)
    if extras["real"] is not None and not images:
        raise OptionError(
            f"real: expected an image model (samples [C, H, W], C = 1 or 3) for FID against real "
            f"images; this model's samples have shape {list(shape) if shape is not None else None}"
        )
    if extras["real"] is None and images:
        from ...metrics import DEFAULT_REAL, resolve_real

        default = DEFAULT_REAL.get(meta_get(meta, "dataset"))
        if default is not None:
            extras = {**extras, "real": resolve_real(default, extras["num_real"])}
    return extras


def _write_sample_files(
    folder: Path, extras: dict, model, method, opts, seed, num, start, meta, x0, res, y: torch.Tensor | None = None
) -> dict:
    """The samples in each chosen format; returns ``{kind: file name}`` for the report's ``files``."""
    from ..report import package_version
    from .sample_files import samples_metadata, to_nhwc_uint8, write_npz, write_png_folder

    files: dict = {}
    fmts = extras["formats"]
    if "safetensors" in fmts:
        tensors = {
            "x": res.x.detach().float().cpu(),
            "x_before": x0.detach().float().cpu(),
            "z": None if res.z is None else res.z.detach().float().cpu(),
        }
        if y is not None:  # the class labels of a conditional model, beside x and z
            tensors["y"] = y.detach().cpu()
        meta_s = samples_metadata(
            version=package_version(),
            value_range=meta_get(meta, "output_range"),
            labels="y" in tensors,
            model=model,
            method=method,
            options=opts,
            seed=seed,
            num=num,
            start=start,
        )
        write_samples(folder / SAMPLES, metadata=meta_s, **tensors)
        files["samples"] = SAMPLES
    if "png" in fmts or "npz" in fmts:
        nhwc = to_nhwc_uint8(res.x, meta_get(meta, "output_range") or (-1.0, 1.0))
        if "png" in fmts:
            write_png_folder(folder / SAMPLES_DIR, nhwc)
            files["png_folder"] = SAMPLES_DIR
        if "npz" in fmts:
            write_npz(folder / NPZ, nhwc)
            files["npz"] = NPZ
    return files
