"""Compatibility names: the architectures moved to :mod:`latentflow.nets` (``build``, ``ARCHITECTURES``)."""

from __future__ import annotations

from ..nets import *  # noqa: F401,F403
from ..nets import ARCHITECTURES, build, register_arch  # noqa: F401
from ..nets._common import _act, _class_labels, _mlp, _sn  # noqa: F401
