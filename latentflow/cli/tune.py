"""``latentflow tune``: pick the method and settings that improve a model on held-out real samples."""

from __future__ import annotations

import json

import click

from .. import app
from ._common import labels_option, real_option, seed_option


@click.command("tune")
@click.option("--model", required=True, help="Manifest name, hf:owner/repo, a model folder or its latentflow.json.")
@real_option("Real samples: .npz / .safetensors / .pt (weights_only) file or an image folder.", "PATH", required=True)
@labels_option("Class labels of the real samples (.npy/.npz/.pt).")
@click.option(
    "--features",
    default=None,
    type=click.Choice(["inception", "raw"]),
    help="Feature rows for FID/KID [default: Inception for images, raw for points].",
)
@click.option(
    "--budget",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="D evaluations per sample a candidate may use.",
)
@click.option("--time-budget", default=None, type=click.FloatRange(min=0, min_open=True), help="CPU seconds.")
@click.option(
    "--metric",
    default=None,
    type=click.Choice(["fid", "kid", "emd", "fid_recall"]),
    help="[default: emd for 2-D points, else fid]",
)
@click.option("--out", default=None, type=click.Path(), help="Folder for tune.json, tune.md and tune.png.")
@seed_option()
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document instead of the table.")
def tune_cmd(model, real, labels, features, budget, time_budget, metric, out, seed, quiet, as_json):
    """Pick the method and settings that improve MODEL on held-out real samples (latentflow.tune)."""
    from pathlib import Path

    if not Path(real).exists():
        raise app.OptionError(f"--real: no such file or folder: {real}")
    seed = app.check_seed(seed)
    if out is not None:
        app.check_writable(out)
    opts = dict(labels=labels, features=features, time_budget=time_budget, metric=metric)
    doc = app.run_tune(model, real, budget=budget, out=out, seed=seed, quiet=quiet, **opts)
    if as_json:
        click.echo(app.json_text(doc))
        return
    click.echo(doc.get("table_md") or "")
    click.echo(f"recommended: {doc['method']} {json.dumps(doc.get('options') or {})}")
    if out is not None:
        click.echo(f"wrote {out}/tune.json, {out}/tune.md, {out}/tune.png")
