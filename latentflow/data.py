"""Data the project makes or reads itself: the 2-D toy distributions and IDX (MNIST-format) files.

Toy sets (Che et al. 2020, §5.1), each a ``Toy2D`` with its mode centres and std so that
the mode metrics know what "high quality" means:

* ``grid25``: 25 isotropic Gaussians, means on {-2, ..., 2}², variance 0.01 (std 0.1);
* ``ring8``: 8 Gaussians evenly spaced on a circle of radius 2, std 0.1;
* ``swissroll``: the Swiss roll ``(t cos t, t sin t) / 7.5`` with ``t ∈ 1.5π (1 + 2u)`` and noise 0.25
  before scaling (the 2-D projection of sklearn's ``make_swiss_roll`` as DOT and WGAN-GP use it).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import rng
from .errors import LatentflowError, OptionError


@dataclass(frozen=True)
class Toy2D:
    name: str
    centers: Tensor | None  # [K, 2] mode centres, or None (Swiss roll)
    std: float  # per-coordinate std of each mode (Swiss roll: noise / scale)

    def sample(self, n: int, generator: rng.GeneratorLike = None, device="cpu") -> Tensor:
        gen = rng.resolve(generator, device)
        if self.name == "swissroll":
            u = rng.rand((n,), gen, "cpu", torch.float64)
            t = 1.5 * math.pi * (1 + 2 * u)
            pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)
            pts = pts + 0.25 * rng.randn((n, 2), gen, "cpu", torch.float64)
            return (pts / 7.5).float().to(device)
        assert self.centers is not None  # every set but the Swiss roll has mode centres
        k = rng.randint(self.centers.shape[0], (n,), gen, "cpu")
        x = self.centers[k] + self.std * rng.randn((n, 2), gen, "cpu", torch.float32)
        return x.to(device)


def _grid25() -> Tensor:
    v = torch.arange(-2, 3, dtype=torch.float32)
    return torch.cartesian_prod(v, v)


def _ring(k: int = 8, radius: float = 2.0) -> Tensor:
    ang = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return (radius * torch.stack([torch.cos(ang), torch.sin(ang)], 1)).float()


TOY = {
    "grid25": Toy2D("grid25", _grid25(), 0.1),
    "ring8": Toy2D("ring8", _ring(8, 2.0), 0.1),
    "swissroll": Toy2D("swissroll", None, 0.25 / 7.5),
}


def toy(name: str) -> Toy2D:
    """The toy distribution called ``name`` (``grid25``, ``ring8``, ``swissroll``)."""
    if name not in TOY:
        raise OptionError(f'Unknown toy dataset "{name}". Available: {", ".join(sorted(TOY))}.')
    return TOY[name]


# ---------------------------------------------------------------------------------------------------
# IDX files (MNIST / Fashion-MNIST format)

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped): big-endian magic, dims, then uint8 data."""
    path = Path(path)
    if not path.exists():
        raise LatentflowError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) != 4 or head[0] != 0 or head[1] != 0:
            raise LatentflowError(f"{path} is not an IDX file (bad magic {head!r})")
        dtype_code, ndim = head[2], head[3]
        if dtype_code != 0x08:
            raise LatentflowError(f"{path}: only unsigned-byte IDX files are supported (type 0x{dtype_code:02x})")
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        data = f.read()
    n = int(np.prod(dims))
    if len(data) != n:
        raise LatentflowError(f"{path}: expected {n} bytes of data for shape {dims}, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _find_idx_folder(what: str, root, env: str, defaults, hint: str) -> Path:
    cands = [root] if root is not None else [os.environ.get(env), *defaults]
    for c in cands:
        if c and ((Path(c) / "t10k-images-idx3-ubyte.gz").exists() or (Path(c) / "t10k-images-idx3-ubyte").exists()):
            return Path(c)
    raise LatentflowError(
        f"{what} not found (looked in: "
        + (", ".join(str(c) for c in cands if c) or f"nowhere: ${env} is unset")
        + f"). {hint} the folder that holds train-images-idx3-ubyte.gz and friends."
    )


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder holding Fashion-MNIST's IDX files: ``root``, ``$LATENTFLOW_FASHION_MNIST``, or Debian's."""
    return _find_idx_folder(
        "Fashion-MNIST",
        root,
        "LATENTFLOW_FASHION_MNIST",
        FASHION_MNIST_DIRS,
        "Install Debian's package (apt-get install dataset-fashion-mnist) or pass",
    )


def find_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder holding MNIST's IDX files (the same names as Fashion-MNIST's): ``root`` or ``$LATENTFLOW_MNIST``.
    latentflow does not download it."""
    return _find_idx_folder("MNIST", root, "LATENTFLOW_MNIST", (), "Set $LATENTFLOW_MNIST (or pass data_root) to")


def _load_idx_set(find, root, split: str) -> tuple[Tensor, Tensor]:
    """Images and labels of ``split`` from the IDX folder ``find(root)`` (the split is checked first)."""
    if split not in ("train", "test"):
        raise OptionError(f'split must be "train" or "test"; got {split!r}')
    folder = find(root)
    stem = "train" if split == "train" else "t10k"

    def pick(name):
        p = folder / f"{name}.gz"
        return p if p.exists() else folder / name

    imgs = read_idx(pick(f"{stem}-images-idx3-ubyte"))
    labels = read_idx(pick(f"{stem}-labels-idx1-ubyte"))
    return torch.from_numpy(imgs.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_mnist32(split: str = "train", root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """MNIST zero-padded to 32x32 as in Franceschi et al. 2023 (``(images uint8 [N, 1, 32, 32], labels)``)."""
    imgs, labels = _load_idx_set(find_mnist, root, split)
    return torch.nn.functional.pad(imgs, (2, 2, 2, 2)), labels


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST ``(images uint8 [N, 1, 28, 28], labels int64 [N])`` for ``split`` in train / test."""
    return _load_idx_set(find_fashion_mnist, root, split)


def load_image_set(name: str, split: str = "train", root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """The uint8 images and labels of image set ``name`` (a key of :data:`IMAGE_SETS`)."""
    if name not in _IMAGE_LOADERS:
        raise OptionError(f'Unknown image set "{name}". Available: {", ".join(IMAGE_SETS)}.')
    return _IMAGE_LOADERS[name](split, root)


IMAGE_SETS = {"fashion-mnist": (1, 28, 28), "mnist32": (1, 32, 32)}
_IMAGE_LOADERS = {"fashion-mnist": load_fashion_mnist, "mnist32": load_mnist32}


def sample_shape(name: str) -> tuple:
    """Per-sample shape of dataset ``name`` (a toy 2-D set or an image set) without loading it."""
    if name in TOY:
        return (2,)
    if name in IMAGE_SETS:
        return IMAGE_SETS[name]
    raise OptionError(f'Unknown dataset "{name}". Available: {", ".join(sorted(TOY) + list(IMAGE_SETS))}.')
