"""Architectures by name: a plain dict registry, ``ARCHITECTURES[name](**kwargs) -> nn.Module``.

The manifest names an architecture and its kwargs; ``build(name, **kwargs)`` makes the module.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ManifestError

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register_arch(name: str):
    def deco(cls):
        if name in ARCHITECTURES:
            raise ManifestError(f'architecture "{name}" is already registered')
        ARCHITECTURES[name] = cls
        return cls
    return deco


def build(name: str, **kwargs) -> nn.Module:
    if name not in ARCHITECTURES:
        raise ManifestError(f'Unknown architecture "{name}". Available: {", ".join(sorted(ARCHITECTURES))}.')
    try:
        return ARCHITECTURES[name](**kwargs)
    except TypeError as e:
        raise ManifestError(f'architecture "{name}" cannot be built with {kwargs}: {e}') from e


def _mlp(sizes: Sequence[int], slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope) if slope > 0 else nn.ReLU())
    return nn.Sequential(*layers)


@register_arch("mlp_g")
class MLPGenerator(nn.Module):
    """Fully connected generator ``z [B, latent_dim] -> x [B, out_dim]`` (DOT's 2-D G: 3×256, LeakyReLU)."""

    def __init__(self, latent_dim: int = 2, hidden: Sequence[int] = (256, 256, 256), out_dim: int = 2,
                 slope: float = 0.2):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = _mlp([latent_dim, *hidden, out_dim], slope)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@register_arch("mlp_d")
class MLPDiscriminator(nn.Module):
    """Fully connected discriminator ``x [B, in_dim] -> [B]`` (DOT's 2-D D: 3×512, LeakyReLU)."""

    def __init__(self, in_dim: int = 2, hidden: Sequence[int] = (512, 512, 512), slope: float = 0.2):
        super().__init__()
        self.net = _mlp([in_dim, *hidden, 1], slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))[:, 0]


# ---------------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------------

def _sn(module: nn.Module, enabled: bool = True, eps: float = 1e-6) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) through ``torch.nn.utils.spectral_norm``, whose
    state-dict keys (``weight_orig``, ``weight_u``, ``weight_v``) are what SN-GAN checkpoints store."""
    return nn.utils.spectral_norm(module, eps=eps) if enabled else module


def _act(slope: float) -> nn.Module:
    # never in place: a shortcut that aliases the input must not see the activation by accident
    return nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()


def _class_labels(module: nn.Module, y, batch: int, device) -> torch.Tensor:
    """Labels for a class-conditional model: ``y`` if given, else ``module.class_label`` (an int or a
    ``[B]`` tensor) broadcast to the batch. The samplers call ``G(z)``/``D(x)`` only, so the class of a
    conditional pair is chosen by setting ``class_label`` (``ModelPair.set_class``)."""
    if y is None:
        y = module.class_label
        if isinstance(y, int):                       # the common case: no host sync on the device
            if not 0 <= y < module.num_classes:
                raise ManifestError(f"class_label must lie in [0, {module.num_classes - 1}]; got {y}")
            return torch.full((batch,), y, device=device, dtype=torch.long)
    y = torch.as_tensor(y, device=device, dtype=torch.long)
    if y.dim() == 0:
        y = y.expand(batch)
    if y.shape != (batch,):
        raise ManifestError(f"class labels must be an int or a tensor of shape ({batch},); got shape {tuple(y.shape)}")
    if int(y.min()) < 0 or int(y.max()) >= module.num_classes:
        raise ManifestError(f"class labels must lie in [0, {module.num_classes - 1}]; got {y.min().item()}..{y.max().item()}")
    return y


# ---------------------------------------------------------------------------------------------------
# DCGAN (Radford et al. 2016): transposed convolutions 4x4 stride 2 with BatchNorm + ReLU in G,
# strided convolutions with LeakyReLU(0.2) in D, tanh output, no pooling and no hidden dense layers.
# ---------------------------------------------------------------------------------------------------

class DCGANGenerator(nn.Module):
    """``z [B, latent_dim] -> x [B, channels, size, size]`` in [-1, 1]; size 32 or 64 (4x4 seed, doubling)."""

    def __init__(self, size: int = 32, latent_dim: int = 100, ch: int = 64, channels: int = 3):
        super().__init__()
        if size not in (32, 64):
            raise ManifestError(f"DCGAN size must be 32 or 64; got {size}")
        self.latent_dim, self.size, self.channels = latent_dim, size, channels
        n_up = {32: 3, 64: 4}[size]
        widths = [ch * 2 ** i for i in reversed(range(n_up))]          # e.g. 32: [256, 128, 64]
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """``x [B, channels, size, size] -> [B]`` logits. ``norm``: "bn" (DCGAN), "sn" (spectral norm) or "none"."""

    def __init__(self, size: int = 32, ch: int = 64, channels: int = 3, norm: str = "bn", slope: float = 0.2):
        super().__init__()
        if size not in (32, 64):
            raise ManifestError(f"DCGAN size must be 32 or 64; got {size}")
        if norm not in ("bn", "sn", "none"):
            raise ManifestError(f'norm must be one of bn, sn, none; got "{norm}"')
        n_down = {32: 3, 64: 4}[size]
        widths = [ch * 2 ** i for i in range(n_down)]                   # e.g. 32: [64, 128, 256]
        sn = norm == "sn"
        layers: list[nn.Module] = [_sn(nn.Conv2d(channels, widths[0], 4, 2, 1), sn), _act(slope)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers.append(_sn(nn.Conv2d(a, b, 4, 2, 1, bias=norm != "bn"), sn))
            if norm == "bn":
                layers.append(nn.BatchNorm2d(b))
            layers.append(_act(slope))
        layers.append(_sn(nn.Conv2d(widths[-1], 1, 4, 1, 0), sn))        # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)[:, 0]


@register_arch("dcgan32_g")
class DCGAN32Generator(DCGANGenerator):
    def __init__(self, latent_dim: int = 100, ch: int = 64, channels: int = 3):
        super().__init__(32, latent_dim, ch, channels)


@register_arch("dcgan32_d")
class DCGAN32Discriminator(DCGANDiscriminator):
    def __init__(self, ch: int = 64, channels: int = 3, norm: str = "bn", slope: float = 0.2):
        super().__init__(32, ch, channels, norm, slope)


@register_arch("dcgan64_g")
class DCGAN64Generator(DCGANGenerator):
    def __init__(self, latent_dim: int = 100, ch: int = 64, channels: int = 3):
        super().__init__(64, latent_dim, ch, channels)


@register_arch("dcgan64_d")
class DCGAN64Discriminator(DCGANDiscriminator):
    def __init__(self, ch: int = 64, channels: int = 3, norm: str = "bn", slope: float = 0.2):
        super().__init__(64, ch, channels, norm, slope)


@register_arch("dcgan28_g")
class DCGAN28Generator(nn.Module):
    """Small 28x28 generator for Fashion-MNIST: ``z [B, 64] -> dense 7x7x2ch -> 14x14xch -> [B, 1, 28, 28]``
    in [-1, 1] (tanh). About 0.2 M parameters with ``ch=32``, so it trains on 2 CPU cores."""

    def __init__(self, latent_dim: int = 64, ch: int = 32, channels: int = 1):
        super().__init__()
        self.latent_dim, self.ch, self.channels = latent_dim, ch, channels
        self.fc = nn.Sequential(nn.Linear(latent_dim, 2 * ch * 7 * 7, bias=False),
                                nn.BatchNorm1d(2 * ch * 7 * 7), nn.ReLU())
        self.net = nn.Sequential(nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),
                                 nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], 2 * self.ch, 7, 7))


@register_arch("dcgan28_d")
class DCGAN28Discriminator(nn.Module):
    """28x28 discriminator without BatchNorm (so D(x) of one sample never depends on the batch):
    two 4x4 stride-2 convolutions with LeakyReLU, a dense layer to one logit; ``[B]`` logits."""

    def __init__(self, ch: int = 32, channels: int = 1, sn: bool = True, slope: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(_sn(nn.Conv2d(channels, ch, 4, 2, 1), sn), _act(slope),
                                 _sn(nn.Conv2d(ch, 2 * ch, 4, 2, 1), sn), _act(slope))
        self.fc = _sn(nn.Linear(2 * ch * 7 * 7, 1), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x).flatten(1))[:, 0]


# ---------------------------------------------------------------------------------------------------
# SN-GAN (Miyato et al. 2018) for 32x32 images, with module names laid out as PyTorch-StudioGAN's
# `resnet` and `deep_conv` backbones name them, so their CIFAR-10 checkpoints load with strict=True:
#   G: linear0, blocks.<i>.0.<layer>, bn4 / conv2d5 (resnet) or conv2d4 (cnn)
#   D: blocks.<i>.0.<layer>, conv (cnn), linear1, embedding (projection discriminator, if conditional)
# Class-conditional variants (num_classes > 0) use conditional BatchNorm in G (bn.{running stats},
# embed0 = gain - 1, embed1 = bias) and a projection term <embed(y), h> in D (Miyato & Koyama 2018).
# ---------------------------------------------------------------------------------------------------

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
        for (block,) in self.blocks:
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
        self.blocks = nn.ModuleList([
            nn.ModuleList([_SNGANOptBlock(channels, ch)]),
            nn.ModuleList([_SNGANDiscBlock(ch, ch, True, shortcut_relu)]),
            nn.ModuleList([_SNGANDiscBlock(ch, ch, False, shortcut_relu)]),
            nn.ModuleList([_SNGANDiscBlock(ch, ch, False, shortcut_relu)]),
        ])
        self._init_head(ch, num_classes)

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        h = x
        for (block,) in self.blocks:
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

    def __init__(self, latent_dim: int = 128, num_classes: int = 0, channels: int = 3,
                 widths: Sequence[int] = (512, 256, 128, 64)):
        super().__init__()
        self.latent_dim, self.num_classes, self.widths = latent_dim, num_classes, tuple(widths)
        self.class_label = 0
        self.linear0 = nn.Linear(latent_dim, widths[0] * 4 * 4)
        self.blocks = nn.ModuleList([nn.ModuleList([_SNGANCNNGenBlock(a, b, num_classes)])
                                     for a, b in zip(widths[:-1], widths[1:])])
        self.conv2d4 = nn.Conv2d(widths[-1], channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, y=None) -> torch.Tensor:
        y = _class_labels(self, y, z.shape[0], z.device) if self.num_classes > 0 else None
        h = self.linear0(z).view(z.shape[0], self.widths[0], 4, 4)
        for (block,) in self.blocks:
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

    def __init__(self, num_classes: int = 0, channels: int = 3, slope: float = 0.1,
                 widths: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        self.slope = slope
        ins = [channels, *widths[:-2]]
        self.blocks = nn.ModuleList([nn.ModuleList([_SNGANCNNDiscBlock(a, b, slope)])
                                     for a, b in zip(ins, widths[:-1])])
        self.conv = _sn(nn.Conv2d(widths[-2], widths[-1], 3, 1, 1))
        self._init_head(widths[-1], num_classes)

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        h = x
        for (block,) in self.blocks:
            h = block(h)
        h = F.leaky_relu(self.conv(h), self.slope)
        return self._head(h.sum(dim=(2, 3)), y)


# ---------------------------------------------------------------------------------------------------
# Spectral-norm bookkeeping used by the loader
# ---------------------------------------------------------------------------------------------------

def spectral_norm_modules(model: nn.Module):
    """``(qualified_name, module, hook)`` for every module carrying a ``torch.nn.utils.spectral_norm`` hook."""
    from torch.nn.utils.spectral_norm import SpectralNorm
    for name, mod in model.named_modules():
        for hook in mod._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                yield name, mod, hook


def spectral_norm_buffer_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the power-iteration vectors (``<name>_u``, ``<name>_v``), which a checkpoint may lack."""
    keys = set()
    for name, _mod, hook in spectral_norm_modules(model):
        prefix = f"{name}." if name else ""
        keys |= {f"{prefix}{hook.name}_u", f"{prefix}{hook.name}_v"}
    return keys


@torch.no_grad()
def settle_spectral_norm(model: nn.Module, iterations: int = 20) -> int:
    """Run ``iterations`` power iterations ``v = W^T u/|.|, u = W v/|.|`` on each spectrally normalised weight,
    so that ``sigma = u^T W v`` is converged when a checkpoint came without its ``u``/``v`` vectors (eval mode
    then uses them as they are). Returns the number of weights settled."""
    n = 0
    for _name, mod, hook in spectral_norm_modules(model):
        w = getattr(mod, hook.name + "_orig")
        if hook.dim != 0:
            w = w.permute(hook.dim, *[d for d in range(w.dim()) if d != hook.dim])
        w = w.reshape(w.shape[0], -1)
        u, v = getattr(mod, hook.name + "_u"), getattr(mod, hook.name + "_v")
        for _ in range(iterations):
            v.copy_(F.normalize(w.t() @ u, dim=0, eps=hook.eps))
            u.copy_(F.normalize(w @ v, dim=0, eps=hook.eps))
        sigma = torch.dot(u, w @ v)
        setattr(mod, hook.name, getattr(mod, hook.name + "_orig") / sigma)
        n += 1
    return n


# architectures of the particle-model trainers (time/noise-conditioned D, denoisers) register themselves
from ..train import nets as _train_nets  # noqa: E402,F401
from ..train import nets_images as _train_nets_images  # noqa: E402,F401
