"""``latentflow convert`` and ``latentflow export``: a model pair in and out as safetensors + latentflow.json."""

from __future__ import annotations

import json

import click

from .. import app
from ._common import pairs_option, writing


def _json_arg(text: str | None, name: str):
    """A JSON option's value (``None`` when not given); ``OptionError`` naming ``name`` when not JSON."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise app.OptionError(f"{name} must be JSON (e.g. '{{\"latent_dim\": 100}}'); got {text!r} ({e})") from None


@click.command("convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, metavar="DIR")
@click.option("--arch-g", required=True, help="Architecture name of G (see latentflow.nets).")
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
    with writing(out, "the folder is as it was"):
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


@click.command("export")
@click.argument("model")
@click.option("--out", required=True, metavar="DIR")
@pairs_option(
    "--metric",
    "metric_pairs",
    "A measured metric for the model card, e.g. --metric fid=12.3 (repeatable).",
    "NAME=VALUE",
)
@click.option("--tag", "tags", multiple=True, help="An extra Hub tag for the model card (repeatable).")
@click.option("--repo-id", default=None, metavar="OWNER/REPO", help="The Hub repo, for the card's usage lines.")
@click.option("--no-card", is_flag=True, help="Do not write the model card README.md.")
def export_cmd(model, out, metric_pairs, tags, repo_id, no_card):
    """Write a model as G.safetensors + D.safetensors + latentflow.json and a model card README.md
    (uploadable to the Hub)."""
    metrics = app.parse_pairs(metric_pairs, float, name="--metric")
    app.check_writable(out, name="--out")
    with writing(out, "the folder is as it was"):
        app.export(model, out, card=not no_card, metrics=metrics or None, tags=list(tags), repo_id=repo_id)
    click.echo(f"wrote {out}")
