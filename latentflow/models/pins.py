"""Hash checks before anything is deserialised, and the pins of files the manifest has no hash for.

A file without a known SHA-256 is pinned on first use into ``pins.json`` in :func:`latentflow._io.cache_dir`
(``$LATENTFLOW_CACHE``, else ``$XDG_CACHE_HOME/latentflow``, else ``~/.cache/latentflow``) and checked
against the pin on every later load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .._io import atomic_write_text, cache_dir, sha256_file
from ..errors import IntegrityError

log = logging.getLogger("latentflow")

__all__ = ["cache_dir", "sha256_file", "pins_path", "read_pins", "pin", "pin_key", "verify"]


def pins_path() -> Path:
    return cache_dir() / "pins.json"


def read_pins() -> dict[str, str]:
    p = pins_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IntegrityError(f"the pin file {p} cannot be read ({e}); fix or delete it", path=str(p)) from e
    if not isinstance(data, dict):
        raise IntegrityError(f"the pin file {p} must hold a JSON object; delete it to start again", path=str(p))
    return {str(k): str(v) for k, v in data.items()}


def pin(key: str, sha256: str) -> None:
    """Record ``sha256`` for ``key`` (an ``hf:repo@rev/file`` or URL) in the pin file."""
    pins = read_pins()
    pins[key] = sha256
    atomic_write_text(pins_path(), json.dumps(pins, indent=1, sort_keys=True) + "\n")


def pin_key(entry, role: str) -> str | None:
    """The pin-file key of ``entry``'s ``role`` file: ``hf:<repo>@<revision>/<path>`` or its URL; None for
    bundled and local files (those are never pinned)."""
    src, path = entry.source, entry.files[role].path
    if src["kind"] == "hub":
        return f"hf:{src['repo_id']}@{src['revision']}/{path}"
    if src["kind"] == "url":
        return f"{src['base_url'].rstrip('/')}/{path}"
    return None


#: what to do about a file whose hash does not match, by where it comes from (the manifest's source kind)
MISMATCH_ADVICE = {
    "bundled": "it ships inside the installed latentflow package, which is damaged: reinstall latentflow "
    "(pip install --force-reinstall latentflow)",
    "local": "the folder's file changed after latentflow.json was written: export the model again, or restore the file",
    "hub": "delete it from the Hugging Face cache and fetch it again",
    "url": "delete it from the latentflow cache and fetch it again",
}


def verify(path: str | Path, expected: str | None, *, key: str | None = None, source: str | None = None) -> str:
    """Check the SHA-256 of ``path`` against ``expected`` (or the pin for ``key``; pin it if there is none).

    Runs before the file is deserialised. Returns the hash; raises ``IntegrityError(expected, got, path)``,
    whose advice fits ``source`` (the manifest's source kind: a bundled file is not in any cache)."""
    got = sha256_file(path)
    if expected is not None:
        if got != expected:
            advice = MISMATCH_ADVICE.get(source or "", "delete it from the cache and fetch it again")
            raise IntegrityError(
                f"SHA-256 mismatch for {path}: expected {expected}, got {got}. The file is corrupt "
                f"or was replaced; {advice}.",
                expected=expected,
                got=got,
                path=str(path),
            )
        return got
    if key is None:
        log.info("%s has no recorded SHA-256 (a local file); its sha256 is %s", path, got)
        return got
    pinned = read_pins().get(key)
    if pinned is None:
        pin(key, got)
        log.warning("pinned SHA-256 %s for %s on first download (the manifest has no hash for it yet)", got, key)
    elif pinned != got:
        raise IntegrityError(
            f"SHA-256 mismatch for {path}: the hash pinned on first download ({pins_path()}) is "
            f"{pinned}, the file now has {got}. Delete the file (or the pin) only if you trust "
            "the new content.",
            expected=pinned,
            got=got,
            path=str(path),
        )
    return got
