"""Training data by name: a toy 2-D set or an image set, as ``sample(n, generator) -> tensor``."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import rng
from ..data import IMAGE_SETS as _IMAGE_SHAPES
from ..data import TOY, Toy2D, load_image_set, sample_shape, toy
from ..errors import OptionError

IMAGE_SETS = tuple(_IMAGE_SHAPES)


class DataSource:
    """``sample(n, gen)`` draws a batch; ``shape`` is the per-sample shape; images are in [-1, 1]."""

    def __init__(self, name: str, root: str | None = None, device="cpu"):
        self.name = name
        self.device = torch.device(device)
        self.toy: Toy2D | None
        self.images: Tensor | None
        self.shape: tuple[int, ...]
        if name in TOY:
            self.toy = toy(name)
            self.images = None
            self.shape = (2,)
        elif name in IMAGE_SETS:
            imgs, _ = load_image_set(name, "train", root)
            self.images = (imgs.float() / 127.5 - 1.0).to(self.device)
            self.toy = None
            self.shape = tuple(self.images.shape[1:])
        else:
            raise OptionError(f'Unknown dataset "{name}". Available: {", ".join(sorted(TOY) + list(IMAGE_SETS))}.')

    @staticmethod
    def shape_of(name: str) -> tuple:
        """Per-sample shape of dataset ``name`` without loading it (``latentflow.data.sample_shape``)."""
        return sample_shape(name)

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        if self.toy is not None:
            return self.toy.sample(n, gen, self.device)
        assert self.images is not None  # __init__ sets one of toy and images
        idx = rng.randint(self.images.shape[0], (n,), gen, self.device)
        return self.images[idx]
