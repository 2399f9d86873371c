"""The ``latentflow`` command line: a thin click shell over the app layer (:mod:`latentflow.app`).

One module per command group (``sample``, ``catalog``: methods and models, ``bench``, ``train``,
``export``: convert and export, ``tune``); this root holds the group, its logging and its error lines.

Options left unset are not passed on, so the library's defaults (and a model's recommended sampler
settings from the manifest) are the only defaults. Every error of the ``LatentflowError`` family (wrong
option types, an unwritable ``--out``, a seed out of range, unknown names) is printed as one line
``error: ...`` with exit code 1, no traceback; arguments are checked before any compute. Option names
are chosen so that none is a prefix of a ``torchrun`` option (``-n``/``--num-samples``; ``--num`` is kept
as an alias, see ``TORCHRUN_ALIASES``).
"""

from __future__ import annotations

import logging
import sys
import warnings

import click

from .. import app
from ..app import DivergenceWarning, LatentflowError
from . import bench, catalog, export, sample, train, tune

#: options of ours that are prefixes of torchrun options (``--num`` of ``--numa-binding``): kept for
#: compatibility, each beside a safe spelling of the same option; under ``torchrun`` use the safe one
TORCHRUN_ALIASES = {"--num": "--num-samples"}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


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


for _command in (
    sample.sample,
    tune.tune_cmd,
    catalog.methods_cmd,
    catalog.models_cmd,
    bench.bench_cmd,
    train.train_group,
    export.convert_cmd,
    export.export_cmd,
):
    main.add_command(_command)
