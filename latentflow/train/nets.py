"""Compatibility names: the trainers' conditioned networks moved to :mod:`latentflow.nets.time_cond`."""

from __future__ import annotations

from ..nets.time_cond import (
    FourierEmbedding,
    MLPDenoiser,
    NoiseMLPDiscriminator,  # noqa: F401
    TimeConv28Discriminator,
    TimeMLPDiscriminator,
    _rows,
)
