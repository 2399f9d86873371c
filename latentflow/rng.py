"""Generator handling: randomness comes only from a ``torch.Generator`` (or a seed that makes one).

Device rule (as diffusers' ``randn_tensor``): a CPU generator with CUDA tensors draws on the CPU and
moves the draw, so CPU and GPU runs of the same seed start from the same numbers; a CUDA generator
with CPU tensors is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import torch

from .errors import OptionError

GeneratorLike = Union[torch.Generator, int, None]  # noqa: UP007  (a runtime alias)


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
                "pass a CPU generator (it works for every device) or one on the tensors' device"
            )
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


def sample_latents(
    n: int, dim: int, prior: str = "normal", *, generator: GeneratorLike = None, device="cpu", dtype=torch.float32
) -> torch.Tensor:
    """Draw ``n`` latents ``[n, dim]`` from the prior: ``"normal"`` N(0, I) or ``"uniform"`` U[-1, 1]^dim."""
    for name, v in (("n", n), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise OptionError(f"sample_latents: {name} must be an int >= 1; got {v!r} ({type(v).__name__})")
    if n < 1 or dim < 1:
        raise OptionError(f"sample_latents needs n >= 1 and dim >= 1; got n={n}, dim={dim}")
    gen = resolve(generator, device)
    if prior == "normal":
        return randn((n, dim), gen, device, dtype)
    if prior == "uniform":
        return rand((n, dim), gen, device, dtype) * 2 - 1
    raise OptionError(f'prior must be "normal" or "uniform"; got {prior!r}')


# -- per-chain counter-based streams -----------------------------------------------------------------
#
# Every random number a sampler draws is a pure function of (key, chain, step, slot, element):
#
#     h = mix(mix(mix(key ^ mix(chain + 1)) + step · φ) + slot · φ') + (element + 1) · φ)
#
# with ``mix`` the SplitMix64 finaliser (Steele, Lea & Flood 2014) in wrapping int64 arithmetic and
# φ = 0x9E3779B97F4A7C15 (the golden-ratio increment). A uniform in [0, 1) keeps the top 53 bits of
# ``h`` (float64) or the top 24 (other dtypes): ``(h >>> 11) · 2^-53``. A normal is Box–Muller on two
# such uniforms (elements 2j and 2j + 1): ``sqrt(-2 log(1 - u1)) cos(2π u2)``. Nothing depends on how
# the chains are batched, chunked or split across calls: chain ``c`` at step ``s`` draws the same
# numbers whoever computes them. Vectorised in torch on the tensors' device; no host round trip.

_M64 = (1 << 64) - 1


def _s64(c: int) -> int:
    """An unsigned 64-bit constant as the signed int64 torch stores."""
    c &= _M64
    return c - (1 << 64) if c >= 1 << 63 else c


_PHI = _s64(0x9E3779B97F4A7C15)
_PHI2 = _s64(0xD1B54A32D192ED03)
_C1 = _s64(0xBF58476D1CE4E5B9)
_C2 = _s64(0x94D049BB133111EB)


def _srl(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """The SplitMix64 finaliser on an int64 tensor (wrapping arithmetic)."""
    x = (x ^ _srl(x, 30)) * _C1
    x = (x ^ _srl(x, 27)) * _C2
    return x ^ _srl(x, 31)


def splitmix64(seed: int, n: int) -> list[int]:
    """The first ``n`` outputs of the plain SplitMix64 generator, in Python integers (the reference the
    torch version is tested against)."""
    out, s = [], seed & _M64
    for _ in range(n):
        s = (s + 0x9E3779B97F4A7C15) & _M64
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        out.append(z ^ (z >> 31))
    return out


def stream_key(generator: GeneratorLike) -> int:
    """The key of the per-chain streams: an int seed ``s`` gives the first 63-bit draw of
    ``torch.Generator().manual_seed(s)``; a ``torch.Generator`` gives one such draw from itself
    (advancing it by one draw); ``None`` one draw from the global RNG. So ``generator=s`` and
    ``generator=torch.Generator().manual_seed(s)`` give the same samples."""
    if isinstance(generator, int) and not isinstance(generator, bool):
        if not -(2**63) <= generator < 2**64:  # what torch.Generator.manual_seed takes
            raise OptionError(f"generator (an int seed) must be in -2**63..2**64-1; got {generator}")
        generator = torch.Generator("cpu").manual_seed(generator)
    if generator is None:
        return int(torch.randint(0, 2**63 - 1, (1,)).item())
    if not isinstance(generator, torch.Generator):
        raise OptionError(f"generator must be a torch.Generator, an int seed or None; got {type(generator).__name__}")
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=generator.device).item())


class ChainStream:
    """Counter-based random numbers per chain: ``normal(step, slot, shape)`` -> ``[n, *shape]`` for
    the chains ``ids`` (global row indices, int64 on the state's device)."""

    def __init__(self, key: int, ids: torch.Tensor):
        self.key = int(key)
        self.ids = ids
        self.device = ids.device
        self._base = mix64(mix64(ids.to(torch.int64) + 1) ^ _s64(self.key))

    def subset(self, rows: torch.Tensor) -> ChainStream:
        """The streams of ``self.ids[rows]``."""
        return ChainStream(self.key, self.ids[rows])

    def _bits(self, step: int, slot: int, m: int) -> torch.Tensor:
        """``[n, m]`` int64 hashes for elements ``0..m-1`` of (step, slot)."""
        b = mix64(mix64(self._base + _s64(int(step) * _PHI)) + _s64(int(slot) * _PHI2))
        el = torch.arange(1, m + 1, device=self.device, dtype=torch.int64) * _PHI
        return mix64(b[:, None] + el[None, :])

    def _uniform_bits(self, h: torch.Tensor, dtype) -> torch.Tensor:
        if dtype == torch.float64:
            return _srl(h, 11).to(torch.float64) * 2.0**-53
        return _srl(h, 40).to(torch.float32) * 2.0**-24

    def uniform(self, step: int, slot: int, shape=(), dtype=torch.float32) -> torch.Tensor:
        """Uniforms in [0, 1) of shape ``[n, *shape]`` (53 bits for float64, 24 otherwise)."""
        m = math.prod(shape)
        u = self._uniform_bits(self._bits(step, slot, m), dtype)
        u = u.reshape((self.ids.shape[0],) + tuple(shape)).to(dtype)
        # rounding 24 bits to a half dtype can reach 1.0: keep the draw in [0, 1)
        return u if dtype in (torch.float32, torch.float64) else u.clamp_max(1 - torch.finfo(dtype).eps / 2)

    def normal(self, step: int, slot: int, shape=(), dtype=torch.float32) -> torch.Tensor:
        """Standard normals of shape ``[n, *shape]`` (Box–Muller on two uniforms per number)."""
        m = math.prod(shape)
        h = self._bits(step, slot, 2 * m)
        work = torch.float64 if dtype == torch.float64 else torch.float32
        u = self._uniform_bits(h, work)
        u1, u2 = u[:, 0::2], u[:, 1::2]
        z = torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos((2 * math.pi) * u2)
        return z.reshape((self.ids.shape[0],) + tuple(shape)).to(dtype)

    def labels(self, step: int, slot: int, num_classes: int) -> torch.Tensor:
        """Class labels ``[n]`` (long), uniform over ``0..num_classes-1``: ``floor(K u)`` for a 53-bit uniform
        ``u`` (bias below ``K · 2^-53``)."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise OptionError(f"num_classes must be an int >= 1; got {num_classes!r}")
        u = self.uniform(step, slot, (), torch.float64)
        return (u * num_classes).floor().long().clamp_max(num_classes - 1)

    def latents(self, step: int, slot: int, dim: int, prior: str, dtype=torch.float32) -> torch.Tensor:
        """Prior draws ``[n, dim]``: N(0, I) or U[-1, 1]^dim."""
        if prior == "normal":
            return self.normal(step, slot, (dim,), dtype)
        if prior == "uniform":
            return self.uniform(step, slot, (dim,), dtype) * 2 - 1
        raise OptionError(f'prior must be "normal" or "uniform"; got {prior!r}')


#: the (step, slot) of a chain's stream its default class label is drawn from (no sampler uses this slot)
LABEL_STEP, LABEL_SLOT = 0, 31


def sample_labels(
    n: int, num_classes: int, *, generator: GeneratorLike = None, chain_offset: int = 0, device="cpu"
) -> torch.Tensor:
    """Uniform class labels ``[n]`` (long) for chains ``chain_offset .. chain_offset + n - 1``: what a sampler
    draws for a class-conditional model given no labels, from the per-chain streams keyed by
    :func:`stream_key` of ``generator`` (so a chain's label does not depend on how the chains are split)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OptionError(f"n must be an int >= 1; got {n!r}")
    ids = torch.arange(chain_offset, chain_offset + n, device=torch.device(device), dtype=torch.int64)
    return ChainStream(stream_key(generator), ids).labels(LABEL_STEP, LABEL_SLOT, num_classes)
