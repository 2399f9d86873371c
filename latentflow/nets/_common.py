"""Pieces shared by the architecture families: MLP stacks, spectral normalisation and its bookkeeping
(finding the power-iteration vectors a checkpoint may lack, and settling them), activations and class
labels of conditional models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ManifestError

_K = TypeVar("_K", bound=Mapping[str, object])


def _mlp(sizes: Sequence[int], slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope) if slope > 0 else nn.ReLU())
    return nn.Sequential(*layers)


def _keywords(owner: object, kw: _K, defaults: _K) -> _K:
    """The keywords a constructor took as ``**kw`` over its ``defaults`` (which name every keyword it takes):
    one it does not take raises ``TypeError`` as a signature would (``build`` makes it a ``ManifestError``)."""
    for k in kw:
        if k not in defaults:
            raise TypeError(f"{type(owner).__qualname__}.__init__() got an unexpected keyword argument {k!r}")
    return cast(_K, {**defaults, **kw})


def _init_weights(modules, init: str, scale: float) -> None:
    """Initialise the weights of the ``nn.Linear`` / ``nn.Conv2d`` among ``modules`` (others are passed over):
    ``init`` ``"orthogonal"`` (gain ``scale``) or ``"normal"`` (std ``scale``); biases zeroed."""
    for m in modules:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if init == "orthogonal":
                nn.init.orthogonal_(m.weight, scale)
            else:
                nn.init.normal_(m.weight, 0.0, scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def edm_precond(sigma: torch.Tensor, sigma_data: float):
    """``(c_skip, c_out, c_in, c_noise)`` of Karras et al. 2022, Table 1, elementwise in ``sigma``: the
    preconditioning of every EDM denoiser here (``nets`` imports no ``latentflow.scores``, which has the
    same function for users' networks)."""
    sd2 = sigma_data**2
    r = (sigma**2 + sd2).sqrt()
    return sd2 / (sigma**2 + sd2), sigma * sigma_data / r, 1 / r, torch.log(sigma) / 4


def _film(e: int, out: int) -> nn.Sequential:
    """The FiLM head ``t-embedding [B, e] -> [B, out]`` (scales and shifts): ``Linear-SiLU-Linear`` with the
    last layer zeroed, so that the untrained network does not depend on ``t`` (the unmodulated network)."""
    first, last = nn.Linear(e, 2 * e), nn.Linear(2 * e, out)  # built in this order: the same initial draws
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(first, nn.SiLU(), last)


def _slotted(blocks: nn.Module) -> list[nn.Module]:
    """The blocks of ``blocks``, a list of one-block lists (the checkpoints' ``blocks.i.0`` keys), in order."""
    return [block for slot in blocks.children() for block in slot.children()]


def _sn(module: nn.Module, enabled: bool = True, eps: float = 1e-6) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) through ``torch.nn.utils.spectral_norm``, whose
    state-dict keys (``weight_orig``, ``weight_u``, ``weight_v``) are what SN-GAN checkpoints store."""
    return nn.utils.spectral_norm(module, eps=eps) if enabled else module


def _act(slope: float) -> nn.Module:
    # never in place: a shortcut that aliases the input must not see the activation by accident
    return nn.LeakyReLU(slope) if slope > 0 else nn.ReLU()


class _Conditional(Protocol):
    """A class-conditional net: its number of classes and the label it uses when called without one."""

    @property
    def num_classes(self) -> int: ...

    @property
    def class_label(self) -> int | torch.Tensor: ...


def _class_labels(module: _Conditional, y, batch: int, device) -> torch.Tensor:
    """Labels for a class-conditional model: ``y`` if given, else ``module.class_label`` (an int or a
    ``[B]`` tensor) broadcast to the batch. The samplers always pass ``y`` (per-chain labels); the
    ``class_label`` fallback only serves direct calls ``G(z)`` / ``D(x)`` (``ModelPair.set_class``)."""
    if y is None:
        y = module.class_label
        if isinstance(y, int):  # the common case: no host sync on the device
            if not 0 <= y < module.num_classes:
                raise ManifestError(f"class_label must lie in [0, {module.num_classes - 1}]; got {y}")
            return torch.full((batch,), y, device=device, dtype=torch.long)
    y = torch.as_tensor(y, device=device, dtype=torch.long)
    if y.dim() == 0:
        y = y.expand(batch)
    if y.shape != (batch,):
        raise ManifestError(f"class labels must be an int or a tensor of shape ({batch},); got shape {tuple(y.shape)}")
    if int(y.min()) < 0 or int(y.max()) >= module.num_classes:
        raise ManifestError(
            f"class labels must lie in [0, {module.num_classes - 1}]; got {y.min().item()}..{y.max().item()}"
        )
    return y


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
