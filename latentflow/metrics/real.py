"""Inception FID / KID / IS of generated images against a real image set, with cached reference statistics.

A real set (a registered name, a folder of images or an ``.npz``) is resolved and read by
:mod:`latentflow.metrics.real_sets`; ``num_real`` takes its first images only. The reference features and
FID statistics are cached by torch-fidelity (``input2_cache_name``) under ``cache_dir() / "fidelity"``, in a
name made of the real data's **content hash** (sha256 of the used files' names and bytes, of the
``.npz`` file, or the registered name), the sample count and the feature extractor's weights tag: a
second call with the same real set reads the cache and does not touch the real images again.

FID is the Fréchet distance of Gaussians fitted to the pool3 features,
``FID = |μ₁ - μ₂|² + Tr(Σ₁ + Σ₂ - 2 (Σ₁ Σ₂)^{1/2})`` (Heusel et al. 2017); KID is the unbiased MMD² with
the cubic polynomial kernel over random subsets (Bińkowski et al. 2018). IS needs Inception logits,
which the offline weights do not have: it is then ``None`` with the reason under ``null_reasons``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..errors import LatentflowError, ShapeError
from ._base import INCEPTION, KEY_FID, KEY_IS_MEAN, KEY_IS_STD, KEY_KID_MEAN, KEY_KID_STD, cache_dir
from .image_inputs import check_images
from .real_sets import RealSet, check_image_files, real_dataset, resolve_real

log = logging.getLogger("latentflow.metrics")

__all__ = ["real_metrics", "reference_cache_name", "check_image_files"]


def _reference_name(rs: RealSet, sha: str | None) -> str:
    return f"real-{rs.spec if sha is None else sha[:16]}-n{rs.num}"


def reference_cache_name(rs: RealSet, weights_tag: str) -> str:
    """The name torch-fidelity caches the reference under (it adds the extractor and the layer):
    ``latentflow-real-<content hash or registered name>-n<count>-<weights tag>``."""
    sha = None if rs.kind == "registered" else rs.content_hash()
    return f"latentflow-{_reference_name(rs, sha)}-{weights_tag}"


def _cached(cache_root: Path, name: str) -> bool:
    return cache_root.is_dir() and any(cache_root.glob(f"{name}-*.pt"))


def real_metrics(
    samples: torch.Tensor,
    real: str | os.PathLike | RealSet,
    *,
    num_real: int | None = None,
    fid: bool = True,
    kid: bool = True,
    isc: bool = True,
    offline: bool | None = None,
    feature_extractor: str = INCEPTION,
    rng_seed: int = 2020,
    cuda: bool | None = None,
    verbose: bool = False,
    batch_size: int = 64,
    prdc: bool = False,
    prdc_k: int = 5,
) -> dict:
    """Inception FID / KID / IS of uint8 ``samples [N, C, H, W]`` against the real set ``real``; with ``prdc``
    also precision / recall / density / coverage (:func:`latentflow.metrics.features.image_prdc`, k-th
    neighbour ``prdc_k``) on the same pool3 features, against the first ``min(num_real, N)`` real images.

    Returns ``{"fid", "kid", "kid_std", "is", "is_std", "num", "reference": {...}, "null_reasons": {...}}``
    (with ``prdc``: also ``precision``, ``recall``, ``density``, ``coverage`` and ``prdc: {k, num_real, num_fake}``)
    (a metric not asked for is absent; IS is ``None`` with a reason when the Inception weights at hand
    have no logits). ``reference`` names the real set, its split, the number of real images, the content
    hash, the feature extractor, the weights and whether the cached statistics were used.
    ``feature_extractor`` may name another registered extractor (``"fmnist-classifier"``: then "is" is
    the classifier score); the numbers are only comparable between runs with the same extractor."""
    from . import fidelity as F  # through the module, at call time (a patched compute_metrics is the one used)

    rs = resolve_real(real, num_real)
    samples = check_images(samples, "samples")
    if samples.shape[0] < 2:
        raise ShapeError(f"samples: expected at least 2 images for FID/KID; got {samples.shape[0]}")
    null_reasons: dict = {}
    if isc:
        try:
            F.resolve_extractor(feature_extractor, offline, need_logits=True)
        except LatentflowError as e:
            isc = False
            null_reasons["is"] = null_reasons["is_std"] = " ".join(str(e).split())
    _, tag = F.resolve_extractor(feature_extractor, offline, need_logits=isc)
    sha = None if rs.kind == "registered" else rs.content_hash()
    ref = _reference_name(rs, sha)
    name = f"latentflow-{ref}-{tag}"  # what compute_metrics passes as input2_cache_name
    cache_root = cache_dir() / "fidelity"
    hit = _cached(cache_root, name)
    out: dict = {"num": int(samples.shape[0])}
    fd: dict = {}
    common: dict = dict(feature_extractor=feature_extractor, offline=offline, cuda=cuda, batch_size=batch_size)
    if fid or kid:
        fd = F.compute_metrics(
            samples,
            real_dataset(rs),
            fid=fid,
            kid=kid,
            isc=isc,
            reference_name=ref,
            rng_seed=rng_seed,
            verbose=verbose,
            **common,
        )
    elif isc:
        fd = F.compute_metrics(samples, isc=True, rng_seed=rng_seed, verbose=verbose, **common)
    if prdc:
        from .features import image_prdc

        p = image_prdc(samples, real_dataset(rs), k=prdc_k, reference_name=ref, **common)
        out.update({key: p[key] for key in ("precision", "recall", "density", "coverage")})
        out["prdc"] = {key: p[key] for key in ("k", "num_real", "num_fake")}
    if fid:
        out["fid"] = float(fd[KEY_FID])
    if kid:
        out["kid"], out["kid_std"] = float(fd[KEY_KID_MEAN]), float(fd[KEY_KID_STD])
    if KEY_IS_MEAN in fd:
        out["is"], out["is_std"] = float(fd[KEY_IS_MEAN]), float(fd[KEY_IS_STD])
    elif null_reasons:
        out["is"] = out["is_std"] = None
    out["reference"] = {
        **rs.to_dict(),
        "sha256": sha,
        "feature_extractor": feature_extractor,
        "weights": tag,
        "cache": name,
        "cache_hit": hit if (fid or kid) else None,
    }
    if null_reasons:
        out["null_reasons"] = null_reasons
    return out
