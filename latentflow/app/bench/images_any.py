"""``bench images`` for any image model (RGB or grey, any size, class-conditional or not).

Every row (method) gets the same latents (and, for a class-conditional model, the same per-chain labels,
uniform, drawn by the model's own :meth:`~latentflow.models.ModelPair.labels`) at the same budget, and is
scored against the real images of ``--real`` with the FID Inception-v3 network: FID, KID, the Inception
Score where the network has logits (torch-fidelity's own weights; the offline weights have none, and the
reason is recorded), and precision / recall / density / coverage (k = 5) on the same pool3 features. The
features of each row's samples are computed once (:func:`latentflow.metrics.feature_dict`), the real set's
once and cached by content hash.

The real images are read by :func:`read_real_images` (a folder, ``.npz`` / ``.pt`` / ``.safetensors``, or a
torch-fidelity registered set such as ``cifar10-train``), in ``[N, C, H, W]``, ``[N, H, W, C]`` or ``[N, H, W]``
layouts, uint8 or floats in the model's range, checked against the model's output shape and range before
any sampling. The first ``num_real`` images (default all) are the metrics' reference; the "(cal)" rows
calibrate D on ``n_cal`` other images (those after the reference; the reference itself when there are none)
with their labels (``--labels``) for a class-conditional D.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ...errors import OptionError, ShapeError
from .images_metrics import M_IFID, M_IKID, M_IS, M_PRDC, PRDC_K


def _layout(x: Tensor, shape: tuple) -> Tensor:
    """``[N, H, W]`` / ``[N, H, W, C]`` / ``[N, C, H, W]`` -> ``[N, C, H, W]`` for a model giving ``shape``."""
    c = shape[0]
    if x.dim() == 3 and c == 1:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and tuple(x.shape[1:]) != tuple(shape) and x.shape[-1] == c and tuple(x.shape[1:3]) == shape[1:]:
        x = x.permute(0, 3, 1, 2)
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        raise ShapeError(
            f"real: the model gives images of shape {list(shape)}; the real images have shape "
            f"{list(x.shape[1:])} (expected [N, {', '.join(map(str, shape))}], NHWC or [N, H, W] for grey)"
        )
    return x.contiguous()


def _read(real, num_real: int | None) -> Tensor:
    from ...metrics.real_sets import REGISTERED, real_dataset, resolve_real

    p = Path(str(real)).expanduser()
    if not p.exists() and str(real) in REGISTERED:
        rs = resolve_real(str(real), num_real)
        ds = real_dataset(rs)
        return torch.stack([ds[i] for i in range(rs.num)])  # a registered set's Dataset has rs.num images
    if not p.exists():
        raise OptionError(f"real: no such file or folder: {str(p)!r} (or a registered set: {', '.join(REGISTERED)})")
    from ..tune.tune_cmd import read_real

    try:
        return read_real(p) if p.is_dir() else _raw_tensor(p)
    except OptionError as e:
        raise OptionError(str(e).replace("real_path", "real", 1)) from None


def _raw_tensor(p: Path) -> Tensor:
    """The tensor of a file as stored (uint8 kept: the range check below needs to know)."""
    from ..tune.tune_cmd import _read_tensor_file

    x = _read_tensor_file(p)
    if not isinstance(x, Tensor):
        raise OptionError(f"real: {p} holds no tensor of images")
    return x


def read_real_images(real, shape, *, value_range=(-1.0, 1.0), num_real: int | None = None) -> Tensor:
    """The real images of ``real`` as float ``[N, C, H, W]`` in ``value_range`` (module docstring), checked."""
    x = _read(real, num_real)
    if x.is_complex() or not (x.is_floating_point() or x.dtype == torch.uint8):
        raise OptionError(f"real: expected uint8 images or floats in {list(value_range)}; got a {x.dtype} tensor")
    x = _layout(x, tuple(shape))
    lo, hi = float(value_range[0]), float(value_range[1])
    if x.dtype == torch.uint8:
        x = x.float() / 255.0 * (hi - lo) + lo
    else:
        x = x.float()
        if not torch.isfinite(x).all():
            raise OptionError("real: the images hold NaN or infinite values")
        tol = 1e-3 * (hi - lo)
        mn, mx = float(x.min()), float(x.max())
        if mn < lo - tol or mx > hi + tol:
            raise OptionError(
                f"real: the images span [{mn:.3g}, {mx:.3g}], off the model's range [{lo:g}, {hi:g}]; "
                "give uint8 images or floats scaled to the model's range"
            )
        if lo < 0 and mn >= 0:
            raise OptionError(
                f"real: the images span [{mn:.3g}, {mx:.3g}], which looks like [0, 1] while the model gives "
                f"[{lo:g}, {hi:g}]; scale them (2 * x - 1) or give uint8 images"
            )
    return x


def read_labels(path, n: int, num_classes: int) -> Tensor:
    """Integer class labels ``[n]`` in ``[0, num_classes)`` from ``.npy`` / ``.npz`` (``y``, ``labels`` or the
    first array) / ``.pt`` / ``.safetensors`` (``y``, ``labels`` or the first tensor) / ``.txt`` (one a line)."""
    p = Path(str(path)).expanduser()
    if num_classes <= 0:
        raise OptionError("labels: the model is not class-conditional (it takes no labels); leave --labels out")
    from ..tune.tune_cmd import read_label_file

    y = read_label_file(p, "label")
    if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = f"shape {list(y.shape)}, {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise OptionError(f"labels: expected integer labels [N] (one per real image); got {got}")
    if y.shape[0] != n:
        raise OptionError(f"labels: {y.shape[0]} labels for {n} real images; give one label per image")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise OptionError(
            f"labels: expected class labels in [0, {num_classes - 1}]; got {int(y.min())}..{int(y.max())}"
        )
    return y.long()


class RealImages:
    """The checked real images of a generic run: ``ref`` (the metrics' reference, float), ``cal`` and
    ``cal_y`` (the calibration images and labels), their features (computed on first use, cached)."""

    def __init__(self, pair, real, *, labels=None, num_real=None, n_cal: int, seed: int, shape, value_range):
        x = read_real_images(real, shape, value_range=value_range)
        k = pair.num_classes
        y = read_labels(labels, x.shape[0], k) if labels is not None else None
        n = x.shape[0] if num_real is None else int(num_real)
        if n > x.shape[0]:
            raise OptionError(f"num_real: {n} images asked for; real holds {x.shape[0]}")
        if n < 2:
            raise OptionError(f"num_real: expected >= 2 real images (FID needs two); got {n}")
        self.spec, self.value_range, self.total = str(real), tuple(value_range), int(x.shape[0])
        self.ref = x[:n]
        rest = torch.arange(n, x.shape[0]) if x.shape[0] > n else torch.arange(n)
        pick = rest[torch.randperm(rest.numel(), generator=torch.Generator().manual_seed(seed))[:n_cal]]
        self.cal, self.cal_y = x[pick], (y[pick] if y is not None else None)
        self.cal_overlaps_ref = x.shape[0] <= n
        self._feats: dict | None = None

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "total": self.total,
            "num_reference": int(self.ref.shape[0]),
            "num_calibration": int(self.cal.shape[0]),
            "calibration_overlaps_reference": self.cal_overlaps_ref,
            "labels": self.cal_y is not None,
        }

    def features(self, offline=None) -> dict:
        if self._feats is None:  # the rows cached per image, shared with sample --real and tune
            from ...metrics import to_uint8
            from ...metrics.feature_cache import real_feature_rows

            u8 = to_uint8(self.ref, self.value_range)
            self._feats = {"features": real_feature_rows(u8, offline=offline)[0]}
        return self._feats


def generic_row_metrics(x: Tensor, real: RealImages, *, offline=None, rng_seed: int = 0) -> tuple[dict, dict, dict]:
    """(flat metrics, the full dict, errors) of the samples ``x`` against ``real``: Inception FID, KID, IS
    (where the network has logits) and PRDC (k = 5) on the pool3 features of one pass."""
    from ...metrics import feature_dict, fidelity_from_features, to_uint8
    from ...metrics.manifold import prdc

    fake = feature_dict(to_uint8(x, real.value_range), logits=True, offline=offline)
    ref = real.features(offline)
    m = fidelity_from_features(fake, ref, rng_seed=rng_seed)
    flat = {M_IFID: m["fid"], M_IKID: m["kid"], M_IKID + "_std": m["kid_std"]}
    errors = {}
    if m["is"] is not None:
        flat[M_IS], flat[M_IS + "_std"] = m["is"], m["is_std"]
    else:
        errors[M_IS] = m["null_reasons"].get("is", "no logits")
    if x.shape[0] > PRDC_K:
        n = min(ref["features"].shape[0], fake["features"].shape[0])
        p = prdc(ref["features"][:n], fake["features"], PRDC_K)
        flat.update({k: p[k] for k in M_PRDC})
        m["prdc"] = {"k": PRDC_K, "num_real": n}
    return flat, m, errors
