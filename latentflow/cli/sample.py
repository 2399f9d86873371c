"""``latentflow sample``: refine samples of a model and write them with a report."""

from __future__ import annotations

import click

from .. import app
from ._common import Choice, num_option, pairs_option, real_option, seed_option


def _int_or_word(value: str | None, word: str, least: int, expected: str, hint: str, too_small: str):
    """``value`` as an int >= ``least``, or ``word`` / None as they are; click's usage error naming ``hint``
    otherwise (``expected`` for a value that is not an int, ``too_small`` below ``least``)."""
    if value is None or value == word:
        return value
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"expected {expected} or {word!r}, got {value!r}", param_hint=hint) from None
    if number < least:
        raise click.BadParameter(too_small, param_hint=hint)
    return number


def _method_names():
    return app.method_names()  # plug-ins and "none" (the generator alone) included


@click.command()
@click.option(
    "--model",
    default="grid25-wgangp",
    show_default=True,
    metavar="NAME|hf:REPO|DIR",
    help="Manifest name, hf:owner/repo[@revision], or a folder with G/D safetensors (or one `latentflow train` wrote).",
)
@click.option(
    "--method",
    default=app.DEFAULT_METHOD,
    show_default=True,
    type=Choice(_method_names()),
    help=f"A sampler (see `latentflow methods`), or {app.NO_REFINEMENT}: the generator's samples, unrefined.",
)
@num_option(1000, "Number of samples (--num is an alias; under torchrun use -n or --num-samples).")
@click.option("--steps", default=None, type=click.IntRange(min=0), help="Sampler steps (methods that have steps).")
@click.option(
    "--step-size",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Step size ε (methods that have step_size).",
)
@pairs_option("--opt", "opts", "Any other method option, e.g. --opt mala=true (see `latentflow methods`).")
@click.option(
    "--batch-size",
    default=None,
    metavar="N|auto",
    help="Evaluate G/D in chunks of N chains, or 'auto' (largest chunk that fits in memory).",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the sampler step (gradient samplers).")
@click.option(
    "--autocast",
    default=None,
    type=click.Choice(["bf16", "fp16"]),
    help="Evaluate G/D in low precision; chain state stays in float32.",
)
@click.option("--cuda-graph", is_flag=True, help="Capture the step as a CUDA graph (CUDA only).")
@click.option(
    "--class",
    "class_label",
    default=None,
    metavar="K|random",
    help="Class of a class-conditional model (e.g. studiogan-sngan-cifar10): K for every sample, or "
    "random (the default): uniform classes drawn per sample.",
)
@seed_option()
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:i]")
@click.option("--out", default=None, metavar="DIR", help="Output folder [default: out/MODEL-METHOD].")
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="safetensors|png|npz",
    help="Sample files: safetensors (default), png (a folder samples/ of uint8 PNGs), npz (uint8 "
    "arr_0, NHWC); repeat or comma-separate.",
)
@real_option(
    "Real images for Inception FID/KID/IS [default: the model's dataset's, e.g. cifar10-train].",
    "DIR|FILE.npz|cifar10-train",
)
@click.option(
    "--real-num",
    "num_real",
    default=None,
    type=click.IntRange(min=2),
    help="Use the first N real images [default: all].",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def sample(
    model,
    method,
    num,
    steps,
    step_size,
    opts,
    batch_size,
    compile_,
    autocast,
    cuda_graph,
    class_label,
    seed,
    device,
    out,
    formats,
    real,
    num_real,
    quiet,
    as_json,
):
    """Refine samples of a model and write samples.safetensors (or --format png/npz), samples.png and report.json."""
    options = app.parse_method_options(method, opts)
    if steps is not None:
        options["steps"] = steps
    if step_size is not None:
        options["step_size"] = step_size
    if compile_:
        options["compile"] = True
    if autocast:
        options["autocast"] = autocast
    if cuda_graph:
        options["cuda_graph"] = True
    batch_size = _int_or_word(batch_size, "auto", 1, "a positive int", "--batch-size", "must be >= 1")
    class_label = _int_or_word(class_label, "random", 0, "a class index K >= 0", "--class", "must be >= 0 or 'random'")
    if out is None:
        safe = model.replace("/", "_").replace(":", "_").replace("@", "_")
        out = f"out/{safe}-{method}"
    rep = app.sample_model(
        model,
        method,
        num=num,
        seed=seed,
        device=device,
        out=out,
        options=options,
        batch_size=batch_size,
        progress=not quiet,
        class_label=class_label,
        formats=list(formats) or None,
        real=real,
        num_real=num_real,
    )
    if not app.is_main():  # under torchrun rank 0 prints
        return
    if as_json:
        click.echo(app.json_text(rep))
        return
    for line in app.sample_summary(rep, out):
        click.echo(line)
