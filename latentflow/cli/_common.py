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
