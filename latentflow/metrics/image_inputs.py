"""Images as torch-fidelity reads them: uint8 ``[N, C, H, W]`` (:func:`to_uint8` converts float images),
Datasets of ``[3, H, W]`` uint8 tensors (grey replicated to RGB; Fashion-MNIST read on first access) and a
function ``z -> images`` wrapped as a generative model for on-the-fly generation."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import OptionError, ShapeError

#: the reference sets named by string (Fashion-MNIST's splits)
REFERENCES = ("fashion-mnist-train", "fashion-mnist-test")
_FMNIST_SIZES = {"train": 60000, "test": 10000}


def to_uint8(x: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Float images in ``value_range`` -> uint8 ``[N, C, H, W]`` on the CPU:
    ``clamp(round((x - lo) * 255 / (hi - lo)), 0, 255)`` (round half to even; NaN -> 0).

    uint8 input is returned unchanged (on the CPU)."""
    if not torch.is_tensor(x):
        raise ShapeError(f"x: expected a torch.Tensor of images [N, C, H, W]; got {type(x).__name__}")
    if x.dim() != 4:
        raise ShapeError(f"x: expected images [N, C, H, W]; got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.cpu()
    if not x.is_floating_point():
        raise ShapeError(f"x: expected a float or uint8 tensor; got {x.dtype}")
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise OptionError(f"value_range: expected (low, high) with high > low; got {value_range!r}")
    y = torch.nan_to_num((x.detach().float() - lo) * (255.0 / (hi - lo)), nan=0.0)  # NaN -> 0
    return y.round().clamp(0, 255).to(torch.uint8).cpu()


def check_images(x: Tensor, name: str) -> Tensor:
    """``x`` as uint8 ``[N >= 1, 1 or 3, H, W]`` on the CPU, contiguous; ``ShapeError`` naming ``name`` otherwise."""
    if not torch.is_tensor(x):
        raise ShapeError(f"{name}: expected a uint8 tensor [N, C, H, W]; got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise ShapeError(
            f"{name}: expected dtype torch.uint8 (convert float images with "
            f"latentflow.metrics.to_uint8(x, value_range)); got {x.dtype}"
        )
    if x.dim() != 4 or x.shape[1] not in (1, 3) or x.shape[0] < 1:
        raise ShapeError(f"{name}: expected shape [N >= 1, 1 or 3, H, W]; got {tuple(x.shape)}")
    return x.cpu().contiguous()


class ImageTensorDataset(Dataset):
    """uint8 images ``[N, C, H, W]`` as a Dataset of ``[3, H, W]`` uint8 tensors (grey replicated)."""

    def __init__(self, images: Tensor, name: str = "images"):
        self.images = check_images(images, name)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        x = self.images[i]
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


class FashionMNISTDataset(Dataset):
    """Fashion-MNIST ``split`` as uint8 ``[3, 28, 28]`` tensors, read on first item access (so a cached
    reference statistic never touches the files)."""

    def __init__(self, split: str = "test", root: str | os.PathLike | None = None):
        if split not in _FMNIST_SIZES:
            raise OptionError(f'split: expected "train" or "test"; got {split!r}')
        self.split, self.root = split, root
        self._images: Tensor | None = None

    def _load(self) -> Tensor:
        if self._images is None:
            from ..data import load_fashion_mnist

            self._images = load_fashion_mnist(self.split, self.root)[0]
        return self._images

    def __len__(self) -> int:
        return _FMNIST_SIZES[self.split] if self._images is None else self._images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self._load()[i].expand(3, -1, -1).contiguous()


def register_datasets() -> None:
    """Register ``fashion-mnist-train`` / ``fashion-mnist-test`` with torch-fidelity (for direct use of
    ``torch_fidelity.calculate_metrics(input2="fashion-mnist-test", ...)``; idempotent).

    Note torch-fidelity then names its cache after the bare dataset name; :func:`compute_metrics` passes
    the Dataset itself with a cache name that also holds the weights hash."""
    from torch_fidelity.registry import DATASETS_REGISTRY, register_dataset

    for split in _FMNIST_SIZES:
        name = f"fashion-mnist-{split}"
        if name not in DATASETS_REGISTRY:
            register_dataset(name, lambda root, download, _s=split: FashionMNISTDataset(_s))


def make_sampler_model(
    fn: Callable[[Tensor], Tensor],
    z_size: int,
    *,
    value_range=(-1.0, 1.0),
    z_type: str = "normal",
    needs_grad: bool = True,
):
    """Wrap ``fn(z) -> images`` (float in ``value_range``, ``[B, C, H, W]``) as a torch-fidelity generative
    model for on-the-fly generation (``compute_metrics(model, ..., num_samples=N)``).

    torch-fidelity calls generators under ``torch.no_grad()``; samplers that follow gradients of D (DDLS,
    DG-Langevin, discriminator flow) need them, so ``fn`` runs under ``torch.enable_grad()`` when
    ``needs_grad``. Outputs are detached and converted with :func:`to_uint8`; grey is replicated to RGB.
    torch-fidelity draws ``z`` from ``numpy.random.RandomState(rng_seed)``."""
    from torch_fidelity.generative_model_base import GenerativeModelBase

    if not callable(fn):
        raise OptionError(f"fn: expected a callable z -> images; got {type(fn).__name__}")
    if not isinstance(z_size, int) or z_size < 1:
        raise OptionError(f"z_size: expected a positive int; got {z_size!r}")

    class _SamplerModel(GenerativeModelBase):
        def __init__(self):
            super().__init__()
            self.fn = fn  # an nn.Module here is registered, so torch-fidelity's .cuda() moves it

        @property
        def z_size(self):
            return z_size

        @property
        def z_type(self):
            return z_type

        @property
        def num_classes(self):
            return 0

        def forward(self, z):
            ctx = torch.enable_grad() if needs_grad else torch.no_grad()
            with ctx:
                x = self.fn(z)
            if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] not in (1, 3):
                raise ShapeError(
                    f"fn(z): expected images [B, 1 or 3, H, W]; got "
                    f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}"
                )
            x = to_uint8(x.detach(), value_range).to(z.device)
            return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x

    return _SamplerModel()
