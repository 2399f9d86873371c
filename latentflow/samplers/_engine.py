"""The shared machinery of every sampler: input checks, counted and chunked G/D evaluation, gradients
with respect to the chain state only, the on-device divergence mask, progress bars and timing.

The method modules hold the mathematics of one step; everything about chunking, counting, eval mode,
progress and divergence lives here. Nothing in a sampler loop reads a device value back to the host:
counters are host integers known in advance, the divergence mask and acceptance counts stay on the
device and are read once when the ``Result`` is built.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import OptionError, ShapeError
from ..result import Result, Step

log = logging.getLogger("latentflow")

__all__ = ["Counter", "Runner", "frozen", "check_state", "check_batch_size", "d_values", "chunk_slices"]


@dataclass
class Counter:
    """Evaluations of G and D, counted in samples (rows), forward and backward separately."""
    n_G_forward: int = 0
    n_G_backward: int = 0
    n_D_forward: int = 0
    n_D_backward: int = 0

    def as_dict(self) -> dict:
        return dict(n_G_forward=self.n_G_forward, n_G_backward=self.n_G_backward,
                    n_D_forward=self.n_D_forward, n_D_backward=self.n_D_backward)


@contextlib.contextmanager
def frozen(*models):
    """Put every ``nn.Module`` among ``models`` in eval mode with ``requires_grad=False`` parameters,
    and restore both afterwards. Plain callables pass through untouched."""
    saved = []
    seen = set()
    for m in models:
        if isinstance(m, nn.Module) and id(m) not in seen:
            seen.add(id(m))
            modes = [(mod, mod.training) for mod in m.modules()]
            grads = [(p, p.requires_grad) for p in m.parameters()]
            saved.append((modes, grads))
            m.eval()
            m.requires_grad_(False)
    try:
        yield
    finally:
        for modes, grads in saved:
            for mod, tr in modes:
                mod.training = tr
            for p, rg in grads:
                p.requires_grad_(rg)


def check_state(z, name: str = "z", *, ndim: int | None = 2) -> Tensor:
    """Check that ``z`` is a floating tensor with a batch dimension (and ``ndim`` dims if given)."""
    if not isinstance(z, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor of shape [B, d]; got {type(z).__name__}")
    if not z.is_floating_point():
        raise ShapeError(f"{name} must be a floating-point tensor; got dtype {z.dtype}")
    if ndim is not None and z.dim() != ndim:
        want = "[B, d]" if ndim == 2 else f"{ndim} dimensions"
        raise ShapeError(f"{name} must have shape {want}; got shape {tuple(z.shape)}")
    if z.dim() < 1 or z.shape[0] < 1:
        raise ShapeError(f"{name} must have at least one row (chain); got shape {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        bad = torch.nonzero(~torch.isfinite(z.reshape(z.shape[0], -1)).all(1)).flatten()[:10].tolist()
        raise ShapeError(f"{name} contains non-finite values (rows {bad}); pass finite initial states")
    return z


def check_batch_size(batch_size, n: int) -> int:
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f"batch_size must be a positive int or None; got {batch_size!r}")
    return min(batch_size, n)


def chunk_slices(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def d_values(out, n: int, what: str = "D(x)") -> Tensor:
    """Check and flatten a discriminator output: ``[n]`` or ``[n, 1]`` -> ``[n]``."""
    if not isinstance(out, Tensor):
        raise ShapeError(f"{what} must return a tensor of shape ({n},) or ({n}, 1); got {type(out).__name__}")
    if out.shape == (n,):
        return out
    if out.shape == (n, 1):
        return out[:, 0]
    raise ShapeError(f"{what} returned shape {tuple(out.shape)}; expected ({n},) or ({n}, 1)")


class Runner:
    """Per-call bookkeeping shared by the samplers.

    Holds the eval counter, the batch size for chunked evaluation, the divergence mask and step, the
    progress bar and the wall clock. ``method`` and ``options`` go into ``Result.info``.
    """

    def __init__(self, method: str, options: dict, n: int, device: torch.device, *,
                 batch_size=None, progress: bool = True, callback: Callable[[Step], None] | None = None,
                 hint: str = "reduce step_size"):
        self.method = method
        self.options = options
        self.n = n
        self.device = device
        self.batch_size = check_batch_size(batch_size, n)
        self.progress = progress
        self.callback = callback
        if callback is not None and not callable(callback):
            raise OptionError(f"callback must be callable or None; got {type(callback).__name__}")
        self.hint = hint
        self.count = Counter()
        self.diverged = torch.zeros(n, dtype=torch.bool, device=device)
        self.diverged_step = torch.full((n,), -1, dtype=torch.long, device=device)
        self.t0 = time.perf_counter()

    # -- evaluation -------------------------------------------------------------------------------
    def G(self, G, z: Tensor) -> Tensor:
        self.count.n_G_forward += z.shape[0]
        return G(z)

    def D(self, D, x: Tensor, *cond) -> Tensor:
        self.count.n_D_forward += x.shape[0]
        return d_values(D(x, *cond), x.shape[0], "D(x, t)" if cond else "D(x)")

    def value_and_grad(self, fn: Callable[..., tuple[Tensor, Tensor | None]], state: Tensor,
                       *rows: Tensor, uses_G: bool = True, uses_D: bool = True):
        """Evaluate ``fn(state, *rows) -> (value [B], aux)`` chunk by chunk and the gradient of
        ``value`` with respect to ``state`` only (each row's gradient is that of its own value: no
        coupling). ``rows`` are per-chain tensors chunked alongside ``state``.

        Returns ``(value, grad, aux)`` with ``aux`` concatenated (or ``None``)."""
        vals, grads, auxs = [], [], []
        for sl in chunk_slices(state.shape[0], self.batch_size):
            leaf = state[sl].detach().requires_grad_(True)
            with torch.enable_grad():
                v, aux = fn(leaf, *(r[sl] for r in rows))
                (g,) = torch.autograd.grad(v.sum(), leaf)
            vals.append(v.detach())
            grads.append(g)
            if aux is not None:
                auxs.append(aux.detach())
            b = leaf.shape[0]
            if uses_G:
                self.count.n_G_backward += b
            if uses_D:
                self.count.n_D_backward += b
        cat = (lambda xs: xs[0]) if len(vals) == 1 else torch.cat
        return cat(vals), cat(grads), (cat(auxs) if auxs else None)

    def map(self, fn: Callable[[Tensor], Tensor], *tensors: Tensor) -> Tensor:
        """Apply ``fn`` chunk by chunk under ``no_grad`` and concatenate."""
        outs = []
        with torch.no_grad():
            for sl in chunk_slices(tensors[0].shape[0], self.batch_size):
                outs.append(fn(*(t[sl] for t in tensors)))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    # -- loop ---------------------------------------------------------------------------------------
    def steps(self, n_steps: int, desc: str | None = None) -> Iterator[int]:
        from tqdm.auto import tqdm
        it = tqdm(range(n_steps), desc=desc or self.method, disable=None if self.progress else True,
                  leave=False, dynamic_ncols=True)
        return iter(it)

    def check_finite(self, i: int, *tensors: Tensor) -> Tensor:
        """Mark chains with a non-finite value in any of ``tensors`` as diverged (at step ``i``).

        Returns the per-chain mask of chains that are fine now and were never diverged. Stays on the
        device: no host synchronisation."""
        ok = torch.ones(self.n, dtype=torch.bool, device=self.device)
        for t in tensors:
            ok &= torch.isfinite(t.reshape(self.n, -1)).all(1)
        newly = ~ok & ~self.diverged
        self.diverged_step = torch.where(newly, torch.full_like(self.diverged_step, i), self.diverged_step)
        self.diverged |= ~ok
        return ~self.diverged

    def emit(self, i: int, state: Tensor, energy: Tensor | None = None, accepted: Tensor | None = None):
        if self.callback is not None:
            self.callback(Step(i, state, energy, accepted))

    def finish(self, x: Tensor, z: Tensor | None, **info) -> Result:
        n_div = int(self.diverged.sum().item())  # the one read-back of the run
        if n_div:
            idx = torch.nonzero(self.diverged).flatten().tolist()
            steps = self.diverged_step[self.diverged].tolist()
            shown = ", ".join(f"{c} (step {s})" for c, s in list(zip(idx, steps))[:10])
            more = f" and {n_div - 10} more" if n_div > 10 else ""
            log.warning("%s: %d of %d chains produced non-finite values and were frozen at their last "
                        "finite state: chains %s%s. To avoid this, %s.",
                        self.method, n_div, self.n, shown, more, self.hint)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        full = dict(method=self.method, options=self.options)
        full.update(info)
        full["diverged"] = self.diverged
        full["diverged_step"] = self.diverged_step
        full.update(self.count.as_dict())
        full["wall_s"] = time.perf_counter() - self.t0
        return Result(x=x, z=z, info=full)


def probe(runner_or_none, G, D, z: Tensor, *, cond: Sequence[Tensor] = (), name_z: str = "z") -> tuple:
    """Run G and D once on (at most) two rows of ``z`` to check their shapes at the boundary.

    Returns the per-sample shape of ``G(z)`` (or of ``z`` when ``G`` is None). Raises ``ShapeError``
    with the shapes involved. Consumes no randomness."""
    m = min(2, z.shape[0])
    with torch.no_grad():
        zz = z[:m]
        if G is not None:
            if not callable(G):
                raise OptionError(f"G must be callable (an nn.Module or a function); got {type(G).__name__}")
            try:
                x = G(zz)
            except Exception as e:  # a user's G that cannot take z: say so with shapes
                raise ShapeError(f"G(z) failed on z of shape {tuple(zz.shape)}: {type(e).__name__}: {e}") from e
            if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] != m:
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ShapeError(f"G(z) returned {got} for z of shape {tuple(zz.shape)}; "
                                 f"expected a tensor with {m} rows")
            if runner_or_none is not None:
                runner_or_none.count.n_G_forward += m
        else:
            x = zz
        if D is not None:
            if not callable(D):
                raise OptionError(f"D must be callable (an nn.Module or a function); got {type(D).__name__}")
            c = tuple(t[:m] for t in cond)
            try:
                out = D(x, *c)
            except Exception as e:
                raise ShapeError(f"D failed on x of shape {tuple(x.shape)}: {type(e).__name__}: {e}") from e
            d_values(out, m, "D(x, t)" if cond else "D(x)")
            if runner_or_none is not None:
                runner_or_none.count.n_D_forward += m
    return tuple(x.shape[1:])
