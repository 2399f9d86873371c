"""Compatibility names: the 28x28 conv denoiser moved to :mod:`latentflow.nets.denoiser28`."""

from __future__ import annotations

from ..nets.denoiser28 import ConvDenoiser28  # noqa: F401
