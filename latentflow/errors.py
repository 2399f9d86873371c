"""The one error family of latentflow.

Every error a user can cause subclasses :class:`LatentflowError`, itself a ``ValueError`` so that
``except ValueError`` keeps working. Messages name the argument, what was expected and what came.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LatentflowError(ValueError):
    """Base class of every error latentflow raises for bad input, models or files."""


class ShapeError(LatentflowError):
    """A tensor (an argument, or what G or D returned) has the wrong shape or dtype."""


class OptionError(LatentflowError):
    """An unknown method, an unknown option, or an option value out of range."""


class ManifestError(LatentflowError):
    """A malformed manifest entry, an unknown model name, or an unusable model reference."""


class IntegrityError(LatentflowError):
    """A file whose SHA-256 does not match the pinned value, or a state dict that does not fit."""

    def __init__(self, message: str, *, expected: str | None = None, got: str | None = None, path: str | None = None):
        super().__init__(message)
        self.expected = expected
        self.got = got
        self.path = path

    @classmethod
    def check_digest(cls, path, algorithm: str, expected: str, got: str, source: str = "") -> None:
        """Raise the error of a file whose ``algorithm`` digest ``got`` is not ``expected`` (pinned in
        ``source``, named in the message when given)."""
        if got != expected:
            where = f" (from {source})" if source else ""
            raise cls(
                f"{path}: {algorithm} expected {expected}{where}; got {got}", expected=expected, got=got, path=str(path)
            )


class OutputError(LatentflowError):
    """A file or folder could not be written: the file system is full or read-only, or permission is
    missing. Nothing partial is left behind (writes go to a temporary file that is removed). ``reason``: the
    file system's answer in words (e.g. "read-only file system")."""

    def __init__(self, message: str, *, reason: str | None = None, path: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.path = path


class DivergenceError(LatentflowError):
    """Every chain of a sampler diverged (non-finite values); raised only when nothing usable is left."""


class DivergenceWarning(UserWarning):
    """Some chains diverged (non-finite values, or past a method's bound) and were frozen at their last good state."""


def suggest(name: object, choices: Iterable) -> str:
    """``' Did you mean "x"?'`` for the closest of ``choices`` to ``name`` (difflib), or ``""``: the one
    close-match hint of every "unknown name" message (methods, options, models, architectures, presets)."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' Did you mean "{close[0]}"?' if close else ""
