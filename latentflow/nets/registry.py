"""The architecture registry: ``ARCHITECTURES[name](**kwargs) -> nn.Module``.

A manifest entry (or a trained folder's ``latentflow.json``) names an architecture and its kwargs;
``build(name, **kwargs)`` makes the module. Family modules register their classes with ``@register_arch``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ManifestError, suggest

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_arch(name: str):
    """Class decorator: ``ARCHITECTURES[name] = cls``. A second registration of the same class (a module
    reloaded with ``importlib.reload``) replaces the first; a different class under a taken name is refused."""

    def deco(cls):
        old = ARCHITECTURES.get(name)
        if old is not None and getattr(old, "__qualname__", None) != cls.__qualname__:
            raise ManifestError(f'architecture "{name}" is already registered (by {old.__qualname__})')
        ARCHITECTURES[name] = cls
        return cls

    return deco


def build(name: str, **kwargs) -> nn.Module:
    """``ARCHITECTURES[name](**kwargs)``; an unknown name or unfitting kwargs raise ``ManifestError``."""
    if name not in ARCHITECTURES:
        raise ManifestError(
            f'Unknown architecture "{name}". Available: {", ".join(sorted(ARCHITECTURES))}.'
            + suggest(name, ARCHITECTURES)
        )
    try:
        return ARCHITECTURES[name](**kwargs)
    except TypeError as e:
        raise ManifestError(f'architecture "{name}" cannot be built with {kwargs}: {e}') from e
