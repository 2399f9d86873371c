"""One on-disk cache of real images' feature rows, shared by ``sample --real``, ``bench images --real`` and
``tune``: whichever runs first computes a real image's features, the others read them.

A row is keyed by its image as the feature network sees it: the sha256 (first 16 bytes) of the uint8 RGB image
``[3, H, W]`` (grey replicated to three channels, as torch-fidelity does) and its size, under a folder named by
the feature extractor and its weights tag (``cache_dir()/features/<extractor>-<weights tag>/``). Each file of
that folder is a safetensors file holding ``keys`` (uint8 ``[N, 16]``) and ``rows`` (float32 ``[N, D]``),
named by the hash of its keys. A set is looked up image by image, so a subset, a permutation or a superset of
cached images computes only the images no file holds (``tune`` scores on a random part of its real set,
``sample --real`` on the first ``num_real`` images). Files are written atomically; a damaged file is skipped
with a warning (its images are computed again); a cache that cannot be written only logs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import OutputError, ShapeError
from ._base import INCEPTION, cache_dir

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .features import FeatureNet

log = logging.getLogger("latentflow.metrics")

__all__ = ["image_keys", "cached_rows", "real_feature_rows", "feature_cache_folder"]

KEY_BYTES = 16


def _rgb(images: Tensor) -> Tensor:
    ok = torch.is_tensor(images) and images.dtype == torch.uint8 and images.dim() == 4
    if not ok or images.shape[0] < 1 or images.shape[1] not in (1, 3):
        got = f"{images.dtype} {tuple(images.shape)}" if torch.is_tensor(images) else type(images).__name__
        raise ShapeError(f"images: expected a uint8 tensor [N >= 1, 1 or 3, H, W]; got {got}")
    x = images.detach().cpu()
    return (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).contiguous()


def image_keys(images: Tensor) -> Tensor:
    """uint8 ``[N, 16]``: the key of each uint8 image ``[N, 1 or 3, H, W]`` (grey counted as its RGB copy)."""
    x = _rgb(images)
    size = f"{x.shape[2]}x{x.shape[3]}|".encode()
    a = x.numpy()
    keys = [hashlib.sha256(size + a[i].tobytes()).digest()[:KEY_BYTES] for i in range(a.shape[0])]
    return torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8).view(-1, KEY_BYTES).clone()


def feature_cache_folder(tag: str) -> Path:
    """The folder holding the rows of the feature network named ``tag`` (extractor and weights)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
    return cache_dir() / "features" / safe


def _file_name(keys: Tensor) -> str:
    return hashlib.sha256(keys.numpy().tobytes()).hexdigest()[:32] + ".safetensors"


def _read(path: Path, want: dict) -> tuple[list[int], list[int], Tensor] | None:
    """``(file rows, wanted indices, rows)`` of the keys in ``want`` (key -> index) that the cache file
    ``path`` holds (its rows read only when it holds any); None, with a warning, when the file is damaged."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = f.get_tensor("keys")
            if keys.dtype != torch.uint8 or keys.dim() != 2 or keys.shape[1] != KEY_BYTES:
                raise ValueError(f"keys of shape {tuple(keys.shape)} and dtype {keys.dtype}")
            pairs = [(j, want[k]) for j, k in enumerate(map(bytes, keys.numpy())) if k in want]
            if not pairs:
                return [], [], torch.empty(0, 0)
            rows = f.get_tensor("rows")
        if rows.dim() != 2 or rows.shape[0] != keys.shape[0] or not torch.isfinite(rows).all():
            raise ValueError(f"rows of shape {tuple(rows.shape)} for {keys.shape[0]} keys, or non-finite rows")
        return [j for j, _ in pairs], [i for _, i in pairs], rows.float()
    except Exception as e:  # noqa: BLE001  (safetensors, a truncated file or a wrong layout: recomputed)
        log.warning("feature cache %s unreadable (%s); its images are computed again", path, " ".join(str(e).split()))
        return None


def cached_rows(images: Tensor, tag: str, compute: Callable[[Tensor], Tensor]) -> tuple[Tensor, int]:
    """``(rows [N, D] float32, number of images computed)`` of uint8 ``images [N, 1 or 3, H, W]``: each image's
    row read from the cache folder of ``tag`` (:func:`feature_cache_folder`), the others computed by
    ``compute(uint8 images) -> [M, D]`` (one call, on the missing images only, each distinct image once) and
    stored in a new file."""
    keys = image_keys(images)
    uniq, first, inverse = _unique(keys)
    folder = feature_cache_folder(tag)
    exact = folder / _file_name(uniq)
    files = [exact] if exact.is_file() else []
    files += sorted(p for p in folder.glob("*.safetensors") if p != exact) if folder.is_dir() else []
    want = {bytes(k): i for i, k in enumerate(uniq.numpy())}
    out: Tensor | None = None
    found = torch.zeros(uniq.shape[0], dtype=torch.bool)
    for path in files:
        got = _read(path, want)
        if got is None or not got[0]:
            continue
        js, idx, frows = got
        if out is not None and frows.shape[1] != out.shape[1]:
            log.warning("feature cache %s holds rows of width %d, not %d; skipped", path, frows.shape[1], out.shape[1])
            continue
        out = torch.empty(uniq.shape[0], frows.shape[1]) if out is None else out
        out[idx], found[idx] = frows[js], True
        want = {k: i for k, i in want.items() if not found[i]}
        if not want:
            break
    miss = (~found).nonzero().flatten()
    if miss.numel() == 0:
        assert out is not None
        log.info("feature cache: the rows of %d images read from %s", keys.shape[0], folder)
        return out[inverse], 0
    new = compute(images[first[miss]]).detach().float().cpu().reshape(miss.numel(), -1)
    if out is None:
        out = torch.empty(uniq.shape[0], new.shape[1])
    elif new.shape[1] != out.shape[1]:
        raise ShapeError(
            f"features: {tag} gave rows of width {new.shape[1]}; its cached rows in {str(folder)!r} have "
            f"{out.shape[1]} (written by another network under the same name?): remove that folder"
        )
    out[miss] = new
    if torch.isfinite(new).all():  # non-finite rows are never stored
        _store(folder, uniq[miss], new)
    return out[inverse], int(miss.numel())


def _unique(keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(distinct keys in first-seen order, the index of each one's first image, each image's distinct index)."""
    seen: dict[bytes, int] = {}
    first: list[int] = []
    inverse = [seen.setdefault(k, len(seen)) for k in map(bytes, keys.numpy())]
    for i, u in enumerate(inverse):
        if u == len(first):
            first.append(i)
    f = torch.tensor(first, dtype=torch.long)
    return keys[f], f, torch.tensor(inverse, dtype=torch.long)


def _store(folder: Path, keys: Tensor, rows: Tensor) -> None:
    from .._io import atomic_save_safetensors

    path = folder / _file_name(keys)
    try:
        atomic_save_safetensors({"keys": keys.contiguous(), "rows": rows.contiguous()}, path)
    except (OSError, OutputError) as e:  # a read-only or full cache only costs the computation next time
        log.warning("feature cache: could not store %d rows at %s: %s", rows.shape[0], path, " ".join(str(e).split()))


def real_feature_rows(images: Tensor, **net: Unpack[FeatureNet]) -> tuple[Tensor, bool]:
    """``(rows [N, D], cache_hit)``: the FID-layer feature rows of the uint8 real images ``[N, 1 or 3, H, W]``
    with ``feature_extractor`` (the network's keywords: :class:`~latentflow.metrics.features.FeatureNet`; its
    weights as :func:`~latentflow.metrics.fidelity.compute_metrics` resolves
    them for ``offline``), through the shared cache (:func:`cached_rows`); ``cache_hit`` is True when no
    image was computed. The rows are torch-fidelity's (:func:`~latentflow.metrics.features.feature_rows`)."""
    from . import fidelity as F
    from .features import feature_rows

    feature_extractor = net.get("feature_extractor", INCEPTION)
    _, weights = F.resolve_extractor(feature_extractor, net.get("offline"), need_logits=False)

    def compute(u8: Tensor) -> Tensor:
        return feature_rows(u8, **net)

    rows, computed = cached_rows(images, f"{feature_extractor}-{weights}", compute)
    return rows, computed == 0
