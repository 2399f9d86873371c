"""The sample files of ``latentflow sample --format``: layouts the FID tools read.

* ``safetensors`` (default): ``samples.safetensors`` with ``x`` (refined), ``x_before``, ``z`` (and
  ``labels`` where the run has them) as float32, and string metadata naming the run (model, method,
  options, seed, num, latentflow version, output range, whether labels are present).
* ``png``: a folder ``samples/`` of uint8 PNGs ``000000.png``, ``000001.png``, ... (grey images as 8-bit
  ``L``, colour as ``RGB``), the refined samples in order: a folder of images is what pytorch-fid,
  clean-fid and torch-fidelity take as an input.
* ``npz``: ``samples.npz`` holding ``arr_0``, uint8 ``[N, H, W, C]`` (the layout of the reference
  batches of the ADM / guided-diffusion evaluator; ``numpy.load(path)["arr_0"]``).

Float images in ``[lo, hi]`` (the model's ``output_range``) become uint8 by
``u = clamp(round((x - lo) * 255 / (hi - lo)), 0, 255)`` (:func:`latentflow.metrics.to_uint8`; NaN -> 0),
so writing and reading back gives exactly ``to_uint8(x)``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from ..._io import atomic_write_bytes
from ...errors import OptionError

__all__ = [
    "FORMATS",
    "DEFAULT_FORMATS",
    "SAMPLES_DIR",
    "NPZ",
    "parse_formats",
    "format_files",
    "to_nhwc_uint8",
    "write_png_folder",
    "write_npz",
    "samples_metadata",
    "check_formats_fit",
]

FORMATS = ("safetensors", "png", "npz")
DEFAULT_FORMATS = ("safetensors",)
SAMPLES_DIR, NPZ = "samples", "samples.npz"
_FILES = {"safetensors": "samples.safetensors", "png": SAMPLES_DIR, "npz": NPZ}


def parse_formats(formats) -> tuple[str, ...]:
    """``None`` -> ``("safetensors",)``; ``"png,npz"`` or ``["png", "npz,safetensors"]`` -> the named
    formats in the order :data:`FORMATS` lists them; ``OptionError`` naming ``format`` otherwise."""
    if formats is None:
        return DEFAULT_FORMATS
    items = [formats] if isinstance(formats, str) else list(formats)
    names = []
    for item in items:
        if not isinstance(item, str):
            raise OptionError(f"format: expected names from {', '.join(FORMATS)}; got {item!r}")
        names += [s.strip().lower() for s in item.split(",") if s.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise OptionError(
            f"format: expected one or more of {', '.join(FORMATS)} (repeat the option or use a "
            f"comma list); got {', '.join(bad) if bad else repr(formats)}"
        )
    return tuple(f for f in FORMATS if f in names)


def format_files(formats) -> tuple[str, ...]:
    """The file (or folder) names the formats write."""
    return tuple(_FILES[f] for f in parse_formats(formats))


def check_formats_fit(formats, output_shape) -> None:
    """``png``/``npz`` need images ``[C, H, W]`` with C = 1 or 3; ``OptionError`` naming ``format`` otherwise."""
    wanted = [f for f in parse_formats(formats) if f in ("png", "npz")]
    shape = list(output_shape) if output_shape is not None else None
    if wanted and (shape is None or len(shape) != 3 or shape[0] not in (1, 3)):
        raise OptionError(
            f"format: {', '.join(wanted)} expected a model whose samples are images [C, H, W] "
            f"with C = 1 or 3; got samples of shape {shape}"
        )


def to_nhwc_uint8(x: torch.Tensor, value_range=(-1.0, 1.0)) -> np.ndarray:
    """Float images ``[N, C, H, W]`` in ``value_range`` -> uint8 ``[N, H, W, C]`` (see the module docstring)."""
    from ...metrics import to_uint8

    return to_uint8(x.detach().cpu(), tuple(value_range)).permute(0, 2, 3, 1).contiguous().numpy()


def write_png_folder(folder: Path, nhwc: np.ndarray) -> list[str]:
    """One PNG per image, ``000000.png`` ... (wider names past a million images); returns the names."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(len(nhwc) - 1)))
    names = []
    for i, img in enumerate(nhwc):
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG")  # L or RGB
        name = f"{i:0{width}d}.png"
        atomic_write_bytes(folder / name, buf.getvalue())
        names.append(name)
    return names


def write_npz(path: Path, nhwc: np.ndarray) -> None:
    """``arr_0`` = uint8 ``[N, H, W, C]``, uncompressed (``numpy.savez``)."""
    buf = io.BytesIO()
    np.savez(buf, arr_0=nhwc)
    atomic_write_bytes(Path(path), buf.getvalue())


def samples_metadata(
    *,
    model: str,
    method: str,
    options: dict,
    seed: int,
    num: int,
    version: str,
    value_range=None,
    labels: bool = False,
    start: str = "generator",
) -> dict[str, str]:
    """String metadata of ``samples.safetensors`` (safetensors metadata maps str to str)."""
    opts = {k: v for k, v in (options or {}).items() if k not in ("callback", "progress")}
    return {
        "latentflow": str(version),
        "model": str(model),
        "method": str(method),
        "options": json.dumps(opts, sort_keys=True, default=str),
        "seed": str(seed),
        "num": str(num),
        "start": str(start),
        "labels": "true" if labels else "false",
        "output_range": json.dumps(list(value_range) if value_range is not None else None),
        "tensors": "x: refined samples; x_before: the start (generator output or x0); z: latents"
        + ("; labels: class labels" if labels else ""),
    }
