"""Output folders that are one set: checked before any compute, locked, written aside, renamed into place.

``latentflow sample --out DIR`` writes three files that belong together (samples, picture, report).
:class:`OutputSet` writes them into a staging folder beside ``DIR`` (``.DIR.staging-<run id>``) and, when
all are written, renames it to ``DIR``: a reader sees the previous complete set, or the new complete
set, never a mix. When ``DIR`` already holds a previous set it is first renamed aside
(``.DIR.old-<run id>``) and removed after the new set is in place, so between those two renames ``DIR``
is briefly absent (never half written). A folder holding anything but a previous set is refused, so
that replacing it cannot delete a user's files.

A run killed by a signal leaves its staging folder (and, between the two renames, the previous set moved
aside) beside ``DIR``: the next run into ``DIR``, once it holds the lock, removes the staging folders and
puts a previous set that was moved aside back when ``DIR`` is absent, then writes as above.

A lock file beside the folder (``.DIR.lock``, holding the writer's pid and host) refuses a second
concurrent run into the same ``DIR``; a lock left by a process that no longer runs is taken over.

``DIR`` given as a symbolic link to a folder is written where the link points (the staging folder and the
lock beside the target); the link stays. A write the file system refuses (full, read-only) ends the run
with one ``OutputError`` naming ``DIR``; the staging folder is removed and a previous set is kept.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from .._io import FolderLock, check_writable, output_error
from ..errors import OptionError, OutputError

log = logging.getLogger("latentflow")

__all__ = ["check_writable", "check_out_file", "OutputSet", "MAX_SEED", "check_seed"]

#: the largest seed ``torch.Generator.manual_seed`` takes without wrapping (seeds are 0..2**63-1)
MAX_SEED = 2**63 - 1


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in 0..2**63-1, else ``OptionError`` naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise OptionError(f"{name} must be an int in 0..2**63-1; got {seed!r}")
    return int(seed)


def check_out_file(path: str | os.PathLike, name: str = "out") -> Path:
    """Refuse a file path that is a folder or whose folder cannot be created or written."""
    p = Path(path)
    if p.is_dir():
        raise OptionError(f"{name} must be a file path; {str(p)!r} is a folder")
    check_writable(p.parent, name=f"{name}'s folder")
    return p


class OutputSet:
    """Lock ``out``, give a staging folder for the set's files, and rename it into place on :meth:`commit`.

    Use as a context manager: ``with OutputSet(out, names) as s: write(s.staging / name) ...; s.commit()``.
    ``names`` are the files of this set (all must be written before :meth:`commit`); a folder holding
    files other than ``names`` and ``allowed`` (those a previous set may hold) is refused before any compute.
    Leaving the block without :meth:`commit` removes the staging folder; the lock is always released."""

    def __init__(
        self,
        out: str | os.PathLike,
        names: tuple[str, ...],
        what: str = "latentflow sample",
        allowed: tuple[str, ...] = (),
    ):
        self.given = out
        self.out = check_writable(out)  # a link: its target
        self.names, self.what = tuple(names), what
        self.allowed = set(self.names) | set(allowed)  # names a previous set may hold (other formats)
        self.run_id = uuid.uuid4().hex[:12]
        parent, base = self.out.parent, self.out.name
        self.lock = parent / f".{base}.lock"
        self.staging = parent / f".{base}.staging-{self.run_id}"
        self._old = parent / f".{base}.old-{self.run_id}"
        self._lock = FolderLock(self.lock, self.out, self.what, self.run_id)
        if self.out.is_dir():
            foreign = sorted(p.name for p in self.out.iterdir() if p.name not in self.allowed)
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise OptionError(
                    f"out {str(self.out)!r} holds files that are not a previous {what} output "
                    f"({shown}); use a new or empty folder"
                )

    # -- lock ------------------------------------------------------------------------------------
    def _take_lock(self) -> None:
        self._lock.acquire()

    @property
    def _locked(self) -> bool:
        return self._lock.held

    def __enter__(self) -> OutputSet:
        self._take_lock()
        try:
            self._tidy()
            self.staging.mkdir()
        except OSError as e:
            self._release()
            raise OptionError(
                f"out {str(self.out)!r} is not writable: {e.strerror or e} ({e.filename or self.staging})"
            ) from None
        except BaseException:
            self._release()
            raise
        return self

    def _tidy(self) -> None:
        """With the lock held, remove what killed runs left beside ``out``: staging folders, and a previous
        set moved aside (put back when the kill came before the new set was renamed into place)."""
        parent, base = self.out.parent, self.out.name
        for p in parent.glob(f".{base}.staging-*"):
            shutil.rmtree(p, ignore_errors=True)
        olds = sorted(parent.glob(f".{base}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds and not self.out.exists():
            os.rename(olds.pop(), self.out)
        for p in olds:
            shutil.rmtree(p, ignore_errors=True)

    def commit(self) -> Path:
        """Rename the staging folder to ``out`` (a previous set is moved aside first, then removed)."""
        missing = [n for n in self.names if not (self.staging / n).exists()]
        if missing:
            raise OptionError(f"output set incomplete: {', '.join(missing)} not written")
        had_old = self.out.exists()
        if had_old:
            os.rename(self.out, self._old)
        os.rename(self.staging, self.out)
        if had_old:
            shutil.rmtree(self._old, ignore_errors=True)
        return self.out

    def _release(self) -> None:
        self._lock.release()

    def __exit__(self, typ, exc, tb) -> None:
        try:
            shutil.rmtree(self.staging, ignore_errors=True)
        finally:  # the lock goes even when the clean-up is interrupted
            self._release()
        err = output_error(exc, self.out) if exc is not None else None
        if err is not None:  # the file system refused a write: say so in one line, naming out
            kept = "the previous set is kept" if self.out.is_dir() else "nothing was written"
            raise OutputError(
                f"out {str(self.given)!r}: cannot write the output set: {err.reason or err}; {kept}",
                reason=err.reason,
                path=err.path,
            ) from None
