"""Feature rows of images (the layer FID uses) and precision / recall / density / coverage on them.

:func:`feature_rows` runs torch-fidelity's feature extractor by name (``"inception-v3-compat"``: pool3, 2048
numbers per image, offline weights where torch-fidelity's are absent; ``"fmnist-classifier"``: the 128
penultimate numbers) over uint8 images and returns the rows FID is computed from. A named reference reads
and writes torch-fidelity's feature cache under the name :func:`latentflow.metrics.fidelity.compute_metrics`
gives it (``latentflow-<reference name>-<weights tag>``), so after an FID against a reference its features
are not computed again. :func:`image_prdc` applies :func:`latentflow.metrics.manifold.prdc` to them;
:func:`feature_dict` returns the FID layer and, where the network has them, the logits from one pass, and
:func:`fidelity_from_features` computes FID / KID / IS from those rows (one pass per image set).
torch-fidelity is imported only inside the functions.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, TypedDict

from torch import Tensor

from ._base import INCEPTION, cache_dir
from .manifold import DEFAULT_K, prdc

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: feature networks built in this process, by (name, layers, weights tag, cuda)
_EXTRACTORS: dict = {}


class FeatureNet(TypedDict, total=False):
    """The feature network's keywords, declared once for :func:`feature_rows`, :func:`feature_dict` and
    :func:`image_prdc` (defaults in brackets).

    * ``feature_extractor``: torch-fidelity's extractor name [``"inception-v3-compat"``];
    * ``offline``: use the offline Inception weights (None: only where torch-fidelity's are absent) [None];
    * ``cuda``: run the network on CUDA (None: where available) [None];
    * ``batch_size``: images per forward pass [64];
    * ``verbose``: torch-fidelity's progress output [False]."""

    feature_extractor: str
    offline: bool | None
    cuda: bool | None
    batch_size: int
    verbose: bool


def feature_rows(images, *, reference_name: str | None = None, **net: Unpack[FeatureNet]) -> Tensor:
    """``[N, D]`` float32 feature rows (on the CPU) of uint8 images ``[N, C, H, W]`` (or a Dataset of uint8
    ``[3, H, W]``, or a Fashion-MNIST split name such as ``"fashion-mnist-test"``): the layer torch-fidelity
    computes FID from with ``feature_extractor`` (the network's keywords: :class:`FeatureNet`).
    ``reference_name``: cache the rows (and read them from the cache) under the name
    :func:`~latentflow.metrics.fidelity.compute_metrics` uses for that reference."""
    return feature_dict(images, reference_name=reference_name, **net)["features"]


def feature_dict(images, *, logits: bool = False, reference_name: str | None = None, **net: Unpack[FeatureNet]) -> dict:
    """One pass of the feature network over ``images`` (as :func:`feature_rows` takes them):
    ``{"features": [N, D]}`` (the FID layer) plus, with ``logits=True``, ``"logits"`` ``[N, K]`` (the layer
    the Inception Score uses) when the network has them; otherwise ``"null_reasons": {"is": why}`` (the
    offline Inception weights have no logits)."""
    import torch
    from torch_fidelity.utils import (
        extract_featuresdict_from_input_id_cached,
        resolve_feature_layer_for_metric,
    )

    from ..errors import LatentflowError
    from . import fidelity as F

    if unknown := sorted(set(net) - set(FeatureNet.__annotations__)):
        raise TypeError(
            f"feature_dict: unexpected keyword {unknown[0]!r} (the network's: {', '.join(FeatureNet.__annotations__)})"
        )
    ds, name = F._resolve_reference(images, reference_name)
    feature_extractor, offline = net.get("feature_extractor", INCEPTION), net.get("offline")
    reasons: dict = {}
    try:
        fe_kwargs, tag = F.resolve_extractor(feature_extractor, offline, need_logits=logits)
    except LatentflowError as e:  # no logits (offline weights): features only, the reason kept
        fe_kwargs, tag = F.resolve_extractor(feature_extractor, offline, need_logits=False)
        reasons["is"], logits = f"{type(e).__name__}: {e}", False
    kw = dict(
        input1=ds,
        cuda=F.use_cuda(net.get("cuda")),
        rng_seed=F.DEFAULT_RNG_SEED,
        verbose=bool(net.get("verbose", False)),
        batch_size=int(net.get("batch_size", 64)),
        save_cpu_ram=True,
        cache=name is not None,
        cache_root=str(cache_dir() / "fidelity"),
        datasets_download=False,
        **fe_kwargs,
    )
    if name is not None:
        kw["input1_cache_name"] = f"latentflow-{name}-{tag}" + ("-logits" if logits else "")
    layers = {"features": resolve_feature_layer_for_metric("fid", **kw)}
    if logits:
        layers["logits"] = resolve_feature_layer_for_metric("isc", **kw)
    fe = feature_network(tag, tuple(dict.fromkeys(layers.values())), **kw)
    # torch-fidelity's DataLoader draws from the global torch RNG: keep the caller's stream intact
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if kw["cuda"] else []):
        feats = extract_featuresdict_from_input_id_cached(1, fe, **kw)
    out: dict = {k: feats[layer].float().cpu() for k, layer in layers.items()}
    if reasons:
        out["null_reasons"] = reasons
    return out


def feature_network(tag: str, layers: tuple[str, ...], **kw):
    """torch-fidelity's network ``kw["feature_extractor"]`` with the weights named ``tag`` (as
    :func:`~latentflow.metrics._base.resolve_extractor` gives them, with its keywords in ``kw``) returning
    ``layers``: built once per process and shared by every caller (``feature_dict``, ``tune``'s features),
    on CUDA when ``kw["cuda"]``. Building it draws initial weights from the global torch RNG: the caller's
    stream is kept intact."""
    import torch
    from torch_fidelity.utils import create_feature_extractor

    cuda = bool(kw.get("cuda", False))
    key = (kw["feature_extractor"], tuple(layers), tag, cuda)
    fe = _EXTRACTORS.get(key)
    if fe is None:  # loading Inception costs seconds on a CPU
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
            fe = _EXTRACTORS[key] = create_feature_extractor(key[0], list(layers), **{**kw, "cuda": cuda})
    return fe


def fidelity_from_features(
    fake: dict, real: dict, *, kid_subset_size: int = 1000, kid_subsets: int = 100, rng_seed: int = 2020
) -> dict:
    """FID, KID (mean, std) and, where ``fake`` has ``"logits"``, the Inception Score (mean, std) of the
    :func:`feature_dict` outputs ``fake`` against ``real``, with torch-fidelity's own formulas (so the
    numbers equal :func:`~latentflow.metrics.fidelity.compute_metrics`'s on the same features). KID's
    subsets have ``min(kid_subset_size, N_fake, N_real)`` rows. Missing values are None, with the reason
    under ``null_reasons``."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    a, b = fake["features"], real["features"]
    st_a, st_b = fid_features_to_statistics(a), fid_features_to_statistics(b)
    out: dict = {"fid": float(fid_statistics_to_metric(st_a, st_b, False)[KEY_METRIC_FID])}
    m = min(int(kid_subset_size), a.shape[0], b.shape[0])
    kid = kid_features_to_metric(a, b, kid_subset_size=m, kid_subsets=kid_subsets, rng_seed=rng_seed, verbose=False)
    out.update(kid=float(kid[KEY_METRIC_KID_MEAN]), kid_std=float(kid[KEY_METRIC_KID_STD]))
    reasons = dict(fake.get("null_reasons", {}))
    if "logits" in fake:
        isc = isc_features_to_metric(fake["logits"], splits=min(10, a.shape[0]), rng_seed=rng_seed)
        out.update({"is": float(isc[KEY_METRIC_ISC_MEAN]), "is_std": float(isc[KEY_METRIC_ISC_STD])})
    else:
        out.update({"is": None, "is_std": None})
        reasons.setdefault("is", "the feature network gave no logits")
    out["null_reasons"] = reasons
    return out


def image_prdc(
    samples,
    reference,
    *,
    k: int = DEFAULT_K,
    reference_name: str | None = None,
    num_real: int | None = None,
    **net: Unpack[FeatureNet],
) -> dict:
    """Precision, recall, density and coverage (:func:`~latentflow.metrics.manifold.prdc`, ``k`` = 5) of uint8
    ``samples`` against ``reference`` (uint8 images, a Dataset or a Fashion-MNIST split name) in the feature
    space of ``feature_extractor`` — the features FID uses (the network's keywords: :class:`FeatureNet`).

    The real rows are the first ``min(num_real or len(reference), len(samples))`` of the reference: the
    estimates depend on the set sizes, and the papers compare equal-size sets, so runs at equal ``n``
    compare. Returns the four values plus ``k``, ``num_real`` and ``num_fake``."""
    from ..errors import OptionError

    if num_real is not None and (isinstance(num_real, bool) or not isinstance(num_real, int) or num_real < 2):
        raise OptionError(f"num_real: expected an int >= 2; got {num_real!r}")
    rows = partial(feature_rows, **net)
    fake = rows(samples)
    real = rows(reference, reference_name=reference_name)
    n = min(real.shape[0] if num_real is None else min(num_real, real.shape[0]), fake.shape[0])
    out: dict = prdc(real[:n], fake, k)
    out.update(k=k, num_real=n, num_fake=int(fake.shape[0]))
    return out
