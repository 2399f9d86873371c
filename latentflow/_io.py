"""File system helpers shared by every layer: atomic writes that honour the umask, file hashes and the
one cache directory.

An atomic write goes to a temporary file in the destination's folder and is renamed over the
destination (``os.replace``), so a reader sees the old file or the new one, never half of one. The
temporary file is created 0600 by ``mkstemp``; before the rename it gets the mode an ordinary
``open(path, "w")`` would give (``0666 & ~umask``), so outputs are readable by whoever the user's umask
allows. A write the file system refuses (full, read-only, no permission) removes the temporary file and
raises :class:`~latentflow.errors.OutputError` naming the file and the reason, in one line.

safetensors files are written with their header in a canonical order (the ``__metadata__`` keys sorted):
the same tensors and metadata give the same bytes in every process.

:func:`staged_folder` writes several files that belong together aside and moves them into their folder
only when all are written; :class:`FolderLock` refuses a second concurrent writer of a folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import OptionError, OutputError

log = logging.getLogger("latentflow")

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_safetensors",
    "sha256_file",
    "sha256_bytes",
    "cache_dir",
    "file_mode",
    "strict_json",
    "check_writable",
    "resolve_link",
    "output_error",
    "staged_folder",
    "FolderLock",
]

#: errno values that mean "this file system will not take the write" (reported as ``OutputError``)
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device (the file system is full)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
}

_CHUNK = 1 << 20


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _errno_of(e: BaseException) -> int | None:
    """The errno of an ``OSError``, or the ``os error N`` a wrapped I/O error (safetensors') names."""
    if isinstance(e, OSError) and e.errno is not None:
        return e.errno
    m = re.search(r"os error (\d+)", str(e))
    return int(m.group(1)) if m else None


def output_error(e: BaseException, path: str | os.PathLike) -> OutputError | None:
    """An ``OutputError`` (one line: the path and the reason) for an error that means the file system
    refused a write (full, read-only, no permission, quota); ``None`` for any other error."""
    if isinstance(e, OutputError):
        return e
    code = _errno_of(e)
    if code not in STORAGE_ERRNOS:
        return None
    reason = f"{STORAGE_ERRNOS[code]} (errno {code})"
    return OutputError(f"cannot write {str(path)!r}: {reason}", reason=reason, path=str(path))


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def resolve_link(path: str | os.PathLike) -> Path:
    """``path``, or, when it is a symbolic link, the path it points to (resolved): an output folder given as
    a link is written where the link points, and the link itself is left as it is."""
    p = Path(path).expanduser()
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def check_writable(folder: str | os.PathLike, name: str = "out") -> Path:
    """Refuse (``OptionError`` naming ``name``) a folder that is a file, or that cannot be created or
    written (its nearest existing ancestor is not a writable folder, or sits on a read-only file system).
    Creates nothing. A symbolic link is checked (and returned) as the folder it points to."""
    out = resolve_link(folder)
    if out.exists() and not out.is_dir():
        raise OptionError(f"{name} must be a folder; {str(out)!r} is a file")
    anc = _existing_ancestor(out.parent if not out.exists() else out)
    if not anc.is_dir():
        raise OptionError(f"{name} {str(out)!r} cannot be created: {str(anc)!r} is a file")
    # staging folders and locks live beside ``out``: its parent must be writable too
    for p in {anc, _existing_ancestor(out.parent)}:
        if not os.access(p, os.W_OK | os.X_OK):  # also EROFS for root on a read-only mount
            why = "a read-only file system" if _read_only(p) else "it does not allow writing"
            raise OptionError(f"{name} {str(out)!r} is not writable ({str(p)!r}: {why})")
    return out


def _read_only(p: Path) -> bool:
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is renamed over ``path`` with the
    umask's mode, on an exception it is removed. The parent folder is created if needed. A write the
    file system refuses (full, read-only, no permission) becomes one ``OutputError`` naming ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=suffix)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        err = output_error(e, path)
        if err is not None and err is not e:
            raise err from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def strict_json(obj):
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN/Infinity), recursively
    through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int | None = 2, default: Callable | None = None) -> None:
    """Strict JSON (non-finite numbers written as ``null``), written atomically."""
    text = json.dumps(strict_json(obj), indent=indent, sort_keys=False, default=default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def atomic_save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """``safetensors.torch.save_file`` of contiguous CPU copies of ``tensors``, written atomically, with a
    canonical header (:func:`canonical_safetensors_header`): equal inputs give equal bytes."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        canonical_safetensors_header(tmp)


def canonical_safetensors_header(path: str | os.PathLike) -> None:
    """Rewrite, in place, the JSON header of the safetensors file ``path`` with its ``__metadata__`` keys
    sorted. safetensors writes the metadata from a hash map whose order changes from process to process,
    so the same tensors and metadata would give other bytes; the tensors' entries keep their order (that
    of their data). The new header has the same length (padded with spaces, as safetensors pads), so the
    data is not moved; a longer one (never expected: the same JSON in another order) rewrites the file."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        header = json.loads(raw.decode("utf-8"))
        meta = header.get("__metadata__")
        if not isinstance(meta, dict):
            return
        ordered = {"__metadata__": dict(sorted(meta.items()))}
        ordered.update((k, v) for k, v in header.items() if k != "__metadata__")
        new = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(new) <= n:
            f.seek(8)
            f.write(new + b" " * (n - len(new)))
            return
        data = f.read()
    pad = (-(8 + len(new))) % 8
    with open(path, "wb") as f:
        f.write((len(new) + pad).to_bytes(8, "little") + new + b" " * pad + data)


def sha256_file(path: str | os.PathLike) -> str:
    """Full SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike, *, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty staging folder beside ``folder`` (``.NAME.staging-<id>``, same file system); on a clean
    exit its files are moved into ``folder`` (created if needed; files of the same names are replaced, the
    names in ``last`` are moved last), on an exception it is removed and ``folder`` is as it was. Every
    file is complete before any is moved, so a full disk or a refused write leaves nothing partial: the
    moves need no space. A symbolic link ``folder`` is written where it points."""
    folder = resolve_link(folder)
    stage = folder.parent / f".{folder.name}.staging-{uuid.uuid4().hex[:12]}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    except OSError as e:
        raise (output_error(e, folder) or e) from None
    try:
        yield stage
        if not folder.exists():
            os.rename(stage, folder)
            return
        names = sorted(p.name for p in stage.iterdir())
        for name in [n for n in names if n not in last] + [n for n in last if n in names]:
            os.replace(stage / name, folder / name)
    except BaseException as e:
        err = output_error(e, folder)
        if err is not None and err is not e:
            raise err from None
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


class FolderLock:
    """A lock file (``path``, holding the writer's pid, host and run id) that refuses a second concurrent
    writer of ``target`` with one ``OptionError``; a lock left by a process that no longer runs (same host)
    is taken over. ``what`` names the writer in the message (``"latentflow sample"``)."""

    def __init__(self, path: str | os.PathLike, target: str | os.PathLike, what: str, run_id: str | None = None):
        self.path, self.target, self.what = Path(path), Path(target), what
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.held = False

    def acquire(self) -> None:
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run_id": self.run_id})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for _ in range(2):
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                except FileExistsError:
                    self._refuse_or_take_over()
                    continue
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                self.held = True
                return
        except OSError as e:  # os.access said yes, the file system says no (read-only mounts, full disks)
            raise OptionError(
                f"out {str(self.target)!r} is not writable: {e.strerror or e} ({e.filename or self.path})"
            ) from None
        raise OptionError(f"could not take the lock {self.path}; another run is starting into {str(self.target)!r}")

    def _refuse_or_take_over(self) -> None:
        try:
            held = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            held = {}
        pid = held.get("pid") if isinstance(held, dict) else None
        host = held.get("host") if isinstance(held, dict) else None
        if isinstance(pid, int) and (_alive(pid) or host not in (None, socket.gethostname())):
            raise OptionError(
                f"another {self.what} (pid {pid} on {host}) is writing {str(self.target)!r}; wait for it "
                f"to finish or write elsewhere (lock: {self.path})"
            )
        log.warning("taking over the stale lock %s (pid %s no longer runs)", self.path, pid)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.held = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def cache_dir() -> Path:
    """latentflow's cache (pins, downloads, conversions, reference statistics): ``$LATENTFLOW_CACHE``,
    else ``$XDG_CACHE_HOME/latentflow``, else ``~/.cache/latentflow``."""
    env = os.environ.get("LATENTFLOW_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "latentflow"
