"""The metrics a ``latentflow sample`` report holds: the 2-D metrics of a toy model, FID-FMNIST of a
Fashion-MNIST model, and Inception FID / KID / IS (with precision / recall / density / coverage) against a
real image set. A metric that cannot be computed (a data set not installed, no internet) is recorded as an
error: the samples are still written.

Image models also get Inception FID / KID / IS against a real set (:func:`latentflow.metrics.real_metrics`):
``real`` (a folder of images, an ``.npz``, or a torch-fidelity name such as ``cifar10-train``), by default
the model's dataset's (``cifar10`` -> ``cifar10-train``); the report's ``metrics.real`` names the set, its
split, the number of real images and whether the cached reference statistics were used. Beside FID/KID
stand precision, recall, density and coverage (k = 5) on the same features (Inception pool3 with a real
set; the ``fmnist-classifier`` features for Fashion-MNIST models; raw coordinates for 2-D models), against the
first ``min(num_real, num)`` real rows; ``metrics.real.prdc`` (or ``metrics.prdc``) records k and the sizes.
"""

from __future__ import annotations

import torch

from ...errors import LatentflowError
from ..fit import meta_get


def model_metrics(dataset: str | None, before: torch.Tensor, after: torch.Tensor) -> dict:
    """The metrics of the samples ``before`` and ``after`` refinement that the model's ``dataset`` has: the 2-D
    metrics of a toy set, FID-FMNIST and PRDC in the classifier's features for Fashion-MNIST, else none."""
    from ...data import TOY

    if dataset in TOY:
        from ...metrics import toy_metrics

        return {"before": toy_metrics(before, dataset), "after": toy_metrics(after, dataset)}
    if dataset == "fashion-mnist" and before.shape[0] >= 2:
        # FID in the bundled classifier's feature space (FID-FMNIST; not comparable to Inception FID)
        try:
            from ...metrics import KEY_FID, fid_fmnist, to_uint8

            n = before.shape[0]
            note = (
                "FID-FMNIST of n samples vs the 10k test images; biased upward for small n "
                "(compare runs at equal n; use `latentflow bench images` for tables)"
            )
            from ...metrics import PRDC_KEYS, image_prdc
            from ...metrics.fidelity import FMNIST

            out: dict = {"n": n, "note": note}
            for side, x in (("before", before), ("after", after)):
                u8 = to_uint8(x)
                m = {"fid_fmnist": fid_fmnist(u8)[KEY_FID]}
                if n > 5:  # precision / recall / density / coverage, same features, k = 5
                    p = image_prdc(u8, "fashion-mnist-test", feature_extractor=FMNIST)
                    m.update({k: p[k] for k in PRDC_KEYS})
                    out["prdc"] = {k: p[k] for k in ("k", "num_real", "num_fake")}
                out[side] = m
            return out
        except LatentflowError as e:  # e.g. Fashion-MNIST not installed: the samples are still written
            return {"error": str(e)}
    return {}


def add_real_metrics(metrics: dict, rs, before: torch.Tensor, after: torch.Tensor, meta) -> None:
    """Inception FID/KID/IS of ``before`` and ``after`` vs the real set ``rs`` (None: nothing), into ``metrics`` (``before``,
    ``after`` gain ``fid``, ``kid``, ``kid_std``, ``is``, ``is_std``; ``real`` describes the reference).
    A failure (e.g. CIFAR-10 not downloadable) is recorded under ``real.error``: the samples are written."""
    if rs is None:
        return
    from ...metrics import real_metrics, to_uint8

    vr = tuple(meta_get(meta, "output_range") or (-1.0, 1.0))
    try:
        prdc = before.shape[0] > 5  # k = 5 needs at least 6 samples
        b = real_metrics(to_uint8(before, vr), rs, prdc=prdc)
        a = real_metrics(to_uint8(after, vr), rs, prdc=prdc)
    except LatentflowError as e:
        metrics["real"] = {**rs.to_dict(), "error": " ".join(str(e).split())}
        return
    keys = ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage")
    for side, m in (("before", b), ("after", a)):
        metrics.setdefault(side, {}).update({k: m[k] for k in keys if k in m})
    metrics["real"] = {
        **a["reference"],
        "cache_hit": b["reference"]["cache_hit"],
        "n": a["num"],
        "metric": "Inception (pool3) FID / KID and precision / recall / density / coverage; IS from its logits",
        **({"prdc": a["prdc"]} if "prdc" in a else {}),
        **({"null_reasons": a["null_reasons"]} if "null_reasons" in a else {}),
    }
