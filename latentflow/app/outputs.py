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
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import uuid
from pathlib import Path

from ..errors import OptionError

log = logging.getLogger("latentflow")

__all__ = ["check_writable", "check_out_file", "OutputSet", "MAX_SEED", "check_seed"]

#: the largest seed ``torch.Generator.manual_seed`` takes without wrapping (seeds are 0..2**63-1)
MAX_SEED = 2**63 - 1


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in 0..2**63-1, else ``OptionError`` naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise OptionError(f"{name} must be an int in 0..2**63-1; got {seed!r}")
    return int(seed)


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(folder: str | os.PathLike, name: str = "out") -> Path:
    """Refuse (``OptionError`` naming ``name``) a folder that is a file, or that cannot be created or
    written (its nearest existing ancestor is not a writable folder). Creates nothing."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise OptionError(f"{name} must be a folder; {str(out)!r} is a file")
    anc = _existing_ancestor(out.parent if not out.exists() else out)
    if not anc.is_dir():
        raise OptionError(f"{name} {str(out)!r} cannot be created: {str(anc)!r} is a file")
    # the staging folder and the lock live beside ``out``: its parent must be writable too
    for p in {anc, _existing_ancestor(out.parent)}:
        if not os.access(p, os.W_OK | os.X_OK):
            raise OptionError(f"{name} {str(out)!r} is not writable ({str(p)!r} does not allow writing)")
    return out


def check_out_file(path: str | os.PathLike, name: str = "out") -> Path:
    """Refuse a file path that is a folder or whose folder cannot be created or written."""
    p = Path(path)
    if p.is_dir():
        raise OptionError(f"{name} must be a file path; {str(p)!r} is a folder")
    check_writable(p.parent, name=f"{name}'s folder")
    return p


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


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
        self.out = check_writable(out)
        self.names, self.what = tuple(names), what
        self.allowed = set(self.names) | set(allowed)  # names a previous set may hold (other formats)
        self.run_id = uuid.uuid4().hex[:12]
        parent, base = self.out.parent, self.out.name
        self.lock = parent / f".{base}.lock"
        self.staging = parent / f".{base}.staging-{self.run_id}"
        self._old = parent / f".{base}.old-{self.run_id}"
        self._locked = False
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
        self.out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run_id": self.run_id})
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                try:
                    held = json.loads(self.lock.read_text() or "{}")
                except (OSError, ValueError):
                    held = {}
                pid = held.get("pid")
                same_host = held.get("host") in (None, socket.gethostname())
                if isinstance(pid, int) and (_alive(pid) or not same_host):
                    raise OptionError(
                        f"another {self.what} (pid {pid} on {held.get('host')}) is writing "
                        f"{str(self.out)!r}; wait for it to finish or use another --out "
                        f"(lock: {self.lock})"
                    ) from None
                log.warning("taking over the stale lock %s (pid %s no longer runs)", self.lock, pid)
                self.lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(text)
            self._locked = True
            return
        raise OptionError(f"could not take the lock {self.lock}; another run is starting into {str(self.out)!r}")

    def __enter__(self) -> OutputSet:
        try:
            self._take_lock()
        except OSError as e:  # os.access said yes, the file system says no (read-only mounts, /proc, ...)
            raise OptionError(
                f"out {str(self.out)!r} is not writable: {e.strerror or e} ({e.filename or self.lock})"
            ) from None
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
        if self._locked:
            self.lock.unlink(missing_ok=True)
            self._locked = False

    def __exit__(self, *exc) -> None:
        try:
            shutil.rmtree(self.staging, ignore_errors=True)
        finally:  # the lock goes even when the clean-up is interrupted
            self._release()
