"""The model-spec records: a file reference, an architecture reference and a manifest entry.

:class:`ModelEntry` is what a manifest entry, an exported folder's ``latentflow.json`` and a Hub repo's
``latentflow.json`` of a G/D pair become (a training folder with other roles becomes
:class:`~latentflow.models.trained.TrainedEntry`, which has the same ``name``, ``source``, ``files`` and
``arch``). Validation lives in :mod:`latentflow.models.manifest`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

SCHEMA = 1
ROLES = ("G", "D")


@dataclass(frozen=True)
class FileRef:
    """One checkpoint file: its path (relative to the source), full SHA-256 (None: pinned on first use), size."""
    path: str
    sha256: str | None = None
    bytes: int | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class ArchSpec:
    """An architecture of the zoo and the keyword arguments that build it."""
    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "kwargs": _plain(self.kwargs)}


@dataclass(frozen=True)
class ModelEntry:
    """One named G/D pair; the single source of truth for how it is fetched, checked, built and read."""
    name: str
    source: Mapping[str, Any]
    files: Mapping[str, FileRef]          # "G", "D"
    arch: Mapping[str, ArchSpec]          # "G", "D"
    latent: Mapping[str, Any]             # dim, prior
    output: Mapping[str, Any]             # shape (list or None), range ([lo, hi] or None)
    d_output: str
    license: str | None = None
    citation: str | None = None
    recipe: str | None = None
    verified: bool = False
    sampling: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    dataset: str | None = None

    @property
    def latent_dim(self) -> int:
        return int(self.latent["dim"])

    @property
    def prior(self) -> str:
        return str(self.latent["prior"])

    def spec(self) -> dict:
        """The entry without its files and source: what ``export`` writes into safetensors metadata."""
        return {"schema": SCHEMA, "name": self.name,
                "arch": {r: self.arch[r].to_dict() for r in ROLES},
                "latent": _plain(self.latent), "output": _plain(self.output), "d_output": self.d_output,
                "license": self.license, "citation": self.citation, "recipe": self.recipe,
                "dataset": self.dataset, "sampling": _plain(self.sampling)}

    def to_dict(self) -> dict:
        d = self.spec()
        d.pop("schema")
        d.update(source=_plain(self.source), files={r: self.files[r].to_dict() for r in ROLES},
                 verified=self.verified)
        return d


def _plain(x):
    """Mappings/tuples back to plain dicts/lists (JSON- and YAML-ready)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
