"""``latentflow bench``: run a benchmark suite."""

from __future__ import annotations

import sys

import click

from .. import app
from ._common import Choice, labels_option, num_option, real_option, seed_option


@click.command("bench")
@click.argument("suite", type=Choice(app.suite_names()))
@click.option("--model", "models", multiple=True, help="Model(s) to benchmark [default: the suite's].")
@num_option(None, "Samples per method (and seed); --num is an alias.")
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
@real_option(
    "Real images (folder, .npz/.pt/.safetensors, uint8 or in the model's range): every row's Inception "
    "FID/KID/IS/PRDC for any image model; for a 1x28x28 model the extra Inception FID (implies --inception).",
    "DIR|FILE|cifar10-train",
)
@click.option("--real-num", "num_real", default=None, type=click.IntRange(min=2), help="Use the first N real images.")
@labels_option(
    "The real images' class labels (.npy/.npz/.pt/.safetensors/.txt): the (cal) rows of a "
    "class-conditional model (images)."
)
@seed_option("Seed, 0..2**63-1 (images).")
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
