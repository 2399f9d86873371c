"""Feature rows of images (the layer FID uses) and precision / recall / density / coverage on them.

:func:`feature_rows` runs torch-fidelity's feature extractor by name (``"inception-v3-compat"``: pool3, 2048
numbers per image, offline weights where torch-fidelity's are absent; ``"fmnist-classifier"``: the 128
penultimate numbers) over uint8 images and returns the rows FID is computed from. A named reference reads
and writes torch-fidelity's feature cache under the name :func:`latentflow.metrics.fidelity.compute_metrics`
gives it (``latentflow-<reference name>-<weights tag>``), so after an FID against a reference its features
are not computed again. :func:`image_prdc` applies :func:`latentflow.metrics.manifold.prdc` to them.
torch-fidelity is imported only inside the functions.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor

from ._base import INCEPTION, cache_dir
from .manifold import DEFAULT_K, prdc


def feature_rows(
    images,
    *,
    feature_extractor: str = INCEPTION,
    offline: bool | None = None,
    reference_name: str | None = None,
    cuda: bool | None = None,
    batch_size: int = 64,
    verbose: bool = False,
) -> Tensor:
    """``[N, D]`` float32 feature rows (on the CPU) of uint8 images ``[N, C, H, W]`` (or a Dataset of uint8
    ``[3, H, W]``, or a Fashion-MNIST split name such as ``"fashion-mnist-test"``): the layer torch-fidelity
    computes FID from with ``feature_extractor``. ``reference_name``: cache the rows (and read them from the
    cache) under the name :func:`~latentflow.metrics.fidelity.compute_metrics` uses for that reference."""
    import torch
    from torch_fidelity.utils import (
        create_feature_extractor,
        extract_featuresdict_from_input_id_cached,
        resolve_feature_layer_for_metric,
    )

    from . import fidelity as F

    ds, name = F._resolve_reference(images, reference_name)
    fe_kwargs, tag = F.resolve_extractor(feature_extractor, offline, need_logits=False)
    kw = dict(
        input1=ds,
        cuda=F.use_cuda(cuda),
        rng_seed=F.DEFAULT_RNG_SEED,
        verbose=bool(verbose),
        batch_size=int(batch_size),
        save_cpu_ram=True,
        cache=name is not None,
        cache_root=str(cache_dir() / "fidelity"),
        datasets_download=False,
        **fe_kwargs,
    )
    if name is not None:
        kw["input1_cache_name"] = f"latentflow-{name}-{tag}"
    layer = resolve_feature_layer_for_metric("fid", **kw)
    fe = create_feature_extractor(fe_kwargs["feature_extractor"], [layer], **kw)
    # torch-fidelity's DataLoader draws a seed from the global torch RNG: keep the caller's stream intact
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if kw["cuda"] else []):
        feats = extract_featuresdict_from_input_id_cached(1, fe, **kw)[layer]
    return feats.float().cpu()


def image_prdc(
    samples,
    reference,
    *,
    k: int = DEFAULT_K,
    feature_extractor: str = INCEPTION,
    offline: bool | None = None,
    reference_name: str | None = None,
    num_real: int | None = None,
    cuda: bool | None = None,
    batch_size: int = 64,
) -> dict:
    """Precision, recall, density and coverage (:func:`~latentflow.metrics.manifold.prdc`, ``k`` = 5) of uint8
    ``samples`` against ``reference`` (uint8 images, a Dataset or a Fashion-MNIST split name) in the feature
    space of ``feature_extractor`` — the features FID uses.

    The real rows are the first ``min(num_real or len(reference), len(samples))`` of the reference: the
    estimates depend on the set sizes, and the papers compare equal-size sets, so runs at equal ``n``
    compare. Returns the four values plus ``k``, ``num_real`` and ``num_fake``."""
    from ..errors import OptionError

    if num_real is not None and (isinstance(num_real, bool) or not isinstance(num_real, int) or num_real < 2):
        raise OptionError(f"num_real: expected an int >= 2; got {num_real!r}")
    rows = partial(feature_rows, feature_extractor=feature_extractor, offline=offline, cuda=cuda, batch_size=batch_size)
    fake = rows(samples)
    real = rows(reference, reference_name=reference_name)
    n = min(real.shape[0] if num_real is None else min(num_real, real.shape[0]), fake.shape[0])
    out: dict = prdc(real[:n], fake, k)
    out.update(k=k, num_real=n, num_fake=int(fake.shape[0]))
    return out
