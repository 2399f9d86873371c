"""The model-spec records: a file reference, an architecture reference and the one model record.

:class:`ModelEntry` is what a manifest entry, an exported folder, a Hub repo and a ``latentflow train``
folder (of any kind) become. Validation lives in :mod:`latentflow.models.manifest` (G/D pairs) and
:mod:`latentflow.models.trained` (training folders of other kinds).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = 1
ROLES = ("G", "D")
#: how a model's files are read into state dicts (manifest field ``reader``):
#: ``state_dict`` one state dict per file (a safetensors file, or a pickle nesting it under ``state_dict`` and
#: similar keys); ``studiogan`` PyTorch-StudioGAN ``{"state_dict": ...}`` files, the pre-2022 conditional-BatchNorm
#: layout upgraded to the current one; ``xyfjason`` ONE file ``dict(G=state_dict, D=state_dict)`` holding both
#: networks (xyfJASON/GANs-Implementations), named under the ``GD`` key of ``files``.
READERS = ("state_dict", "studiogan", "xyfjason")
#: the readers of files that hold both G and D (``files: {GD: ...}``)
PAIR_READERS = ("xyfjason",)
#: every role a model may have, in load order (S: Score GAN's denoiser of the generated distribution)
ALL_ROLES = ("G", "D", "S", "P")


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
    """One model: the single source of truth for how it is fetched, checked, built and read.

    A G/D pair (a manifest entry, an exported folder) has ``arch`` with exactly ``G`` and ``D``, a
    ``latent`` and a ``d_output``. A ``latentflow train`` folder of another kind has the roles it holds
    (``D`` alone for dflow/dgd, ``G`` (+ ``S``) for flowgan/scoregan): ``latent`` only with a generator,
    ``d_output`` and ``d_conditioning`` only with a discriminator, ``x0`` (where the particles start) only
    without a generator, and ``raw`` keeps its ``latentflow.json`` as read."""

    name: str
    source: Mapping[str, Any]
    files: Mapping[str, FileRef]  # one per role
    arch: Mapping[str, ArchSpec]  # one per role: "G", "D" (a pair) or the roles of a trained folder
    latent: Mapping[str, Any] | None  # dim, prior (None without a generator)
    output: Mapping[str, Any]  # shape (list or None), range ([lo, hi] or None)
    d_output: str | None  # logit, prob or critic (None without a discriminator)
    license: str | None = None
    citation: str | None = None
    recipe: str | None = None
    verified: bool = False
    sampling: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    dataset: str | None = None
    d_conditioning: str | None = None  # with D: "time" for D(x, t), "sigma" for D(x, σ), None for D(x)
    x0: Mapping[str, Any] | None = None  # without G: prior, std, shape
    trainer: str | None = None  # the ``latentflow train`` kind that wrote a trained folder
    raw: Mapping[str, Any] | None = None  # a trained folder's latentflow.json as read
    reader: str = "state_dict"  # how the files are read (READERS); a pair reader: G and D share a file

    @property
    def combined(self) -> bool:
        """True when one file holds both G and D (``files: {GD: ...}`` with a pair reader)."""
        return self.reader in PAIR_READERS

    @property
    def roles(self) -> tuple[str, ...]:
        """The networks, in load order (``("G", "D")`` for a pair)."""
        return tuple(r for r in ALL_ROLES if r in self.arch)

    @property
    def is_pair(self) -> bool:
        return self.roles == ROLES

    @property
    def latent_dim(self) -> int | None:
        return None if self.latent is None else int(self.latent["dim"])

    @property
    def prior(self) -> str | None:
        return None if self.latent is None else str(self.latent["prior"])

    def spec(self) -> dict:
        """The entry without its files and source: what ``export`` writes into safetensors metadata (a
        trained folder: its ``latentflow.json`` as the trainer wrote it, without ``files``)."""
        if self.raw is not None:
            return {k: copy.deepcopy(v) for k, v in self.raw.items() if k != "files"}
        return {
            "schema": SCHEMA,
            "name": self.name,
            "arch": {r: self.arch[r].to_dict() for r in self.roles},
            "latent": _plain(self.latent),
            "output": _plain(self.output),
            "d_output": self.d_output,
            "license": self.license,
            "citation": self.citation,
            "recipe": self.recipe,
            "dataset": self.dataset,
            "sampling": _plain(self.sampling),
        }

    def to_dict(self) -> dict:
        d = self.spec()
        d.pop("schema", None)
        files = {"GD": self.files["G"].to_dict()} if self.combined else {r: self.files[r].to_dict() for r in self.roles}
        d.update(source=_plain(self.source), files=files, verified=self.verified)
        if self.reader != "state_dict":
            d["reader"] = self.reader
        return d


def _plain(x):
    """Mappings/tuples back to plain dicts/lists (JSON- and YAML-ready)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
