"""The checkpoint manifest: one YAML file (package data) that says, for every named model, where its two
files live, their SHA-256, how to build G and D, what the latent and the output are, and how D's output
is to be read. It is parsed into frozen dataclasses and checked strictly: a malformed entry raises
:class:`~latentflow.errors.ManifestError` naming the entry, the field, what was expected and what came.

Schema (``schema: 1``)::

    models:
      <name>:
        source:   {kind: bundled} | {kind: hub, repo_id: owner/repo, revision: <40-hex commit>}
                  | {kind: url, base_url: https://...}
        files:    {G: {path, sha256: <64 hex> | null, bytes: <int> | null}, D: {...}}
                  | {GD: {...}}   one file holding both networks (needs reader: xyfjason)
        reader:   state_dict | studiogan | xyfjason   how the files become state dicts (default state_dict;
                  see latentflow.models.checkpoints)
        arch:     {G: {name: <zoo name>, kwargs: {...}}, D: {...}}
        latent:   {dim: <int>, prior: normal | uniform}
        output:   {shape: [..] | null, range: [lo, hi] | null}   (or channels + size instead of shape)
        d_output: logit | prob | critic
        license, citation, recipe: <str> | null
        dataset:  <str> | null   what G was trained on (e.g. grid25, fashion-mnist, cifar10); picks the metrics
        verified: <bool>   (false while any sha256 is null; the hash is then pinned on first download)
        sampling: {<method>: {<option>: <value>}}   recommended per-method defaults (optional)
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from ..errors import ManifestError, suggest
from .spec import ROLES, SCHEMA, ArchSpec, FileRef, ModelEntry, _plain  # noqa: F401
from .validate import (
    ALL_SOURCE_KINDS,
    D_OUTPUTS,
    PRIORS,
    SOURCE_KINDS,
    _fail,  # noqa: F401
    _keys,
    _mapping,
    validate_arch,
    validate_entry,
    validate_file,
    validate_output,
    validate_sampling,
    validate_source,
)

__all__ = [
    "SCHEMA",
    "ROLES",
    "SOURCE_KINDS",
    "ALL_SOURCE_KINDS",
    "D_OUTPUTS",
    "PRIORS",
    "ArchSpec",
    "FileRef",
    "ModelEntry",
    "validate_entry",
    "parse_manifest",
    "load_manifest",
    "list_models",
    "get_entry",
]

MANIFEST_RESOURCE = ("latentflow", "checkpoints/checkpoints_manifest.yaml")


def parse_manifest(doc, *, check_registry: bool = True) -> dict[str, ModelEntry]:
    """Validate a loaded manifest document (``{schema: 1, models: {...}}``) into ``name -> ModelEntry``."""
    doc = _mapping(doc, "manifest")
    _keys(doc, "manifest", ("schema",), ("models",))
    if doc["schema"] != SCHEMA:
        _fail("manifest.schema", f"expected {SCHEMA}; got {doc['schema']!r}")
    models = doc.get("models") or {}
    models = _mapping(models, "manifest.models")
    return {name: validate_entry(name, raw, check_registry=check_registry) for name, raw in models.items()}


def load_manifest(path: str | Path | None = None) -> dict[str, ModelEntry]:
    """Read and validate a manifest file (default: the packaged ``checkpoints_manifest.yaml``)."""
    if path is None:
        return dict(_packaged())
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ManifestError(f"cannot read manifest {path}: {e}") from e
    return _parse_yaml(text, f"manifest {path}")


@functools.lru_cache(maxsize=1)
def _packaged() -> dict[str, ModelEntry]:
    try:
        text = resources.files(MANIFEST_RESOURCE[0]).joinpath(MANIFEST_RESOURCE[1]).read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as e:
        raise ManifestError(f"the packaged manifest {'/'.join(MANIFEST_RESOURCE)} cannot be read: {e}") from e
    return _parse_yaml(text, "the packaged manifest")


def _parse_yaml(text: str, what: str) -> dict[str, ModelEntry]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ManifestError(f"{what} is not valid YAML: {e}") from e
    return parse_manifest(doc)


def list_models() -> list[str]:
    """Names of the models in the packaged manifest, sorted."""
    return sorted(_packaged())


def get_entry(name: str) -> ModelEntry:
    """The manifest entry ``name``; an unknown name raises ``ManifestError`` listing the available ones."""
    entries = _packaged()
    if not isinstance(name, str) or name not in entries:
        avail = ", ".join(sorted(entries)) or "(none)"
        hint = suggest(name, entries)
        raise ManifestError(
            f'Unknown model "{name}". Available: {avail}. '
            "Other refs: hf:owner/repo[@revision], a local folder, or a (G, D) pair of "
            f".safetensors files.{hint}"
        )
    return entries[name]
