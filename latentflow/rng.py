"""Generator handling: randomness comes only from a ``torch.Generator`` (or a seed that makes one).

Device rule (as diffusers' ``randn_tensor``): a CPU generator with CUDA tensors draws on the CPU and
moves the draw, so CPU and GPU runs of the same seed start from the same numbers; a CUDA generator
with CPU tensors is an error.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

from .errors import OptionError

GeneratorLike = Union[torch.Generator, int, None]


def resolve(generator: GeneratorLike, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` for ``generator``.

    ``None`` makes a fresh CPU generator seeded by exactly one draw from the global RNG; an ``int`` is
    a seed (a CPU generator, so that the same seed gives the same numbers on every device); a
    generator is returned as it is, after checking that it can serve ``device``.
    """
    device = torch.device(device)
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        return torch.Generator("cpu").manual_seed(seed)
    if isinstance(generator, bool):
        raise OptionError(f"generator must be a torch.Generator, an int seed or None; got {generator!r}")
    if isinstance(generator, int):
        return torch.Generator("cpu").manual_seed(generator)
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu" and generator.device.type != device.type:
            raise OptionError(
                f"generator lives on {generator.device} but the tensors are on {device}; "
                "pass a CPU generator (it works for every device) or one on the tensors' device")
        return generator
    raise OptionError(f"generator must be a torch.Generator, an int seed or None; got {type(generator).__name__}")


def _draw(fn, shape, generator: torch.Generator, device, dtype):
    device = torch.device(device)
    gen_dev = generator.device
    if gen_dev.type == device.type:
        return fn(shape, generator=generator, device=device, dtype=dtype)
    return fn(shape, generator=generator, device=gen_dev, dtype=dtype).to(device)


def randn(shape: Sequence[int], generator: torch.Generator, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Standard normal draw of ``shape`` from ``generator`` (drawn on the generator's device)."""
    return _draw(torch.randn, tuple(shape), generator, device, dtype)


def rand(shape: Sequence[int], generator: torch.Generator, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Uniform [0, 1) draw of ``shape`` from ``generator`` (drawn on the generator's device)."""
    return _draw(torch.rand, tuple(shape), generator, device, dtype)


def randint(high: int, shape: Sequence[int], generator: torch.Generator, device="cpu") -> torch.Tensor:
    """Integers in [0, high) drawn from ``generator``."""
    device = torch.device(device)
    out = torch.randint(0, high, tuple(shape), generator=generator, device=generator.device)
    return out.to(device)


def sample_latents(n: int, dim: int, prior: str = "normal", *, generator: GeneratorLike = None,
                   device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Draw ``n`` latents ``[n, dim]`` from the prior: ``"normal"`` N(0, I) or ``"uniform"`` U[-1, 1]^dim."""
    if n < 1 or dim < 1:
        raise OptionError(f"sample_latents needs n >= 1 and dim >= 1; got n={n}, dim={dim}")
    gen = resolve(generator, device)
    if prior == "normal":
        return randn((n, dim), gen, device, dtype)
    if prior == "uniform":
        return rand((n, dim), gen, device, dtype) * 2 - 1
    raise OptionError(f'prior must be "normal" or "uniform"; got {prior!r}')
