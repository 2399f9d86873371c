"""A trained folder: each role's final weights as safetensors (the spec in their metadata), then
``latentflow.json`` holding the spec (architecture, sampling settings, recipe), as ``latentflow.load`` reads it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from .._io import atomic_save_safetensors, atomic_write_json

__all__ = ["save_weights", "write_trained"]


def save_weights(module: nn.Module, path: Path, spec: dict | None = None) -> None:
    """Final weights as safetensors; ``spec`` (architecture and kwargs) goes into the metadata."""
    meta = {"latentflow": json.dumps(spec)} if spec is not None else None
    atomic_save_safetensors(module.state_dict(), path, meta)


def write_trained(out: str | os.PathLike, spec: dict, weights: dict[str, nn.Module]) -> dict:
    """A trained folder: ``ROLE.safetensors`` for each of ``weights`` (in order, ``spec`` in the metadata),
    then ``latentflow.json`` holding ``spec``; returns ``spec``."""
    out = Path(out)
    for role, module in weights.items():
        save_weights(module, out / f"{role}.safetensors", spec)
    atomic_write_json(out / "latentflow.json", spec)
    return spec
