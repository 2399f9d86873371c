"""The real image sets metrics compare with, checked before any sampling and read lazily as Datasets.

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

``num_real`` takes the first images only (sorted files, leading rows).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._io import sha256_file
from ..errors import LatentflowError, OptionError

__all__ = [
    "RealSet",
    "check_image_files",
    "REGISTERED",
    "IMAGE_EXTENSIONS",
    "resolve_real",
    "real_dataset",
    "real_images",
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


def real_images(rs: RealSet) -> torch.Tensor:
    """The used images of a folder or ``.npz`` set as one uint8 tensor ``[N, C, H, W]`` (a folder's converted
    to RGB, an ``.npz``'s as stored: C = 1 or 3), the pixels the feature network sees."""
    if rs.kind == "npz":
        return _NpzImages(rs)._load()
    if rs.kind != "folder":
        raise OptionError(f"real: expected a folder or .npz set to read as a tensor; got the {rs.kind} set {rs.spec!r}")
    ds = real_dataset(rs)
    return torch.stack([ds[i] for i in range(rs.num)])
