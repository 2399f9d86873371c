"""The rows of ``latentflow models``: one per manifest model, with where its files are and what is known
about them.

The ``checkpoints`` column of :func:`model_rows` hashes the files themselves: ``verified`` when every file on
disk hashes to the manifest's SHA-256; ``pinned`` when the manifest has no hash for some file and the file
on disk hashes to the value pinned on first use; ``not downloaded`` when some file is not on disk;
``mismatch`` when a file on disk matches neither (loading it would fail); ``unpinned`` when a file without
a manifest hash is on disk but was never loaded (so never pinned). A ``mismatch`` row carries ``advice``:
reinstall the package for a bundled file, fetch it again for a downloaded one.
"""

from __future__ import annotations

import logging

from .._io import sha256_file
from ..errors import LatentflowError
from .manifest import _packaged, list_models
from .pins import MISMATCH_ADVICE, pin_key, read_pins
from .sources import fetch, is_available_offline, local_path
from .spec import ROLES

log = logging.getLogger("latentflow")

CHECKPOINT_STATES = ("verified", "pinned", "not downloaded", "unpinned", "mismatch")

__all__ = ["models_table", "model_rows", "checkpoint_state", "CHECKPOINT_STATES"]


def _where(src) -> str:
    if src["kind"] == "hub":
        return f"hf:{src['repo_id']}@{src['revision'][:10]}"
    if src["kind"] == "url":
        return src["base_url"]
    return src["kind"]


def _safe_pins() -> dict[str, str]:
    try:
        return read_pins()
    except LatentflowError as e:  # a broken pin file must not break the listing
        log.warning("cannot read the pin file: %s", e)
        return {}


def checkpoint_state(entry, pins: dict[str, str] | None = None) -> str:
    """One of :data:`CHECKPOINT_STATES` for ``entry``'s files, found by hashing the files on disk."""
    pins = _safe_pins() if pins is None else pins
    states = []
    for role in _file_roles(entry):
        try:
            p = local_path(entry, role)
        except Exception as e:  # a broken cache must not break the listing
            log.warning("cannot check the cache for %s: %s", entry.name, e)
            p = None
        if p is None:
            return "not downloaded"
        got, want = sha256_file(p), entry.files[role].sha256
        if want is not None:
            states.append("verified" if got == want else "mismatch")
            continue
        pinned = pins.get(pin_key(entry, role) or "")
        states.append("unpinned" if pinned is None else "pinned" if pinned == got else "mismatch")
    for s in ("mismatch", "unpinned", "pinned"):
        if s in states:
            return s
    return "verified"


def _file_roles(entry) -> tuple[str, ...]:
    """One role per file: ``("G",)`` when one file holds G and D (``files: {GD: ...}``)."""
    return ROLES[:1] if getattr(entry, "combined", False) else ROLES


def _row(name: str, pins: dict[str, str]) -> dict:
    e = _packaged()[name]
    sizes = [e.files[r].bytes for r in _file_roles(e)]
    try:
        offline = is_available_offline(e)
    except Exception as exc:  # a broken cache must not break the listing
        log.warning("cannot check the cache for %s: %s", name, exc)
        offline = False
    if None in sizes and offline:
        try:
            sizes = [fetch(e, r).stat().st_size for r in _file_roles(e)]
        except LatentflowError:
            pass
    keys = [pin_key(e, r) for r in ROLES]
    known = [s for s in sizes if s is not None]
    return {
        "name": name,
        "source": _where(e.source),
        "offline": bool(offline),
        "bytes": int(sum(known)) if len(known) == len(sizes) else None,
        "verified": bool(e.verified),
        "pinned": all(k is not None and k in pins for k in keys),
    }


def models_table() -> list[dict]:
    """One row per manifest model: ``name``, ``source``, ``offline`` (files already on disk), ``bytes`` (total
    size, None while unknown), ``verified`` (hashes in the manifest) and ``pinned`` (hashes pinned locally)."""
    pins = _safe_pins()
    return [_row(name, pins) for name in list_models()]


def model_rows() -> list[dict]:
    """The rows of ``latentflow models``: :func:`models_table`'s columns plus ``checkpoints`` (see the module
    docstring: the files on disk hashed against the manifest or the pins) and ``dataset``."""
    pins = _safe_pins()
    rows = []
    for name in list_models():
        e = _packaged()[name]
        row = {**_row(name, pins), "checkpoints": checkpoint_state(e, pins), "dataset": e.dataset}
        if row["checkpoints"] == "mismatch":  # what to do depends on where the file comes from
            row["advice"] = MISMATCH_ADVICE.get(e.source["kind"], MISMATCH_ADVICE["hub"])
        rows.append(row)
    return rows
