"""``latentflow train KIND``: one command per trainer, built from its config record."""

from __future__ import annotations

import json

import click

from .. import app
from ._common import pairs_option, real_option, writing


@click.group("train")
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
    @real_option("corrector: real samples, a dataset name or a .safetensors/.npy/.npz/.pt file.", "PATH")
    @click.option("--steps", default=None, type=click.IntRange(min=1), help="Training steps.")
    @click.option("--batch-size", default=None, type=click.IntRange(min=1))
    @click.option("--seed", default=None, type=int)
    @click.option("--device", default=None, metavar="cpu|cuda")
    @click.option(
        "--preset",
        default=None,
        metavar="NAME",
        help="A named recipe to start from (dflow: fmnist-cpu, ...); the other options override it.",
    )
    @pairs_option("--set", "sets", "Any other config field (see --dry-run).")
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
        with writing(out, "the last checkpoint is kept: run again to resume"):
            train_fn(cfg, out, progress=not quiet, resume=not no_resume)
        if app.is_main():
            click.echo(f"wrote {out}")

    cmd.__doc__ = f"Train a {kind} model (resumable from DIR's checkpoint; --dry-run shows the config)."
    return cmd


def _register_train_commands():
    for kind in app.trainer_kinds():
        train_group.command(kind)(_train_command(kind))


_register_train_commands()
