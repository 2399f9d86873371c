"""Network architectures by family, and the registry that builds them by name.

``build(name, **kwargs)`` makes the module a manifest entry or a trained folder names; ``ARCHITECTURES``
lists them. Families: ``mlp`` (2-D G/D), ``dcgan`` (DCGAN 28/32/64), ``resnet_sngan`` (SN-GAN ResNet and
CNN in PyTorch-StudioGAN's layout), ``time_cond`` (time/noise-conditioned D and MLP denoisers of the
particle-model trainers), ``denoiser28`` (a small conv U-Net denoiser), ``simple_cnn`` (xyfJASON's SimpleCNN GAN),
``studiogan_resnet`` (PyTorch-StudioGAN's ResNet SN-GAN, post-2022 conditional-BatchNorm layout),
``dflow_images`` (the time-conditioned image critic of the Discriminator Flow trainer), ``score_nets`` (EDM-preconditioned denoiser MLP and noise-conditioned discriminators for guidance). This package imports only torch and
``latentflow.errors``: loading a model never imports trainer code.
"""

from __future__ import annotations

from . import (
    dcgan,
    denoiser28,
    dflow_images,
    mlp,
    priors,
    resnet_sngan,
    score_nets,
    simple_cnn,
    studiogan_resnet,
    time_cond,
)  # noqa: F401  (registers the architectures)
from ._common import settle_spectral_norm, spectral_norm_buffer_keys, spectral_norm_modules
from .dcgan import (
    DCGAN28Discriminator,
    DCGAN28Generator,
    DCGAN32Discriminator,
    DCGAN32Generator,
    DCGAN64Discriminator,
    DCGAN64Generator,
    DCGANDiscriminator,
    DCGANGenerator,
)
from .denoiser28 import ConvDenoiser28
from .mlp import MLPDiscriminator, MLPGenerator
from .registry import ARCHITECTURES, build, register_arch
from .resnet_sngan import SNGANCNNDiscriminator, SNGANCNNGenerator, SNGANResNetDiscriminator, SNGANResNetGenerator
from .simple_cnn import SimpleCNNDiscriminator, SimpleCNNGenerator, read_xyfjason_checkpoint
from .studiogan_resnet import (
    StudioGANResNetDiscriminator,
    StudioGANResNetGenerator,
    read_studiogan_checkpoint,
    studiogan_upgrade_state_dict,
)
from .time_cond import (
    FourierEmbedding,
    MLPDenoiser,
    NoiseMLPDiscriminator,
    TimeConv28Discriminator,
    TimeMLPDiscriminator,
)

__all__ = [
    "ARCHITECTURES",
    "build",
    "register_arch",
    "settle_spectral_norm",
    "spectral_norm_buffer_keys",
    "spectral_norm_modules",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "DCGAN28Generator",
    "DCGAN28Discriminator",
    "DCGAN32Generator",
    "DCGAN32Discriminator",
    "DCGAN64Generator",
    "DCGAN64Discriminator",
    "SNGANResNetGenerator",
    "SNGANResNetDiscriminator",
    "SNGANCNNGenerator",
    "SNGANCNNDiscriminator",
    "FourierEmbedding",
    "TimeMLPDiscriminator",
    "NoiseMLPDiscriminator",
    "MLPDenoiser",
    "TimeConv28Discriminator",
    "ConvDenoiser28",
    "SimpleCNNGenerator",
    "SimpleCNNDiscriminator",
    "read_xyfjason_checkpoint",
    "StudioGANResNetGenerator",
    "StudioGANResNetDiscriminator",
    "read_studiogan_checkpoint",
    "studiogan_upgrade_state_dict",
]
