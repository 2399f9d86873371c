"""Inception FID / KID / IS of generated images against a real image set, with cached reference statistics.

A real set (a registered name, a folder of images or an ``.npz``) is resolved and read by
:mod:`latentflow.metrics.real_sets`; ``num_real`` takes its first images only. A folder's or an ``.npz``'s
feature rows come from the per-image cache that ``tune`` and ``bench images`` share
(:mod:`latentflow.metrics.feature_cache`: keyed by each uint8 image's sha256 and the extractor's weights tag),
the samples pass the network once for FID, KID, IS and PRDC, and the values are torch-fidelity's formulas
and defaults on those rows. A registered set keeps torch-fidelity's own cache (``input2_cache_name``) under
``cache_dir() / "fidelity"``, named after the set, the sample count and the weights tag, which never builds
the dataset again. ``reference.sha256`` is the content hash of the used files (names and bytes) or of the
``.npz`` file.

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
    also precision / recall / density / coverage (:func:`latentflow.metrics.manifold.prdc`, k-th
    neighbour ``prdc_k``) on the same pool3 features, against the first ``min(num_real, N)`` real images.

    Returns ``{"fid", "kid", "kid_std", "is", "is_std", "num", "reference": {...}, "null_reasons": {...}}``
    (with ``prdc``: also ``precision``, ``recall``, ``density``, ``coverage`` and ``prdc: {k, num_real, num_fake}``)
    (a metric not asked for is absent; IS is ``None`` with a reason when the Inception weights at hand
    have no logits). ``reference`` names the real set, its split, the number of real images, the content
    hash, the feature extractor, the weights, the cache (``cache``) and whether the real set's features or
    statistics all came from it (``cache_hit``).
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
    common: dict = dict(feature_extractor=feature_extractor, offline=offline, cuda=cuda, batch_size=batch_size)
    if rs.kind == "registered":  # torch-fidelity's dataset and its own statistics cache (never read when cached)
        out, name, hit = _registered(samples, rs, fid, kid, isc, prdc, prdc_k, tag, rng_seed, verbose, common)
        sha = None
    else:  # the images' feature rows from the cache shared with ``tune`` (metrics.feature_cache)
        out, name, hit = _from_rows(samples, rs, fid, kid, isc, prdc, prdc_k, rng_seed, verbose, common)
        sha = rs.content_hash()
    if fid:
        out["fid"] = float(out.pop(KEY_FID))
    if kid:
        out["kid"], out["kid_std"] = float(out.pop(KEY_KID_MEAN)), float(out.pop(KEY_KID_STD))
    if KEY_IS_MEAN in out:
        out["is"], out["is_std"] = float(out.pop(KEY_IS_MEAN)), float(out.pop(KEY_IS_STD))
    elif null_reasons:
        out["is"] = out["is_std"] = None
    out["reference"] = {
        **rs.to_dict(),
        "sha256": sha,
        "feature_extractor": feature_extractor,
        "weights": tag,
        "cache": name,
        "cache_hit": hit if (fid or kid or prdc) else None,
    }
    if null_reasons:
        out["null_reasons"] = null_reasons
    return out


def _registered(samples, rs: RealSet, fid, kid, isc, prdc, prdc_k, tag, rng_seed, verbose, common) -> tuple:
    """(torch-fidelity's values and PRDC, cache name, cache hit) against a registered set, through
    torch-fidelity's own reference cache (``input2_cache_name``)."""
    from . import fidelity as F

    ref = _reference_name(rs, None)
    name = f"latentflow-{ref}-{tag}"  # what compute_metrics passes as input2_cache_name
    hit = _cached(cache_dir() / "fidelity", name)
    out: dict = {"num": int(samples.shape[0])}
    if fid or kid:
        fd = F.compute_metrics(
            samples, real_dataset(rs), fid=fid, kid=kid, isc=isc, reference_name=ref, rng_seed=rng_seed,
            verbose=verbose, **common,
        )  # fmt: skip
        out.update({k: v for k, v in fd.items() if k in (KEY_FID, KEY_KID_MEAN, KEY_KID_STD, KEY_IS_MEAN, KEY_IS_STD)})
    elif isc:
        fd = F.compute_metrics(samples, isc=True, rng_seed=rng_seed, verbose=verbose, **common)
        out.update({k: fd[k] for k in (KEY_IS_MEAN, KEY_IS_STD)})
    if prdc:
        from .features import image_prdc

        p = image_prdc(samples, real_dataset(rs), k=prdc_k, reference_name=ref, **common)
        out.update({key: p[key] for key in ("precision", "recall", "density", "coverage")})
        out["prdc"] = {key: p[key] for key in ("k", "num_real", "num_fake")}
    return out, name, hit


def _from_rows(samples, rs: RealSet, fid, kid, isc, prdc, prdc_k, rng_seed, verbose, common) -> tuple:
    """(the same values from feature rows, cache name, cache hit) against a folder or ``.npz``: one pass of the
    network over the samples (features and, for IS, logits); the real rows from the shared feature cache;
    FID / KID / IS by torch-fidelity's own formulas and defaults (KID subsets of ``min(1000, N, N_real)``,
    100 of them; IS in 10 splits), so the values equal those of :func:`~latentflow.metrics.fidelity.compute_metrics`."""
    from . import fidelity as F
    from .feature_cache import feature_cache_folder, real_feature_rows
    from .features import feature_dict
    from .real_sets import real_images

    out: dict = {"num": int(samples.shape[0])}
    if not (fid or kid or prdc):
        if isc:
            fd = F.compute_metrics(samples, isc=True, rng_seed=rng_seed, verbose=verbose, **common)
            out.update({k: fd[k] for k in (KEY_IS_MEAN, KEY_IS_STD)})
        return out, None, None
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    fake = feature_dict(samples, logits=isc, verbose=verbose, **common)
    real_rows, hit = real_feature_rows(real_images(rs), **common)
    a = fake["features"]
    if fid:
        st = fid_features_to_statistics(a), fid_features_to_statistics(real_rows)
        out.update(fid_statistics_to_metric(*st, False))
    if kid:
        m = min(1000, a.shape[0], real_rows.shape[0])  # compute_metrics' kid_subset_size
        out.update(kid_features_to_metric(a, real_rows, kid_subset_size=m, rng_seed=rng_seed, verbose=False))
    if isc and "logits" in fake:
        out.update(isc_features_to_metric(fake["logits"], splits=10, rng_seed=rng_seed))
    if prdc:
        from .manifold import prdc as prdc_of

        n = min(real_rows.shape[0], fake["features"].shape[0])
        p = prdc_of(real_rows[:n], fake["features"], prdc_k)
        out.update({key: p[key] for key in ("precision", "recall", "density", "coverage")})
        out["prdc"] = {"k": prdc_k, "num_real": n, "num_fake": int(fake["features"].shape[0])}
    _, weights = F.resolve_extractor(common["feature_extractor"], common["offline"], need_logits=False)
    folder = feature_cache_folder(f"{common['feature_extractor']}-{weights}")
    return out, f"{folder.parent.name}/{folder.name}", hit
