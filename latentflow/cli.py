"""The ``latentflow`` command line: a thin click shell over the app layer (:mod:`latentflow.app`).

Options left unset are not passed on, so the library's defaults (and a model's recommended sampler
settings from the manifest) are the only defaults. Every error of the ``LatentflowError`` family (wrong
option types, an unwritable ``--out``, a seed out of range, unknown names) is printed as one line
``error: ...`` with exit code 1, no traceback; arguments are checked before any compute. Option names
are chosen so that none is a prefix of a ``torchrun`` option (``-n``/``--num-samples``; ``--num`` is kept
as an alias, see ``TORCHRUN_ALIASES``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings

import click

from . import app
from .app import DivergenceWarning, LatentflowError, OptionError, OutputError

#: options of ours that are prefixes of torchrun options (``--num`` of ``--numa-binding``): kept for
#: compatibility, each beside a safe spelling of the same option; under ``torchrun`` use the safe one
TORCHRUN_ALIASES = {"--num": "--num-samples"}


def _json_arg(text: str | None, name: str):
    """A JSON option's value (``None`` when not given); ``OptionError`` naming ``name`` when not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise OptionError(f"{name} must be JSON (e.g. '{{\"latent_dim\": 100}}'); got {text!r} ({e})") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class _Choice(click.Choice):
    """``click.Choice`` whose refusal adds a close-match suggestion (a usage error: exit code 2)."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as e:
            raise click.BadParameter(e.message + app.suggest(value, self.choices), ctx=ctx, param=param) from None


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                # the library logs every divergence (a WARNING line on stderr) and also warns for Python
                # callers: on the command line the log line is the one message
                warnings.simplefilter("ignore", DivergenceWarning)
                return super().invoke(ctx)
        except LatentflowError as e:
            click.echo(f"error: {_one_line(e)}", err=True)
            ctx.exit(1)


@contextlib.contextmanager
def _writing(out: str, kept: str, option: str = "--out"):
    """A write the file system refuses (full, read-only) ends the command with one line naming ``option``
    and what is left (``kept``)."""
    try:
        yield
    except OutputError as e:
        what = f"cannot write {e.path.rsplit('/', 1)[-1]}: {e.reason}" if e.path and e.reason else str(e)
        raise OutputError(f"{option} {out!r}: {what}; {kept}", reason=e.reason, path=e.path) from None


@click.group(cls=_Group)
@click.version_option(package_name="latentflow")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
def main(verbose):
    """latentflow: better samples from pretrained GANs, using their discriminator.

    \b
    Examples:
      latentflow sample                                  # DDLS on the bundled 25-Gaussians model
      latentflow sample --model swissroll-wgangp --method dot -n 2000
      latentflow sample --method ddls --opt mala=true --opt adapt_steps=50
      latentflow methods
      latentflow models
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # huggingface_hub prints its records through a handler of its own: passed on to ours too, each line
    # would show twice
    logging.getLogger("huggingface_hub").propagate = False
    app.init_distributed()  # under torchrun: join its process group (NCCL on CUDA, gloo on CPU)


def _method_names():
    return app.method_names()  # plug-ins and "none" (the generator alone) included


@main.command()
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
    type=_Choice(_method_names()),
    help=f"A sampler (see `latentflow methods`), or {app.NO_REFINEMENT}: the generator's samples, unrefined.",
)
@click.option(
    "-n",
    "--num-samples",
    "--num",
    "num",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of samples (--num is an alias; under torchrun use -n or --num-samples).",
)
@click.option("--steps", default=None, type=click.IntRange(min=0), help="Sampler steps (methods that have steps).")
@click.option(
    "--step-size",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Step size ε (methods that have step_size).",
)
@click.option(
    "--opt",
    "opts",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other method option, e.g. --opt mala=true (see `latentflow methods`).",
)
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
@click.option("--seed", default=0, show_default=True, type=int, help="Seed, 0..2**63-1.")
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
@click.option(
    "--real",
    default=None,
    metavar="DIR|FILE.npz|cifar10-train",
    help="Real images for Inception FID/KID/IS [default: the model's dataset's, e.g. cifar10-train].",
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
    if batch_size is not None and batch_size != "auto":
        try:
            batch_size = int(batch_size)
        except ValueError:
            raise click.BadParameter(
                f"expected a positive int or 'auto', got {batch_size!r}", param_hint="--batch-size"
            ) from None
        if batch_size < 1:
            raise click.BadParameter("must be >= 1", param_hint="--batch-size")
    if class_label is not None and class_label != "random":
        try:
            class_label = int(class_label)
        except ValueError:
            raise click.BadParameter(
                f"expected a class index K >= 0 or 'random', got {class_label!r}", param_hint="--class"
            ) from None
        if class_label < 0:
            raise click.BadParameter("must be >= 0 or 'random'", param_hint="--class")
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


@main.command("tune")
@click.option("--model", required=True, help="Manifest name, hf:owner/repo or a model folder.")
@click.option(
    "--real",
    "real",
    required=True,
    type=click.Path(),
    help="Real samples: .npz / .safetensors / .pt (weights_only) file or an image folder.",
)
@click.option(
    "--budget",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="D evaluations per sample a candidate may use.",
)
@click.option("--out", default=None, type=click.Path(), help="Folder for tune.json, tune.md and tune.png.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document instead of the table.")
def tune_cmd(model, real, budget, out, seed, quiet, as_json):
    """Pick the method and settings that improve MODEL on held-out real samples (latentflow.tune)."""
    from pathlib import Path

    if not Path(real).exists():
        raise app.OptionError(f"--real: no such file or folder: {real}")
    seed = app.check_seed(seed)
    if out is not None:
        app.check_writable(out)
    doc = app.run_tune(model, real, budget=budget, out=out, seed=seed, quiet=quiet)
    if as_json:
        click.echo(app.json_text(doc))
        return
    click.echo(doc.get("table_md") or "")
    click.echo(f"recommended: {doc['method']} {json.dumps(doc.get('options') or {})}")
    if out is not None:
        click.echo(f"wrote {out}/tune.json, {out}/tune.md, {out}/tune.png")


@main.command("methods")
@click.option("--json", "as_json", is_flag=True)
def methods_cmd(as_json):
    """List the samplers (plug-ins included) with what they need from the model, their options and defaults."""
    ms = app.list_methods()
    if as_json:
        click.echo(json.dumps({n: m.to_dict() for n, m in ms.items()}, indent=2))
        return
    for name, m in ms.items():
        click.echo(f"{name}: {m.summary}")
        click.echo(f"    needs: {m.needs.describe()}")
        for k, v in m.options.items():
            if k in ("generator", "callback", "progress", "batch_size"):
                continue
            click.echo(f"    {k} = {v!r}")


@main.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_cmd(as_json):
    """List the models of the manifest: source, offline availability, size, verification."""
    rows = app.models_table()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    click.echo("| name | source | offline | size | checkpoints |")
    click.echo("|---|---|---|---|---|")
    # checkpoints: the files on disk, hashed now: verified (manifest hash), pinned (hash pinned on this
    # machine's first download), not downloaded, unpinned, or mismatch
    for r in rows:
        size = r.get("size") or r.get("bytes")
        size_s = f"{size / 1e6:.2f} MB" if isinstance(size, (int, float)) and size else "?"
        state = r.get("checkpoints") or "?"
        click.echo(
            f"| {r['name']} | {r.get('source')} | {'yes' if r.get('offline') else 'no'} | {size_s} | "
            f"{state.upper() if state == 'mismatch' else state} |"
        )
    for r in rows:
        if r.get("advice"):
            click.echo(f"{r['name']}: a checkpoint does not match its SHA-256; {r['advice']}")


@main.command("bench")
@click.argument("suite", type=_Choice(app.suite_names()))
@click.option("--model", "models", multiple=True, help="Model(s) to benchmark [default: the suite's].")
@click.option(
    "-n",
    "--num-samples",
    "--num",
    "num",
    default=None,
    type=click.IntRange(min=1),
    help="Samples per method (and seed); --num is an alias.",
)
@click.option("--seeds", default=None, type=click.IntRange(min=1), help="Number of seeds (toy2d).")
@click.option("--methods", "method_list", default=None, help="Comma-separated rows (images suite).")
@click.option("--inception", is_flag=True, help="Also Inception FID with the offline weights (images).")
@click.option("--inception-num", default=None, type=click.IntRange(min=2), help="Samples for Inception FID (images).")
@click.option(
    "--budget",
    default=None,
    type=click.IntRange(min=1),
    help="D evaluations per sample for every method (images) [default: the model's DDLS steps].",
)
@click.option(
    "--real",
    default=None,
    metavar="DIR|FILE|cifar10-train",
    help="Real images (folder, .npz/.pt/.safetensors, uint8 or in the model's range): every row's Inception "
    "FID/KID/IS/PRDC for any image model; for a 1x28x28 model the extra Inception FID (implies --inception).",
)
@click.option("--real-num", "num_real", default=None, type=click.IntRange(min=2), help="Use the first N real images.")
@click.option(
    "--labels",
    default=None,
    metavar="FILE",
    help="The real images' class labels (.npy/.npz/.pt/.safetensors/.txt): the (cal) rows of a "
    "class-conditional model (images).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed, 0..2**63-1 (images).")
@click.option("--quick", is_flag=True, help="CI size.")
@click.option("--out", default=None, metavar="PATH", help="results JSON (toy2d) or folder (images).")
@click.option("--quiet", is_flag=True)
def bench_cmd(
    suite,
    models,
    num,
    seeds,
    method_list,
    inception,
    inception_num,
    real,
    num_real,
    labels,
    budget,
    seed,
    quick,
    out,
    quiet,
):
    """Run a benchmark suite; writes JSON and a markdown table, prints the table.

    \b
    Examples:
      latentflow bench toy2d --num-samples 5000 --seeds 3
      latentflow bench images --model dcgan-fashion -n 2000
      latentflow bench images --model DIR --real test.npz --labels test_labels.npy -n 500
    """
    extra = {}
    if real is not None or num_real is not None or labels is not None:
        if suite != "images":
            raise app.OptionError(f"--real: only the images suite compares with real images; got suite {suite}")
        extra = {"real": real, "num_real": num_real, "labels": labels}
    code = app.run_suite(
        suite,
        out=out,
        seed=seed,
        echo=click.echo,
        models=models,
        num=num,
        seeds=seeds,
        **extra,
        methods=method_list.split(",") if method_list else None,
        quick=quick,
        inception=inception,
        inception_num=inception_num,
        budget=budget,
        progress=not quiet,
    )
    sys.exit(code)


@main.group("train")
def train_group():
    """Train the models the project ships (GANs, Discriminator Flow, Score GAN) or a corrector D for any G."""


def _train_command(kind: str):
    @click.option(
        "--data", default=None, help="Dataset: grid25, ring8, swissroll, fashion-mnist, mnist32 (per trainer)."
    )
    @click.option(
        "--model",
        "model_ref",
        default=None,
        metavar="M",
        help="corrector: the model whose generator gets a new D (name, hf:owner/repo or folder).",
    )
    @click.option(
        "--real",
        default=None,
        metavar="PATH",
        help="corrector: real samples, a dataset name or a .safetensors/.npy/.npz/.pt file.",
    )
    @click.option("--steps", default=None, type=click.IntRange(min=1), help="Training steps.")
    @click.option("--batch-size", default=None, type=click.IntRange(min=1))
    @click.option("--seed", default=None, type=int)
    @click.option("--device", default=None, metavar="cpu|cuda")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any other config field (see --dry-run).")
    @click.option(
        "--preset",
        default=None,
        metavar="NAME",
        help="A named recipe to start from (dflow: fmnist-cpu, ...); the other options override it.",
    )
    @click.option("--out", required=True, metavar="DIR")
    @click.option("--no-resume", is_flag=True, help="Start over even if DIR holds a checkpoint.")
    @click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def cmd(data, model_ref, real, steps, batch_size, seed, device, sets, preset, out, no_resume, dry_run, quiet):
        import dataclasses

        Config, train_fn = app.get_trainer(kind)
        if seed is not None:
            app.check_seed(seed)
        fields = {f.name for f in dataclasses.fields(Config)}
        kw = {}
        if preset is not None:
            presets = app.trainer_presets(kind)
            if preset not in presets:
                raise click.BadParameter(
                    f'unknown preset "{preset}" for {kind}.{app.suggest(preset, presets)} '
                    f"Valid: {', '.join(presets) or 'none (this trainer has no presets)'}",
                    param_hint="--preset",
                )
            kw.update(presets[preset])
        kw.update(
            {
                k: v
                for k, v in dict(
                    data=data, model=model_ref, real=real, steps=steps, batch_size=batch_size, seed=seed, device=device
                ).items()
                if v is not None
            }
        )
        kw.update(app.parse_config_options(Config, sets))
        bad = sorted(set(kw) - fields)
        if bad:
            raise click.BadParameter(
                f"unknown config field(s) {', '.join(bad)} for {kind}."
                f"{app.suggest(bad[0], fields)} Valid: {', '.join(sorted(fields))}",
                param_hint="--set",
            )
        cfg = Config(**kw)
        if hasattr(cfg, "validate"):
            cfg.validate()
        if dry_run:
            click.echo(json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
            return
        app.check_writable(out, name="--out")  # a file, a read-only file system: refused before any compute
        app.check_parallel_trainer(kind)  # under torchrun: gan and scoregan run data-parallel
        with _writing(out, "the last checkpoint is kept: run again to resume"):
            train_fn(cfg, out, progress=not quiet, resume=not no_resume)
        if app.is_main():
            click.echo(f"wrote {out}")

    cmd.__doc__ = f"Train a {kind} model (resumable from DIR's checkpoint; --dry-run shows the config)."
    return cmd


def _register_train_commands():
    for kind in app.trainer_kinds():
        train_group.command(kind)(_train_command(kind))


_register_train_commands()


@main.command("convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, metavar="DIR")
@click.option("--arch-g", required=True, help="Architecture name of G (see latentflow.models.zoo).")
@click.option("--arch-d", required=True, help="Architecture name of D.")
@click.option("--kwargs-g", default=None, metavar="JSON", help="Keyword arguments of G's architecture.")
@click.option("--kwargs-d", default=None, metavar="JSON", help="Keyword arguments of D's architecture.")
@click.option(
    "--d-path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="D's file when G and D are saved separately (StudioGAN).",
)
@click.option("--latent-dim", default=None, type=click.IntRange(min=1))
@click.option("--prior", default="normal", type=click.Choice(["normal", "uniform"]), show_default=True)
@click.option("--d-output", default="logit", type=click.Choice(["logit", "prob", "critic"]), show_default=True)
@click.option("--use-ema", is_flag=True, help="Take G's EMA weights when the checkpoint has them.")
@click.option("--name", default="converted", show_default=True)
@click.option("--dataset", default=None, help="Dataset the pair was trained on (for metrics).")
def convert_cmd(
    src, out, arch_g, arch_d, kwargs_g, kwargs_d, d_path, latent_dim, prior, d_output, use_ema, name, dataset
):
    """Turn a .pt/.pth/.ckpt G/D pair into safetensors + latentflow.json (read with weights_only=True).

    \b
    Example:
      latentflow convert netG_netD.pth --arch-g dcgan32_g --arch-d dcgan32_d --latent-dim 100 --out my-gan
      latentflow sample --model my-gan
    """
    kg, kd = _json_arg(kwargs_g, "--kwargs-g"), _json_arg(kwargs_d, "--kwargs-d")
    app.check_writable(out, name="--out")
    with _writing(out, "the folder is as it was"):
        app.convert(
            src,
            out,
            arch_g=arch_g,
            arch_d=arch_d,
            kwargs_g=kg,
            kwargs_d=kd,
            d_path=d_path,
            latent_dim=latent_dim,
            prior=prior,
            d_output=d_output,
            use_ema=use_ema,
            name=name,
            dataset=dataset,
        )
    click.echo(f"wrote {out}")


@main.command("export")
@click.argument("model")
@click.option("--out", required=True, metavar="DIR")
@click.option(
    "--metric",
    "metric_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A measured metric for the model card, e.g. --metric fid=12.3 (repeatable).",
)
@click.option("--tag", "tags", multiple=True, help="An extra Hub tag for the model card (repeatable).")
@click.option("--repo-id", default=None, metavar="OWNER/REPO", help="The Hub repo, for the card's usage lines.")
@click.option("--no-card", is_flag=True, help="Do not write the model card README.md.")
def export_cmd(model, out, metric_pairs, tags, repo_id, no_card):
    """Write a model as G.safetensors + D.safetensors + latentflow.json and a model card README.md
    (uploadable to the Hub)."""
    metrics = app.parse_pairs(metric_pairs, float, name="--metric")
    app.check_writable(out, name="--out")
    with _writing(out, "the folder is as it was"):
        app.export(model, out, card=not no_card, metrics=metrics or None, tags=list(tags), repo_id=repo_id)
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
