"""Turning a model ref into its spec record, before any weights are read.

A ref is a manifest name, ``hf:owner/repo[@revision]``, a local folder (``latentflow.json`` +
``G.safetensors`` + ``D.safetensors``, the layout :func:`~latentflow.models.export` writes) or a
``(G_path, D_path)`` pair of ``.safetensors`` files carrying their spec in the metadata. A folder (or Hub repo)
written by ``latentflow train dflow|scoregan|flowgan|dgd`` holds other roles (D alone, G alone, G + S); it
resolves to the same record type, :class:`~latentflow.models.spec.ModelEntry`, with the roles it holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import IntegrityError, ManifestError
from .checkpoints import PICKLE_SUFFIXES
from .manifest import get_entry
from .sources import hf_download, parse_hf_ref
from .spec import ROLES, SCHEMA, ModelEntry
from .trained import is_pair_spec, validate_trained
from .validate import ALL_SOURCE_KINDS, validate_entry

SPEC_FILE = "latentflow.json"

__all__ = ["SPEC_FILE", "resolve"]


def _entry_from_spec(spec: Mapping, source: dict, files: Mapping | None, where: str) -> ModelEntry:
    """A G/D pair's spec -> :class:`ModelEntry` (strict, as the manifest); any other set of roles (a
    ``latentflow train`` folder) -> a :class:`ModelEntry` with those roles. ``files`` None: ``<ROLE>.safetensors`` per role."""
    if not isinstance(spec, Mapping):
        raise ManifestError(f"{where}: expected a JSON object; got {type(spec).__name__}")
    if not is_pair_spec(spec):
        return validate_trained(spec, f"{where}: {SPEC_FILE}", source=source, files=files)
    if files is None:
        files = {r: {"path": f"{r}.safetensors"} for r in ROLES}
    if spec.get("schema", SCHEMA) != SCHEMA:
        raise ManifestError(f"{where}: schema {spec.get('schema')!r} is not supported (expected {SCHEMA})")
    raw = {k: v for k, v in spec.items() if k not in ("schema", "name", "files", "format", "source", "verified")}
    raw["source"] = source
    raw["files"] = files
    name = spec.get("name") or "unnamed"
    try:
        return validate_entry(str(name), raw, allow_sources=ALL_SOURCE_KINDS, pinned_revision=False)
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from e


def _read_spec_json(path: Path, where: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ManifestError(f"{where}: cannot read {SPEC_FILE}: {e}") from e


def _spec_from_safetensors(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types
        raise IntegrityError(f"{path} is not a readable safetensors file: {e}", path=str(path)) from e
    if "latentflow" not in meta:
        raise ManifestError(
            f'{path} carries no "latentflow" metadata; load a folder with {SPEC_FILE} or use convert(...) to make one'
        )
    try:
        return json.loads(meta["latentflow"])
    except ValueError as e:
        raise ManifestError(f'{path}: the "latentflow" metadata is not JSON: {e}') from e


def resolve(ref) -> ModelEntry:
    """Turn ``ref`` into a :class:`ModelEntry` (a G/D pair, or the roles of a ``latentflow train`` folder;
    see the module docstring for the accepted forms)."""
    if isinstance(ref, ModelEntry):
        return ref
    if isinstance(ref, (tuple, list)):
        if len(ref) != 2:
            raise ManifestError(f"a local file pair must be (G_path, D_path); got {len(ref)} items")
        paths = [Path(p).expanduser().resolve() for p in ref]
        for role, p in zip(ROLES, paths):
            if not p.is_file():
                raise ManifestError(f"{role} file {p} does not exist")
            if p.suffix in PICKLE_SUFFIXES:
                raise ManifestError(
                    f"{p} is a pickled checkpoint; turn it into safetensors first with "
                    f"latentflow.models.convert(...) (or `latentflow convert`)"
                )
        spec = _spec_from_safetensors(paths[0])
        if not is_pair_spec(spec):
            raise ManifestError(
                f"{paths[0]} belongs to a model with roles {', '.join(map(str, spec['arch']))}, "
                f"not a G/D pair; load its folder (with {SPEC_FILE}) instead"
            )
        files = {r: {"path": str(p), "sha256": None} for r, p in zip(ROLES, paths)}
        return _entry_from_spec(
            spec, {"kind": "local", "root": ""}, files, f"file pair {paths[0].name}, {paths[1].name}"
        )
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if not isinstance(ref, str):
        raise ManifestError(
            f"model ref must be a manifest name, hf:owner/repo[@rev], a folder or a (G, D) "
            f"pair of paths; got {type(ref).__name__}"
        )
    if ref.startswith("hf:"):
        repo, rev = parse_hf_ref(ref)
        spec_path = hf_download(repo, SPEC_FILE, rev)
        spec = _read_spec_json(spec_path, ref)
        if rev is None:
            # pin what "main" meant now: the snapshot folder is named by the commit
            rev = spec_path.parent.name if len(spec_path.parent.name) == 40 else None
        return _entry_from_spec(
            spec,
            {"kind": "hub", "repo_id": repo, "revision": rev or "main"},
            (spec.get("files") or None) if isinstance(spec, Mapping) else None,
            ref,
        )
    p = Path(ref).expanduser()
    if p.is_dir():
        sp = p / SPEC_FILE
        if not sp.is_file():
            if (p / "checkpoint.json").is_file():
                raise ManifestError(
                    f"folder {p} has no {SPEC_FILE}: it holds a training checkpoint only, so its "
                    "training has not finished (run the same `latentflow train` command again "
                    "to resume it)"
                )
            raise ManifestError(
                f"folder {p} has no {SPEC_FILE}; expected the layout export() writes "
                f"({SPEC_FILE}, G.safetensors, D.safetensors) or one `latentflow train` writes"
            )
        spec = _read_spec_json(sp, str(p))
        return _entry_from_spec(
            spec,
            {"kind": "local", "root": str(p.resolve())},
            (spec.get("files") or None) if isinstance(spec, Mapping) else None,
            str(p),
        )
    if p.is_file():
        raise ManifestError(f'"{ref}" is a single file; pass a folder, or a (G_path, D_path) pair')
    if _looks_like_path(ref):
        raise ManifestError(
            f'no such folder or file: "{ref}" (resolved to {p.resolve()}); a model ref is a manifest '
            "name (latentflow.list_models()), hf:owner/repo[@revision], a folder or a (G, D) pair"
        )
    return get_entry(ref)


def _looks_like_path(ref: str) -> bool:
    """True for refs no manifest name can be: with a path separator, ``~``, a leading ``.`` or a file suffix."""
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return (
        any(s in ref for s in seps)
        or ref.startswith(("~", "."))
        or ref.endswith((".json", ".safetensors") + PICKLE_SUFFIXES)
    )
