"""Compatibility names: the loading pipeline is split by job into :mod:`~latentflow.models.pair`,
:mod:`~latentflow.models.resolve`, :mod:`~latentflow.models.sources`, :mod:`~latentflow.models.pins`,
:mod:`~latentflow.models.checkpoints`, :mod:`~latentflow.models.loading`, :mod:`~latentflow.models.export`
and :mod:`~latentflow.models.table`."""

from __future__ import annotations

from .._io import cache_dir, sha256_file  # noqa: F401
from .checkpoints import (
    PICKLE_SUFFIXES,
    extract_state_dict,
    read_pickle_weights_only,  # noqa: F401
    read_safetensors,
    read_state_dict,
    split_pair,
    strip_prefixes,
)
from .export import convert, export, make_pair  # noqa: F401
from .loading import build, check_device, finish, load, load_state  # noqa: F401
from .pair import ModelPair  # noqa: F401
from .pins import pin, pin_key, pins_path, read_pins, verify  # noqa: F401
from .resolve import SPEC_FILE, resolve  # noqa: F401
from .sources import _download_url, fetch, hf_download, is_available_offline, parse_hf_ref  # noqa: F401
from .table import model_rows, models_table  # noqa: F401
