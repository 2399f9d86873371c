"""The ResNet SN-GAN of POSTECH-CVLab/PyTorch-StudioGAN (``src/models/resnet.py``) for 32x32 images, laid out as
its code builds it since 2022-01-25, so that its CIFAR-10 SNGAN checkpoints load with ``strict=True``
(class-conditional: conditional BatchNorm in G, projection discriminator, hinge loss; Miyato et al. 2018 and
Miyato & Koyama 2018).

Generator (``C = 4 g_conv_dim``, no spectral norm; ``e_y`` the one-hot label)::

    h   = linear0(z) viewed as [B, C, 4, 4]
    h  <- up_conv2d0(h) + conv2d2(ReLU(cBN2(conv2d1(up(ReLU(cBN1(h)))))))     three times, to 32x32
    x   = tanh(conv2d5(ReLU(bn4(h))))
    cBN(h, y) = BN(h) * (1 + W_gain e_y) + W_bias e_y      (BN without affine parameters, eps 1e-4)

Discriminator (``C = 2 d_conv_dim``, every weight spectrally normalised, ``torch.nn.utils.spectral_norm``)::

    h = avgpool(conv2d2(ReLU(conv2d1(x)))) + conv2d0(avgpool(x))                     (optimised block)
    h = pool(conv2d2(ReLU(conv2d1(ReLU(h))))) + shortcut(ReLU(h))                   (down, -, -)
    f = sum_{H, W} ReLU(h);   D(x, y) = linear1(f) + <embedding[y], f>                 -> [B]

The shortcut takes ``ReLU(h)``, not ``h``: StudioGAN's activation is ``nn.ReLU(inplace=True)`` and its block
keeps ``x0 = x`` before activating ``x`` in place, so the shortcut of a trained StudioGAN discriminator sees the
activated tensor (``shortcut_relu=True``, the default here; ``False`` gives the textbook block). The shortcut is
``conv2d0`` then pooling in the down block and the identity in the other two.

Pre-2022 StudioGAN files store the class-conditional gain and bias as ``nn.Embedding`` tables ``embed0`` /
``embed1`` over class indices with the same ``1 + embed0[y]`` formula; :func:`studiogan_upgrade_state_dict`
maps them to this layout (``gain.weight = embed0.weight^T``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from ..errors import IntegrityError, ShapeError
from ._common import _slotted
from .registry import register_arch
from .resnet_sngan import _SNGANDiscBlock, _SNGANOptBlock

__all__ = [
    "StudioGANResNetGenerator",
    "StudioGANResNetDiscriminator",
    "studiogan_upgrade_state_dict",
    "studiogan_downgrade_state_dict",
    "read_studiogan_checkpoint",
]


def _labels(y, batch: int, num_classes: int, device) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != batch or y.dtype.is_floating_point:
        got = f"{list(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ShapeError(f"y: expected integer class labels of shape [{batch}], got {got}")
    if batch and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ShapeError(
            f"y: expected class labels in [0, {num_classes - 1}], got values from {int(y.min())} to {int(y.max())}"
        )
    return y.to(device=device, dtype=torch.long)


class _ConditionalBatchNorm2d(nn.Module):
    """``BN(x) * (1 + gain(e_y)) + bias(e_y)`` with ``gain``, ``bias`` bias-free linear maps of the one-hot label."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(features, eps=1e-4, momentum=0.1, affine=False)
        self.gain = nn.Linear(num_classes, features, bias=False)
        self.bias = nn.Linear(num_classes, features, bias=False)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        gain = (1 + self.gain(onehot))[:, :, None, None]
        return self.bn(x) * gain + self.bias(onehot)[:, :, None, None]


class _GenBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.bn1 = _ConditionalBatchNorm2d(num_classes, cin)
        self.bn2 = _ConditionalBatchNorm2d(num_classes, cout)
        self.conv2d0 = nn.Conv2d(cin, cout, 1, 1, 0)
        self.conv2d1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2d2 = nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        h = self.conv2d1(F.interpolate(F.relu(self.bn1(x, onehot)), scale_factor=2, mode="nearest"))
        h = self.conv2d2(F.relu(self.bn2(h, onehot)))
        return h + self.conv2d0(F.interpolate(x, scale_factor=2, mode="nearest"))


@register_arch("studiogan_resnet32_g")
class StudioGANResNetGenerator(nn.Module):
    """``G(z, y)``: ``z [B, z_dim]`` and class labels ``y [B]`` (long) to images ``[B, 3, 32, 32]`` in [-1, 1].
    StudioGAN's CIFAR-10 SNGAN: ``z_dim=128, g_conv_dim=64, num_classes=10``."""

    def __init__(self, z_dim: int = 128, g_conv_dim: int = 64, num_classes: int = 10):
        super().__init__()
        if int(num_classes) < 1 or int(g_conv_dim) < 1 or int(z_dim) < 1:
            raise ShapeError(
                f"StudioGANResNetGenerator: expected positive z_dim, g_conv_dim, num_classes, got "
                f"{z_dim!r}, {g_conv_dim!r}, {num_classes!r}"
            )
        self.z_dim = self.latent_dim = int(z_dim)
        self.num_classes = int(num_classes)
        self.ch = 4 * int(g_conv_dim)
        self.linear0 = nn.Linear(self.z_dim, self.ch * 4 * 4)
        self.blocks = nn.ModuleList([nn.ModuleList([_GenBlock(self.ch, self.ch, self.num_classes)]) for _ in range(3)])
        self.bn4 = nn.BatchNorm2d(self.ch, eps=1e-4, momentum=0.1)
        self.conv2d5 = nn.Conv2d(self.ch, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ShapeError(f"z: expected [B, {self.z_dim}], got {list(z.shape)}")
        y = _labels(y, z.shape[0], self.num_classes, z.device)
        onehot = F.one_hot(y, self.num_classes).to(z.dtype)
        h = self.linear0(z).view(z.shape[0], self.ch, 4, 4)
        for block in _slotted(self.blocks):
            h = block(h, onehot)
        return torch.tanh(self.conv2d5(F.relu(self.bn4(h))))


def _sn(module: nn.Module) -> nn.Module:
    return spectral_norm(module, eps=1e-6)


# the D blocks are those of the pre-2022 layout (the 2022 change touched only G's conditional BatchNorm)
_DiscOptBlock, _DiscBlock = _SNGANOptBlock, _SNGANDiscBlock


@register_arch("studiogan_resnet32_d")
class StudioGANResNetDiscriminator(nn.Module):
    """``D(x, y)``: images ``[B, 3, 32, 32]`` and class labels ``y [B]`` to StudioGAN's ``adv_output``, ``[B]``
    (upstream returns a dict and squeezes, so a batch of one gives a 0-d tensor there; always ``[B]`` here).
    StudioGAN's CIFAR-10 SNGAN: ``d_conv_dim=64, num_classes=10``."""

    def __init__(self, d_conv_dim: int = 64, num_classes: int = 10, shortcut_relu: bool = True):
        super().__init__()
        if int(num_classes) < 1 or int(d_conv_dim) < 1:
            raise ShapeError(
                f"StudioGANResNetDiscriminator: expected positive d_conv_dim and num_classes, got "
                f"{d_conv_dim!r}, {num_classes!r}"
            )
        self.num_classes = int(num_classes)
        ch = 2 * int(d_conv_dim)
        self.blocks = nn.ModuleList(
            [nn.ModuleList([_DiscOptBlock(3, ch)])]
            + [nn.ModuleList([_DiscBlock(ch, ch, down, shortcut_relu)]) for down in (True, False, False)]
        )
        self.linear1 = _sn(nn.Linear(ch, 1))
        self.embedding = _sn(nn.Embedding(self.num_classes, ch))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ShapeError(f"x: expected images [B, 3, 32, 32], got {list(x.shape)}")
        y = _labels(y, x.shape[0], self.num_classes, x.device)
        h = x
        for block in _slotted(self.blocks):
            h = block(h)
        f = F.relu(h).sum(dim=(2, 3))
        return self.linear1(f)[:, 0] + (self.embedding(y) * f).sum(1)


_OLD_NEW = ((".embed0.weight", ".gain.weight"), (".embed1.weight", ".bias.weight"))


def _rename(sd: dict, pairs) -> dict:
    """Rename the conditional-BatchNorm tables by ``pairs`` (old suffix -> new suffix), transposed, in place in
    the key order; every other entry is passed through as is."""
    out = {}
    for key, value in sd.items():
        for old, new in pairs:
            if key.endswith(old) and ".bn" in key:
                if not isinstance(value, torch.Tensor) or value.dim() != 2:
                    raise IntegrityError(
                        f"state_dict[{key!r}]: expected a 2-d conditional-BatchNorm table, got "
                        f"{getattr(value, 'shape', type(value).__name__)}"
                    )
                key, value = key[: -len(old)] + new, value.t().contiguous()
                break
        out[key] = value
    return out


def studiogan_upgrade_state_dict(sd: dict) -> dict:
    """Map a pre-2022 StudioGAN generator state dict (cBN ``bnK.embed0.weight`` / ``bnK.embed1.weight``,
    ``nn.Embedding`` tables ``[num_classes, C]`` over class indices, gain ``1 + embed0[y]``) to the current layout
    (``bnK.gain.weight`` / ``bnK.bias.weight``, bias-free ``nn.Linear`` ``[C, num_classes]`` on one-hot labels,
    gain ``1 + W_gain e_y``). Since ``W e_y`` is column ``y`` of ``W``, ``W_gain = embed0^T`` and
    ``W_bias = embed1^T`` give the same outputs. A state dict already in the current layout comes back unchanged."""
    return _rename(sd, _OLD_NEW)


def studiogan_downgrade_state_dict(sd: dict) -> dict:
    """The inverse of :func:`studiogan_upgrade_state_dict`: the current layout back to the pre-2022 one."""
    return _rename(sd, tuple((new, old) for old, new in _OLD_NEW))


def read_studiogan_checkpoint(obj) -> dict:
    """The model state dict of a loaded StudioGAN ``model=G-...pth`` / ``model=D-...pth`` file
    (``{"state_dict": ..., "optimizer": ..., ...}``), without the ``module.`` prefix of DataParallel /
    DistributedDataParallel runs. A bare state dict is accepted as well."""
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        got = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else type(obj).__name__
        raise IntegrityError(
            f"checkpoint: expected a StudioGAN {{'state_dict': {{name: tensor}}}} file, got {got}",
            expected="{'state_dict': state dict}",
            got=got,
        )
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd
