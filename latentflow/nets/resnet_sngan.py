"""SN-GAN (Miyato et al. 2018) for 32x32 images, with module names laid out as PyTorch-StudioGAN's
``resnet`` and ``deep_conv`` backbones name them, so their CIFAR-10 checkpoints load with ``strict=True``:

* G: ``linear0``, ``blocks.<i>.0.<layer>``, ``bn4`` / ``conv2d5`` (resnet) or ``conv2d4`` (cnn);
* D: ``blocks.<i>.0.<layer>``, ``conv`` (cnn), ``linear1``, ``embedding`` (projection discriminator).

Class-conditional variants (``num_classes > 0``) use conditional BatchNorm in G (``bn`` running statistics,
``embed0`` = gain - 1, ``embed1`` = bias) and a projection term ``<embed(y), h>`` in D (Miyato & Koyama 2018).
StudioGAN's checkpoints need no key adapter here: the module names are theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import _class_labels, _slotted, _sn
from .registry import register_arch


class _CondBN(nn.Module):
    """BatchNorm without affine parameters followed by a class-dependent gain ``1 + embed0[y]`` and bias ``embed1[y]``."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.features = features
        self.bn = nn.BatchNorm2d(features, eps=1e-4, momentum=0.1, affine=False)
        self.embed0 = nn.Embedding(num_classes, features)
        self.embed1 = nn.Embedding(num_classes, features)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.embed0(y).view(-1, self.features, 1, 1)
        return self.bn(x) * gain + self.embed1(y).view(-1, self.features, 1, 1)


def _bn(features: int, num_classes: int) -> nn.Module:
    return _CondBN(num_classes, features) if num_classes > 0 else nn.BatchNorm2d(features, eps=1e-4, momentum=0.1)


def _apply_bn(bn: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
    return bn(x, y) if isinstance(bn, _CondBN) else bn(x)


class _SNGANResGenBlock(nn.Module):
    """Pre-activation up-block: ``BN-ReLU-up2-conv3-BN-ReLU-conv3`` plus shortcut ``up2-conv1``."""

    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.bn1, self.bn2 = _bn(cin, num_classes), _bn(cout, num_classes)
        self.conv2d0 = nn.Conv2d(cin, cout, 1, 1, 0)
        self.conv2d1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2d2 = nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor, y) -> torch.Tensor:
        h = F.relu(_apply_bn(self.bn1, x, y))
        h = self.conv2d1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.conv2d2(F.relu(_apply_bn(self.bn2, h, y)))
        return h + self.conv2d0(F.interpolate(x, scale_factor=2, mode="nearest"))


@register_arch("sngan_resnet32_g")
class SNGANResNetGenerator(nn.Module):
    """SN-GAN ResNet generator for 32x32 (Miyato et al. 2018, Table 4): ``z [B, 128] -> dense 4x4xch ->
    3 up-blocks -> BN-ReLU-conv3x3 -> tanh`` giving ``[B, 3, 32, 32]`` in [-1, 1]. ``ch=256`` is the paper's width
    (StudioGAN's g_conv_dim=64 times 4)."""

    def __init__(self, latent_dim: int = 128, ch: int = 256, num_classes: int = 0, channels: int = 3):
        super().__init__()
        self.latent_dim, self.ch, self.num_classes = latent_dim, ch, num_classes
        self.class_label = 0
        self.linear0 = nn.Linear(latent_dim, ch * 4 * 4)
        self.blocks = nn.ModuleList([nn.ModuleList([_SNGANResGenBlock(ch, ch, num_classes)]) for _ in range(3)])
        self.bn4 = nn.BatchNorm2d(ch, eps=1e-4, momentum=0.1)
        self.conv2d5 = nn.Conv2d(ch, channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, y=None) -> torch.Tensor:
        y = _class_labels(self, y, z.shape[0], z.device) if self.num_classes > 0 else None
        h = self.linear0(z).view(z.shape[0], self.ch, 4, 4)
        for block in _slotted(self.blocks):
            h = block(h, y)
        return torch.tanh(self.conv2d5(F.relu(self.bn4(h))))


class _SNGANOptBlock(nn.Module):
    """First D block: ``conv3-ReLU-conv3-avgpool`` plus shortcut ``avgpool-conv1`` (no pre-activation on images)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv2d0 = _sn(nn.Conv2d(cin, cout, 1, 1, 0))
        self.conv2d1 = _sn(nn.Conv2d(cin, cout, 3, 1, 1))
        self.conv2d2 = _sn(nn.Conv2d(cout, cout, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2d2(F.relu(self.conv2d1(x))), 2)
        return h + self.conv2d0(F.avg_pool2d(x, 2))


class _SNGANDiscBlock(nn.Module):
    """Pre-activation D block: ``ReLU-conv3-ReLU-conv3[-avgpool]`` plus shortcut ``conv1[-avgpool]`` when the
    shape changes, identity otherwise. ``shortcut_relu``: StudioGAN applies its ReLU in place, so its
    shortcut sees ReLU(x); that is what its trained discriminators computed, hence the default there."""

    def __init__(self, cin: int, cout: int, downsample: bool, shortcut_relu: bool):
        super().__init__()
        self.downsample, self.shortcut_relu = downsample, shortcut_relu
        self.learnable_sc = downsample or cin != cout
        if self.learnable_sc:
            self.conv2d0 = _sn(nn.Conv2d(cin, cout, 1, 1, 0))
        self.conv2d1 = _sn(nn.Conv2d(cin, cout, 3, 1, 1))
        self.conv2d2 = _sn(nn.Conv2d(cout, cout, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(x)
        h = self.conv2d2(F.relu(self.conv2d1(a)))
        sc = a if self.shortcut_relu else x
        if self.learnable_sc:
            sc = self.conv2d0(sc)
        if self.downsample:
            h, sc = F.avg_pool2d(h, 2), F.avg_pool2d(sc, 2)
        return h + sc


class _ProjectionHead(nn.Module):
    """``linear1(h) + <embedding[y], h>`` (projection discriminator) or just ``linear1(h)``; returns ``[B]``."""

    def _init_head(self, features: int, num_classes: int):
        self.num_classes = num_classes
        self.class_label = 0
        self.linear1 = _sn(nn.Linear(features, 1))
        if num_classes > 0:
            self.embedding = _sn(nn.Embedding(num_classes, features))

    def _head(self, h: torch.Tensor, y) -> torch.Tensor:
        out = self.linear1(h)[:, 0]
        if self.num_classes > 0:
            y = _class_labels(self, y, h.shape[0], h.device)
            out = out + (self.embedding(y) * h).sum(1)
        return out


@register_arch("sngan_resnet32_d")
class SNGANResNetDiscriminator(_ProjectionHead):
    """SN-GAN ResNet discriminator for 32x32 (Miyato et al. 2018, Table 4): an optimised block and three
    pre-activation blocks (down, down, -, -) of width ``ch`` with spectral norm everywhere, ReLU, global sum
    pooling and a dense layer; ``[B]`` logits (hinge-loss critic values for StudioGAN's SNGAN)."""

    def __init__(self, ch: int = 128, num_classes: int = 0, channels: int = 3, shortcut_relu: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.ModuleList([_SNGANOptBlock(channels, ch)]),
                nn.ModuleList([_SNGANDiscBlock(ch, ch, True, shortcut_relu)]),
                nn.ModuleList([_SNGANDiscBlock(ch, ch, False, shortcut_relu)]),
                nn.ModuleList([_SNGANDiscBlock(ch, ch, False, shortcut_relu)]),
            ]
        )
        self._init_head(ch, num_classes)

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        h = x
        for block in _slotted(self.blocks):
            h = block(h)
        return self._head(F.relu(h).sum(dim=(2, 3)), y)


class _SNGANCNNGenBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.deconv0 = nn.ConvTranspose2d(cin, cout, 4, 2, 1)
        self.bn0 = _bn(cout, num_classes)

    def forward(self, x: torch.Tensor, y) -> torch.Tensor:
        return F.relu(_apply_bn(self.bn0, self.deconv0(x), y))


@register_arch("sngan_cnn32_g")
class SNGANCNNGenerator(nn.Module):
    """SN-GAN standard CNN generator (Miyato et al. 2018, Table 3a): ``z [B, 128] -> dense 4x4x512 ->
    deconv 256, 128, 64 (4x4 stride 2, BN, ReLU) -> conv3x3 -> tanh``, ``[B, 3, 32, 32]``."""

    def __init__(
        self,
        latent_dim: int = 128,
        num_classes: int = 0,
        channels: int = 3,
        widths: Sequence[int] = (512, 256, 128, 64),
    ):
        super().__init__()
        self.latent_dim, self.num_classes, self.widths = latent_dim, num_classes, tuple(widths)
        self.class_label = 0
        self.linear0 = nn.Linear(latent_dim, widths[0] * 4 * 4)
        self.blocks = nn.ModuleList(
            [nn.ModuleList([_SNGANCNNGenBlock(a, b, num_classes)]) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.conv2d4 = nn.Conv2d(widths[-1], channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, y=None) -> torch.Tensor:
        y = _class_labels(self, y, z.shape[0], z.device) if self.num_classes > 0 else None
        h = self.linear0(z).view(z.shape[0], self.widths[0], 4, 4)
        for block in _slotted(self.blocks):
            h = block(h, y)
        return torch.tanh(self.conv2d4(h))


class _SNGANCNNDiscBlock(nn.Module):
    def __init__(self, cin: int, cout: int, slope: float):
        super().__init__()
        self.conv0 = _sn(nn.Conv2d(cin, cout, 3, 1, 1))
        self.conv1 = _sn(nn.Conv2d(cout, cout, 4, 2, 1))
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv1(F.leaky_relu(self.conv0(x), self.slope)), self.slope)


@register_arch("sngan_cnn32_d")
class SNGANCNNDiscriminator(_ProjectionHead):
    """SN-GAN standard CNN discriminator (Miyato et al. 2018, Table 3b): conv3x3/conv4x4-s2 pairs of width
    64, 128, 256, conv3x3 512, LeakyReLU(``slope``), spectral norm everywhere, global sum pooling as StudioGAN's
    `deep_conv`, dense -> ``[B]`` logits."""

    def __init__(
        self, num_classes: int = 0, channels: int = 3, slope: float = 0.1, widths: Sequence[int] = (64, 128, 256, 512)
    ):
        super().__init__()
        self.slope = slope
        ins = [channels, *widths[:-2]]
        self.blocks = nn.ModuleList(
            [nn.ModuleList([_SNGANCNNDiscBlock(a, b, slope)]) for a, b in zip(ins, widths[:-1])]
        )
        self.conv = _sn(nn.Conv2d(widths[-2], widths[-1], 3, 1, 1))
        self._init_head(widths[-1], num_classes)

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        h = x
        for block in _slotted(self.blocks):
            h = block(h)
        h = F.leaky_relu(self.conv(h), self.slope)
        return self._head(h.sum(dim=(2, 3)), y)
