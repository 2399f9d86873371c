"""What several commands share: a choice with a close-match hint, and the one-line refusal of a write."""

from __future__ import annotations

import contextlib

import click

from .. import app
from ..app import OutputError


class Choice(click.Choice):
    """``click.Choice`` whose refusal adds a close-match suggestion (a usage error: exit code 2)."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as e:
            raise click.BadParameter(e.message + app.suggest(value, self.choices), ctx=ctx, param=param) from None


@contextlib.contextmanager
def writing(out: str, kept: str, option: str = "--out"):
    """A write the file system refuses (full, read-only) ends the command with one line naming ``option``
    and what is left (``kept``)."""
    try:
        yield
    except OutputError as e:
        what = f"cannot write {e.path.rsplit('/', 1)[-1]}: {e.reason}" if e.path and e.reason else str(e)
        raise OutputError(f"{option} {out!r}: {what}; {kept}", reason=e.reason, path=e.path) from None


# -- options several commands take (one declaration each; the help text says what this command does with it)


def num_option(default: int | None, help: str):
    """``-n`` / ``--num-samples`` / ``--num``: how many samples (``num`` in the command's arguments)."""
    return click.option(
        "-n", "--num-samples", "--num", "num", default=default, show_default=default is not None,
        type=click.IntRange(min=1), help=help,
    )  # fmt: skip


def real_option(help: str, metavar: str = "DIR|FILE", required: bool = False):
    """``--real``: real samples or images (a folder, a file or a registered name)."""
    return click.option("--real", default=None, required=required, metavar=metavar, help=help)


def labels_option(help: str):
    """``--labels``: class labels of the ``--real`` samples (a file)."""
    return click.option("--labels", default=None, metavar="FILE", help=help)


def pairs_option(flag: str, dest: str, help: str, metavar: str = "KEY=VALUE"):
    """A repeatable ``flag KEY=VALUE`` option, collected in ``dest`` (parsed by :func:`latentflow.app.parse_pairs`)."""
    return click.option(flag, dest, multiple=True, metavar=metavar, help=help)


def seed_option(help: str = "Seed, 0..2**63-1."):
    """``--seed`` (default 0)."""
    return click.option("--seed", default=0, show_default=True, type=int, help=help)
