"""Latent energies for DDLS and friends, built once before the loop so the loop never branches.

``E(u) = 1/2 ||u||^2 - d(G(z(u))) / T`` (Che et al. 2020, Thm. 1 and §3.4), where

* ``d`` is the discriminator's logit (``d_output="logit"``), the logit of its probability
  (``"prob"``, computed as ``log p - log(1 - p)`` in a stable way) or the raw WGAN critic
  (``"critic"``, Che et al. 2020 §3.4);
* the prior is N(0, I) on ``u`` itself (``prior="normal"``, ``z = u``), or the uniform prior on
  [-1, 1]^k reached through the normal CDF, ``z = 2 Phi(u) - 1 = erf(u / sqrt 2)``, so that a
  uniform-prior GAN is sampled exactly without the chain ever leaving the box;
* with ``output_noise = eps_n > 0`` the state carries ``z'`` too and ``x = G(z) + eps_n z'``
  (Che et al. 2020, Corollary 1), again with a N(0, I) prior on ``z'``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import types
import warnings
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from .errors import OptionError, ShapeError

log = logging.getLogger("latentflow")

#: what D returns (the options records' type) and the latent priors; the tuples are their choices
DOutput = Literal["logit", "prob", "critic"]
Prior = Literal["normal", "uniform"]
D_OUTPUTS: tuple[str, ...] = get_args(DOutput)
PRIORS: tuple[str, ...] = get_args(Prior)


def chunk_slices(n: int, batch_size: int) -> list[slice]:
    """``[0, b), [b, 2b), ...`` covering ``n`` rows."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def d_values(out, n: int, what: str = "D(x)") -> Tensor:
    """Check and flatten a discriminator output of one value per row: ``[n]``, ``[n, 1]``,
    ``[n, 1, 1, 1]`` (any trailing ones) or, when ``n == 1``, a 0-d tensor -> ``[n]``."""
    if not isinstance(out, Tensor):
        raise ShapeError(f"{what} must return a tensor of shape ({n},) or ({n}, 1); got {type(out).__name__}")
    if not out.is_floating_point():
        raise ShapeError(
            f"{what} must return floating-point values (a logit, probability or critic); got dtype {out.dtype}"
        )
    if out.shape == (n,):
        return out
    if out.dim() == 0 and n == 1:
        return out.reshape(1)
    if out.dim() >= 2 and out.shape[0] == n and all(s == 1 for s in out.shape[1:]):
        return out.reshape(n)
    raise ShapeError(f"{what} returned shape {tuple(out.shape)}; expected ({n},) or ({n}, 1)")


def closed_over_modules(fn, depth: int = 2) -> list:
    """The ``nn.Module``s a plain callable reaches: itself, a bound method's ``__self__``, the func,
    args and keywords of a ``functools.partial``, the cells of a closure and the module-level names a
    function reads (``depth`` levels deep)."""
    found, todo = [], [(fn, 0)]
    while todo:
        obj, d = todo.pop()
        if isinstance(obj, nn.Module):
            found.append(obj)
            continue
        if d > depth or obj is None:
            continue
        if isinstance(obj, functools.partial):
            todo += [(obj.func, d + 1)] + [(a, d + 1) for a in obj.args] + [(v, d + 1) for v in obj.keywords.values()]
        elif hasattr(obj, "__self__") and callable(obj):
            todo.append((obj.__self__, d + 1))
        code, glob = getattr(obj, "__code__", None), getattr(obj, "__globals__", None)
        if code is not None and glob is not None:  # module-level names a function reads
            todo += [(glob[n], d + 1) for n in code.co_names if isinstance(glob.get(n), nn.Module)]
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                todo.append((cell.cell_contents, d + 1))
            except ValueError:  # an empty cell
                pass
    return found


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` (called from the caller of this function) that points at
    the first frame outside the latentflow package: the user's line, however deep the call came."""
    import os
    import sys

    pkg = os.path.dirname(os.path.abspath(__file__))
    f: types.FrameType | None = sys._getframe(2)
    level = 2
    while f is not None and (
        os.path.abspath(f.f_code.co_filename).startswith(pkg) or f.f_code.co_filename.endswith("contextlib.py")
    ):
        f, level = f.f_back, level + 1
    return level


#: layers that compute differently in train mode (what the closed-over-module warning is about)
_MODE_DEPENDENT = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.dropout._DropoutNd,
    nn.modules.instancenorm._InstanceNorm,
)


@contextlib.contextmanager
def frozen(*models):
    """Put every ``nn.Module`` among ``models`` (and those a plain function closes over, see
    :func:`closed_over_modules`) in eval mode with ``requires_grad=False`` parameters, and restore
    both afterwards. A closed-over module with a BatchNorm/Dropout/InstanceNorm layer in train mode is warned about
    (once per call): those layers would otherwise behave as in training."""
    saved, seen = [], set()
    for m in models:
        direct = isinstance(m, nn.Module)
        for mod in [m] if direct else closed_over_modules(m):
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            if not direct and any(x.training and isinstance(x, _MODE_DEPENDENT) for x in mod.modules()):
                warnings.warn(
                    f"a plain-function G/D closes over a {type(mod).__name__} in train mode; it is "
                    "put in eval mode for sampling (pass the module itself, in eval mode, to be explicit)",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
            saved.append(([(x, x.training) for x in mod.modules()], [(p, p.requires_grad) for p in mod.parameters()]))
            mod.eval()
            mod.requires_grad_(False)
    try:
        yield
    finally:
        for modes, grads in saved:
            for mod, tr in modes:
                mod.training = tr
            for p, rg in grads:
                p.requires_grad_(rg)


def check_d_output(d_output: str) -> str:
    if d_output not in D_OUTPUTS:
        raise OptionError(f"d_output must be one of {', '.join(D_OUTPUTS)}; got {d_output!r}")
    return d_output


def check_prior(prior: str) -> str:
    if prior not in PRIORS:
        raise OptionError(f"prior must be one of {', '.join(PRIORS)}; got {prior!r}")
    return prior


def to_logit(values: Tensor, d_output: str) -> Tensor:
    """Turn what D returned into the quantity DDLS adds to the energy (logit, or critic as it is)."""
    if d_output == "prob":
        tiny = torch.finfo(values.dtype).tiny
        p = values.clamp(tiny, 1.0)
        return torch.log(p) - torch.log1p(-p.clamp(max=1 - torch.finfo(values.dtype).eps))
    return values


def latent_from_u(u: Tensor, prior: str) -> Tensor:
    """Map the unbounded chain variable ``u`` to the prior's latent ``z``."""
    if prior == "uniform":
        return torch.erf(u / math.sqrt(2.0))
    return u


def u_from_latent(z: Tensor, prior: str) -> Tensor:
    """Inverse of :func:`latent_from_u`; uniform latents are clipped just inside (-1, 1)."""
    if prior == "uniform":
        if (z.abs() > 1).any():
            raise OptionError("prior='uniform' needs z in [-1, 1]; some entries of z lie outside")
        lim = 1 - 1e-6 if z.dtype == torch.float64 else 1 - 1e-6
        return torch.erfinv(z.clamp(-lim, lim)) * math.sqrt(2.0)
    return z


class LatentEnergy:
    """``state [B, k (+ dim x)] -> (E [B], x [B, *X])`` for the DDLS target.

    ``runner`` counts the evaluations. ``x_shape`` is the per-sample shape of G's output, needed to
    fold the output-noise part of the state back into an image.
    """

    def __init__(
        self,
        G: Callable,
        D: Callable,
        runner,
        *,
        latent_dim: int,
        x_shape: tuple,
        prior: str = "normal",
        d_output: str = "logit",
        temperature: float = 1.0,
        output_noise: float = 0.0,
    ):
        if not temperature > 0:
            raise OptionError(f"temperature must be > 0; got {temperature}")
        if output_noise < 0:
            raise OptionError(f"output_noise must be >= 0; got {output_noise}")
        self.G, self.D, self.runner = G, D, runner
        self.k = latent_dim
        self.x_shape = tuple(x_shape)
        self.prior = check_prior(prior)
        self.d_output = check_d_output(d_output)
        self.inv_t = 1.0 / float(temperature)
        self.eps_n = float(output_noise)

    def decode(self, state: Tensor, *ys: Tensor) -> Tensor:
        z = latent_from_u(state[:, : self.k], self.prior)
        x = self.runner.G(self.G, z, *ys)
        if self.eps_n > 0:
            x = x + self.eps_n * state[:, self.k :].reshape(x.shape)
        return x

    def __call__(self, state: Tensor, *ys: Tensor):
        """``(E, x)`` of the chains ``state``; ``ys = (y,)``: a class-conditional model, ``G(z, y)``, ``D(x, y)``."""
        x = self.decode(state, *ys)
        d = to_logit(self.runner.D(self.D, x, *ys), self.d_output)
        e = 0.5 * state.pow(2).sum(1) - d * self.inv_t
        return e, x
