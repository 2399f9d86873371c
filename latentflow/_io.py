"""File system helpers shared by every layer: atomic writes that honour the umask, file hashes and the
one cache directory.

An atomic write goes to a temporary file in the destination's folder and is renamed over the
destination (``os.replace``), so a reader sees the old file or the new one, never half of one. The
temporary file is created 0600 by ``mkstemp``; before the rename it gets the mode an ordinary
``open(path, "w")`` would give (``0666 & ~umask``), so outputs are readable by whoever the user's umask
allows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

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
]

_CHUNK = 1 << 20


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is renamed over ``path`` with the
    umask's mode, on an exception it is removed. The parent folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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
    """``safetensors.torch.save_file`` of contiguous CPU copies of ``tensors``, written atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def sha256_file(path: str | os.PathLike) -> str:
    """Full SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_dir() -> Path:
    """latentflow's cache (pins, downloads, conversions, reference statistics): ``$LATENTFLOW_CACHE``,
    else ``$XDG_CACHE_HOME/latentflow``, else ``~/.cache/latentflow``."""
    env = os.environ.get("LATENTFLOW_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "latentflow"
