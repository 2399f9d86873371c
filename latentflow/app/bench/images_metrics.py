"""Row metrics of the image suite: FID-FMNIST, KID, the classifier score and precision / recall / density /
coverage (k = 5, against the first ``num`` test images) in the bundled ``fmnist-classifier`` feature space, and Inception FID / KID / IS against Fashion-MNIST test or a real set
(``--real``; torch-fidelity's dicts are kept as they are)."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import torch

log = logging.getLogger("latentflow.bench")

# flat metric names of a row (the torch-fidelity dicts are kept as they are under fidelity_*)
M_FID = "fid_fmnist"
M_KID = "kid_fmnist"
M_KID_STD = "kid_fmnist_std"
M_CS = "classifier_score"
M_CS_STD = "classifier_score_std"
M_IFID = "inception_fid"
M_IS = "inception_score"
M_IKID = "inception_kid"
#: precision, recall, density, coverage (latentflow.metrics.manifold, same features as FID-FMNIST)
M_PRDC = ("precision", "recall", "density", "coverage")
PRDC_K = 5


def fmnist_row_metrics(
    x_uint8: torch.Tensor, *, rng_seed: int = 0, verbose: bool = False, fid_only: bool = False
) -> tuple[dict, dict]:
    """(flat metrics, torch-fidelity's dict) with the ``fmnist-classifier`` features vs Fashion-MNIST test."""
    # through the module, at call time (so that a patched metrics.fidelity.compute_metrics is the one called)
    from ...metrics.fidelity import FMNIST, KEY_FID, KEY_IS_MEAN, KEY_IS_STD, KEY_KID_MEAN, KEY_KID_STD, compute_metrics

    fd = compute_metrics(
        x_uint8,
        "fashion-mnist-test",
        fid=True,
        kid=not fid_only,
        isc=not fid_only,
        feature_extractor=FMNIST,
        rng_seed=rng_seed,
        verbose=verbose,
    )
    flat = {M_FID: fd.get(KEY_FID)}
    if not fid_only:
        flat.update(
            {
                M_KID: fd.get(KEY_KID_MEAN),
                M_KID_STD: fd.get(KEY_KID_STD),
                M_CS: fd.get(KEY_IS_MEAN),
                M_CS_STD: fd.get(KEY_IS_STD),
            }
        )
        if x_uint8.shape[0] > PRDC_K:
            from ...metrics.features import image_prdc

            p = image_prdc(x_uint8, "fashion-mnist-test", k=PRDC_K, feature_extractor=FMNIST)
            flat.update({k: p[k] for k in M_PRDC})
    return flat, fd


def inception_row_metrics(
    x_uint8: torch.Tensor, *, n_ref: int = 1000, offline: bool | None = None, rng_seed: int = 0, verbose: bool = False
) -> tuple[dict, dict, dict]:
    """(flat metrics, torch-fidelity's dict, errors) for Inception FID against the first ``n_ref``
    Fashion-MNIST test images (cached as ``fashion-mnist-test-first{n_ref}``) and the Inception Score.

    The IS is asked for first: with the offline weights (no logits) it raises before any image is
    processed, and the error message goes into ``errors["inception_score"]``; the FID is then computed
    alone. With torch-fidelity's own weights both come from one pass."""
    from ...data import load_fashion_mnist
    from ...errors import LatentflowError
    from ...metrics.fidelity import INCEPTION, KEY_FID, KEY_IS_MEAN, KEY_IS_STD, compute_metrics

    ref = load_fashion_mnist("test")[0][:n_ref]
    kw: dict[str, Any] = dict(
        feature_extractor=INCEPTION,
        offline=offline,
        rng_seed=rng_seed,
        verbose=verbose,
        reference_name=f"fashion-mnist-test-first{ref.shape[0]}",
    )
    errors: dict = {}
    try:
        fd = compute_metrics(x_uint8, ref, fid=True, isc=True, **kw)
    except LatentflowError as e:
        if "inception_score" not in str(e):
            raise
        errors[M_IS] = f"{type(e).__name__}: {e}"
        fd = compute_metrics(x_uint8, ref, fid=True, **kw)
    flat = {M_IFID: fd.get(KEY_FID)}
    if KEY_IS_MEAN in fd:
        flat[M_IS], flat[M_IS + "_std"] = fd[KEY_IS_MEAN], fd.get(KEY_IS_STD)
    return flat, fd, errors


def real_row_metrics(
    x_uint8: torch.Tensor, real, *, offline: bool | None = None, rng_seed: int = 0
) -> tuple[dict, dict, dict]:
    """(flat metrics, :func:`latentflow.metrics.real_metrics`'s dict, errors) for Inception FID / KID / IS
    against the real set ``real`` (cached reference statistics); IS offline goes into ``errors``."""
    from ...metrics import real_metrics

    m = real_metrics(x_uint8, real, offline=offline, rng_seed=rng_seed)
    flat = {M_IFID: m["fid"], M_IKID: m["kid"], M_IKID + "_std": m["kid_std"]}
    errors: dict = {}
    if m.get("is") is not None:
        flat[M_IS], flat[M_IS + "_std"] = m["is"], m["is_std"]
    elif "is" in m.get("null_reasons", {}):
        errors[M_IS] = m["null_reasons"]["is"]
    return flat, m, errors


FMNIST_INFO = {
    M_FID: "FID in the fmnist-classifier feature space vs Fashion-MNIST test (10k); not comparable with Inception FID",
    M_KID: "KID (same features), subset size min(1000, num)",
    M_CS: "Inception-Score formula with the fmnist-classifier softmax",
    "precision/recall/density/coverage": "k-NN manifold estimates (Kynkäänniemi et al. 2019, Naeem et al. "
    "2020; k = 5) on the fmnist-classifier features vs the first num Fashion-MNIST test images",
}
GENERIC_INFO = {
    M_IFID: "FID on the Inception-v3 pool3 features vs the real images (--real; the first --real-num)",
    M_IKID: "KID (same features), subset size min(1000, num, num_real)",
    M_IS: "Inception Score (needs the network's logits: torch-fidelity's own weights; else under metric_errors)",
    "precision/recall/density/coverage": "k-NN manifold estimates (k = 5) on the same pool3 features vs the "
    "first min(num, num_real) real images",
}


def add_inception(doc: dict, samples: dict, inception_num: int, offline, seed: int, vr, rs=None) -> None:
    """Inception FID for the generator and the best DDLS row (lowest FID-FMNIST) on ``inception_num``
    samples, against Fashion-MNIST test or the real set ``rs``; errors (IS offline, or a failure) go
    into the row's ``metric_errors``."""
    from ...metrics import to_uint8
    from ...samplers import NO_REFINEMENT
    from .images_rows import FOCUS

    ok = [r for r in doc["rows"] if "error" not in r]
    picks = [r for r in ok if r["method"] == NO_REFINEMENT][:1]
    ddls = [r for r in ok if r["method"] == FOCUS]
    if ddls:
        picks.append(min(ddls, key=lambda r: r["metrics"][M_FID]))
    doc["inception"] = {
        "num": inception_num,
        "reference": f"Fashion-MNIST test, first {inception_num} images",
        "rows": [r["label"] for r in picks],
    }
    if rs is not None:
        doc["inception"]["reference"] = f"{rs.spec} ({rs.split or rs.kind}, {rs.num} images)"
        doc["inception"]["real"] = rs.to_dict()
    for r in picks:
        t0 = time.perf_counter()
        try:
            x = samples[r["label"]][:inception_num]
            if rs is None:
                flat, fd, errs = inception_row_metrics(
                    to_uint8(x, vr), n_ref=inception_num, offline=offline, rng_seed=seed
                )
            else:
                flat, fd, errs = real_row_metrics(to_uint8(x, vr), rs, offline=offline, rng_seed=seed)
                doc["inception"]["real"] = fd["reference"]
            r["metrics"].update(flat)
            r["fidelity_inception"] = fd
            if errs:
                r.setdefault("metric_errors", {}).update(errs)
        except Exception as e:  # noqa: BLE001
            r.setdefault("metric_errors", {})[M_IFID] = f"{type(e).__name__}: {e}"
            log.error("Inception metrics for %s failed: %s", r["label"], traceback.format_exc())
        r["inception_wall_s"] = time.perf_counter() - t0
