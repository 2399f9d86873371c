"""Inception FID / KID / IS of generated images against a real image set, with cached reference statistics.

A real set is one of

* a dataset torch-fidelity registers (``cifar10-train``, ``cifar10-val``, ``cifar100-train``,
  ``cifar100-val``): torch-fidelity builds it (torchvision downloads CIFAR on first use, so this needs
  internet once);
* a folder of images (``*.png``, ``*.jpg``, ``*.jpeg``, not recursive, sorted by name), read by
  torch-fidelity's own ``ImagesPathDataset`` (converted to RGB, as torch-fidelity does for folders). The
  used files are checked when the set is resolved, before any sampling (:func:`check_image_files`): each
  must be a readable image (its header and, for PNG, the checksums of its chunks) and all must have one
  size; a file that still fails to decode later is a ``LatentflowError`` naming it;
* a ``.npz`` of uint8 images (``arr_0`` or its only array; ``[N, H, W, C]`` with C = 1 or 3, or
  ``[N, H, W]``): the layout the FID tools write and read.

``num_real`` takes the first images only (sorted files, leading rows). The reference features and FID
statistics are cached by torch-fidelity (``input2_cache_name``) under ``cache_dir() / "fidelity"``, in a
name made of the real data's **content hash** (sha256 of the used files' names and bytes, of the
``.npz`` file, or the registered name), the sample count and the feature extractor's weights tag: a
second call with the same real set reads the cache and does not touch the real images again.

FID is the Fréchet distance of Gaussians fitted to the pool3 features,
``FID = |μ₁ - μ₂|² + Tr(Σ₁ + Σ₂ - 2 (Σ₁ Σ₂)^{1/2})`` (Heusel et al. 2017); KID is the unbiased MMD² with
the cubic polynomial kernel over random subsets (Bińkowski et al. 2018). IS needs Inception logits,
which the offline weights do not have: it is then ``None`` with the reason under ``null_reasons``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._io import sha256_file
from ..errors import LatentflowError, OptionError, ShapeError
from ._base import INCEPTION, KEY_FID, KEY_IS_MEAN, KEY_IS_STD, KEY_KID_MEAN, KEY_KID_STD, cache_dir

log = logging.getLogger("latentflow.metrics")

__all__ = [
    "RealSet",
    "check_image_files",
    "REGISTERED",
    "IMAGE_EXTENSIONS",
    "resolve_real",
    "real_dataset",
    "real_metrics",
    "reference_cache_name",
    "DEFAULT_REAL",
]

#: torch-fidelity's registered real sets that latentflow names, with their sizes (known without loading)
REGISTERED = {"cifar10-train": 50000, "cifar10-val": 10000, "cifar100-train": 50000, "cifar100-val": 10000}
#: the default real set of a model's ``dataset`` (manifest ``dataset``)
DEFAULT_REAL = {"cifar10": "cifar10-train", "cifar100": "cifar100-train"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")  # torch-fidelity's ``samples_find_ext`` default


@dataclass(frozen=True)
class RealSet:
    """A checked real image set: what was given, its kind, split and the number of images used."""

    spec: str
    kind: str  # "registered" | "folder" | "npz"
    num: int  # images used (the first ``num``)
    total: int  # images available
    split: str | None = None  # "train" / "val" for registered sets
    path: Path | None = None
    files: tuple[Path, ...] = field(default=(), repr=False)
    npz_key: str | None = None

    def content_hash(self) -> str:
        """sha256 naming the used real data: the files' names and bytes (folder), the file (npz), or
        the registered name (torch-fidelity's dataset is fixed)."""
        if self.kind == "registered":
            return hashlib.sha256(self.spec.encode()).hexdigest()
        if self.kind == "npz":
            assert self.path is not None  # an npz set names its file
            return sha256_file(self.path)
        h = hashlib.sha256()
        for p in self.files[: self.num]:
            h.update(p.name.encode() + b"\0" + bytes.fromhex(sha256_file(p)))
        return h.hexdigest()

    def to_dict(self) -> dict:
        return {
            "real": self.spec,
            "kind": self.kind,
            "split": self.split,
            "num_real": self.num,
            "total_real": self.total,
            "path": str(self.path) if self.path is not None else None,
        }


def _npz_header(path: Path) -> tuple[str, tuple, np.dtype]:
    """(array name, shape, dtype) of ``arr_0`` (or the only array) of an ``.npz``, without reading the data."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".npy")]
            key = "arr_0.npy" if "arr_0.npy" in names else (names[0] if len(names) == 1 else None)
            if key is None:
                raise OptionError(
                    f"real: expected an .npz holding arr_0 (or one array); {str(path)!r} holds "
                    f"{', '.join(n[:-4] for n in names) or 'no arrays'}"
                )
            with zf.open(key) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise OptionError(f"real: expected a readable .npz of uint8 images; {str(path)!r}: {e}") from None
    return key[:-4], tuple(shape), dtype


def resolve_real(real: str | os.PathLike | RealSet, num_real: int | None = None) -> RealSet:
    """Check ``real`` (a registered name, a folder of images or an ``.npz``) without reading image data;
    ``OptionError`` naming ``real`` (or ``num_real``) otherwise."""
    if isinstance(real, RealSet):
        return real if num_real is None else resolve_real(real.spec, num_real)
    if num_real is not None and (isinstance(num_real, bool) or not isinstance(num_real, int) or num_real < 2):
        raise OptionError(f"num_real: expected an int >= 2 (FID needs two real images); got {num_real!r}")
    if not isinstance(real, (str, os.PathLike)):
        raise OptionError(
            f"real: expected a folder of images, a .npz file or one of {', '.join(REGISTERED)}; "
            f"got {type(real).__name__}"
        )
    spec = os.fspath(real)
    path = Path(spec).expanduser()
    if spec in REGISTERED and not path.exists():
        total = REGISTERED[spec]
        return RealSet(spec, "registered", _count(num_real, total, spec), total, split=spec.rsplit("-", 1)[1])
    if not path.exists():
        raise OptionError(
            f"real: expected a folder of images, a .npz file or one of {', '.join(REGISTERED)}; {spec!r} does not exist"
        )
    if path.is_dir():
        files = tuple(
            sorted(
                (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                key=lambda p: p.name,
            )
        )
        if len(files) < 2:
            raise OptionError(
                f"real: expected a folder with at least 2 images ({', '.join(IMAGE_EXTENSIONS)}); "
                f"{spec!r} holds {len(files)}"
            )
        num = _count(num_real, len(files), spec)
        check_image_files(files[:num], "real")
        return RealSet(spec, "folder", num, len(files), path=path, files=files)
    if path.suffix.lower() == ".npz":
        key, shape, dtype = _npz_header(path)
        ok = dtype == np.uint8 and (len(shape) == 3 or (len(shape) == 4 and shape[-1] in (1, 3)))
        if not ok:
            raise OptionError(
                f"real: expected uint8 images [N, H, W, C] (C = 1 or 3) or [N, H, W] in "
                f"{str(path)!r}; got {key} {dtype} {list(shape)}"
            )
        return RealSet(spec, "npz", _count(num_real, shape[0], spec), shape[0], path=path, npz_key=key)
    raise OptionError(
        f"real: expected a folder of images, a .npz file or one of {', '.join(REGISTERED)}; "
        f"{spec!r} is a file that is not .npz"
    )


def check_image_files(files, name: str = "real") -> tuple[int, int]:
    """Open every file of ``files`` with PIL and check it (``Image.verify``: the header and, for PNG, the
    checksum of every chunk) without decoding the pixels; all must have one size. Returns ``(width,
    height)``; a file that is not a readable image, or a second size, is one ``OptionError`` naming
    ``name`` and the file."""
    from PIL import Image, UnidentifiedImageError

    first = None
    for p in files:
        try:
            with Image.open(p) as im:
                size = im.size
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:  # PIL: a bad chunk is a SyntaxError
            why = " ".join(str(e).split()) or type(e).__name__
            raise OptionError(f"{name}: {str(p)!r} is not a readable image ({why}); remove or replace it") from None
        if first is None:
            first = (p, size)
        elif size != first[1]:
            raise OptionError(
                f"{name}: the images must all have one size; {Path(first[0]).name} is {first[1][0]}x{first[1][1]}, "
                f"{Path(p).name} is {size[0]}x{size[1]} (in {str(Path(p).parent)!r})"
            )
    return first[1] if first is not None else (0, 0)


def _count(num_real: int | None, total: int, spec: str) -> int:
    if num_real is None:
        return total
    if num_real > total:
        raise OptionError(f"num_real: expected at most the {total} images of {spec!r}; got {num_real}")
    return num_real


class _NpzImages(Dataset):
    """The first ``num`` images of an ``.npz`` as uint8 ``[3, H, W]`` (read on first item access)."""

    def __init__(self, rs: RealSet):
        self.rs = rs
        self._x: torch.Tensor | None = None

    def _load(self) -> torch.Tensor:
        if self._x is None:
            assert self.rs.path is not None  # an npz set names its file
            with np.load(self.rs.path, allow_pickle=False) as z:
                a = z[self.rs.npz_key][: self.rs.num]
            a = a[..., None] if a.ndim == 3 else a
            self._x = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)
        return self._x

    def __len__(self) -> int:
        return self.rs.num

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self._load()[i]
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x.contiguous()


class _Registered(Dataset):
    """A torch-fidelity registered dataset, built on first item access (a cached statistic never builds it)."""

    def __init__(self, rs: RealSet, download: bool = True):
        self.rs, self.download = rs, download
        self._ds: Dataset | None = None

    def _get(self) -> Dataset:
        if self._ds is None:
            from torch_fidelity.registry import DATASETS_REGISTRY

            root = Path(torch.hub.get_dir()).parent / "fidelity_datasets"
            root.mkdir(parents=True, exist_ok=True)
            try:
                self._ds = DATASETS_REGISTRY[self.rs.spec](str(root), self.download)
            except Exception as e:  # noqa: BLE001  (torchvision's download/integrity errors vary)
                raise LatentflowError(
                    f"real: {self.rs.spec} could not be loaded into {root} (torchvision downloads it on first use; "
                    f"no internet?): {type(e).__name__}: {e}. Without internet pass a folder of images or a .npz "
                    "(--real PATH)"
                ) from e
        return self._ds

    def __len__(self) -> int:
        return self.rs.num

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._get()[i]


def real_dataset(rs: RealSet) -> Dataset:
    """The used images of ``rs`` as a Dataset of uint8 ``[3, H, W]`` tensors, read lazily."""
    if rs.kind == "registered":
        return _Registered(rs)
    if rs.kind == "npz":
        return _NpzImages(rs)
    from torch_fidelity.datasets import ImagesPathDataset

    return _Named(ImagesPathDataset([str(p) for p in rs.files[: rs.num]]), rs.files[: rs.num])


class _Named(Dataset):
    """A folder's images, where a file that fails to decode is a ``LatentflowError`` naming it (the caller
    then keeps the samples and records the error) instead of PIL's traceback."""

    def __init__(self, ds: Dataset, files):
        self.ds, self.files = ds, files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            return self.ds[i]
        except Exception as e:  # noqa: BLE001  (PIL's decoding errors vary by format)
            raise LatentflowError(f"real: {str(self.files[i])!r} cannot be read: {type(e).__name__}: {e}") from e


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
    samples = F._check_images(samples, "samples")
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
