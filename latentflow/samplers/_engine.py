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
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from .. import rng as _rng
from ..errors import LatentflowError, OptionError, ShapeError
from ..result import Result, Step

log = logging.getLogger("latentflow")

__all__ = ["Counter", "Runner", "frozen", "check_state", "check_batch_size", "check_speed_options", "d_values",
           "chunk_slices", "AUTOCAST_DTYPES"]

#: ``autocast=`` values and the dtypes G and D are evaluated in.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: ``batch_size="auto"`` on the CPU never picks more rows than this per chunk (bigger chunks buy no
#: speed there, only memory).
AUTO_CPU_MAX_ROWS = 16384
#: fraction of the free memory an automatic chunk may plan to use (the rest is the safety margin).
AUTO_MEMORY_FRACTION = 0.7


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


def check_batch_size(batch_size, n: int) -> int | str:
    """``None`` -> ``n`` (one chunk), an int -> ``min(batch_size, n)``, ``"auto"`` -> ``"auto"`` (resolved
    by the ``Runner`` on its first evaluation, from a probe of the memory one row needs)."""
    if batch_size is None:
        return n
    if batch_size == "auto":
        return "auto"
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f'batch_size must be a positive int, "auto" or None; got {batch_size!r}')
    return min(batch_size, n)


def check_speed_options(device: torch.device, *, compile: bool = False, cuda_graph: bool = False,
                        autocast: str | None = None) -> None:
    """Validate the speed options shared by the gradient samplers (at the API boundary)."""
    if not isinstance(compile, bool):
        raise OptionError(f"compile must be True or False; got {compile!r}")
    if not isinstance(cuda_graph, bool):
        raise OptionError(f"cuda_graph must be True or False; got {cuda_graph!r}")
    if cuda_graph and torch.device(device).type != "cuda":
        raise OptionError(f"cuda_graph=True captures the step as a CUDA graph and needs CUDA tensors; z is on "
                          f"{torch.device(device)}. Move z (and G, D) to a CUDA device or leave cuda_graph=False")
    if autocast is not None and autocast not in AUTOCAST_DTYPES:
        raise OptionError(f'autocast must be None, "bf16" or "fp16"; got {autocast!r}')


def _available_ram_bytes() -> int | None:
    """Available physical memory from the OS (no psutil): ``MemAvailable`` on Linux, else free pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _nbytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, Tensor) else 0


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

    Speed options (validated by :func:`check_speed_options`):

    * ``compile``: evaluate the per-chunk energy through ``torch.compile`` (AOTAutograd compiles its
      backward with it); falls back to eager with a logged warning where compiling fails.
    * ``cuda_graph``: capture the per-chunk energy-and-gradient step as a CUDA graph per chunk shape
      and replay it (CUDA only).
    * ``autocast``: evaluate G and D under ``torch.autocast`` in bf16 or fp16; the chain state, the
      returned energies, gradients and outputs stay in the state's dtype, so accept tests run in fp32.
    """

    def __init__(self, method: str, options: dict, n: int, device: torch.device, *,
                 batch_size=None, progress: bool = True, callback: Callable[[Step], None] | None = None,
                 hint: str = "reduce step_size", compile: bool = False, cuda_graph: bool = False,
                 autocast: str | None = None):
        self.method = method
        self.options = options
        self.n = n
        self.device = torch.device(device)
        self.batch_size = check_batch_size(batch_size, n)
        self.progress = progress
        self.callback = callback
        if callback is not None and not callable(callback):
            raise OptionError(f"callback must be callable or None; got {type(callback).__name__}")
        check_speed_options(self.device, compile=compile, cuda_graph=cuda_graph, autocast=autocast)
        self.compile = compile
        self.cuda_graph = cuda_graph
        self.autocast = autocast
        self.hint = hint
        self.count = Counter()
        self.diverged = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.diverged_step = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self._auto: dict = {}          # fn key -> resolved chunk size (batch_size="auto")
        self._compiled: dict = {}      # id(fn) -> (fn, compiled fn or None after a failure)
        self._graphs: dict = {}        # (id(fn), shapes) -> _GraphedStep
        self._counting = True          # False while a step counts its rows itself (compiled/graphed)
        self.t0 = time.perf_counter()

    # -- evaluation -------------------------------------------------------------------------------
    def G(self, G, z: Tensor) -> Tensor:
        if self._counting:
            self.count.n_G_forward += z.shape[0]
        return G(z)

    def D(self, D, x: Tensor, *cond) -> Tensor:
        if self._counting:
            self.count.n_D_forward += x.shape[0]
        return d_values(D(x, *cond), x.shape[0], "D(x, t)" if cond else "D(x)")

    def _amp(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.autocast])

    def _forward(self, fn, leaf: Tensor, *rows: Tensor):
        """``fn`` under autocast (if asked), with its value (and aux) back in the state's dtype."""
        with self._amp():
            v, aux = fn(leaf, *rows)
        if self.autocast is not None:
            v = v.to(leaf.dtype)
            if aux is not None and aux.is_floating_point():
                aux = aux.to(leaf.dtype)
        return v, aux

    def _eager_step(self, fwd, s: Tensor, *rows: Tensor):
        """Value, gradient w.r.t. ``s`` only and aux of one chunk: a detached leaf, one backward, no
        graph kept (``create_graph=False``) and none built over G/D parameters (``frozen``)."""
        leaf = s.detach().requires_grad_(True)
        with torch.enable_grad():
            v, aux = fwd(leaf, *rows)
            (g,) = torch.autograd.grad(v.sum(), leaf)
        return v.detach(), g, (aux.detach() if aux is not None else None)

    def _fwd_for(self, fn):
        """The forward used by the step: eager, or ``torch.compile``d once per ``fn`` and this run."""
        def eager(leaf, *rows):
            return self._forward(fn, leaf, *rows)
        if not self.compile:
            return eager
        entry = self._compiled.get(id(fn))
        if entry is None:
            compiled = None
            if hasattr(torch, "compile"):
                try:
                    compiled = torch.compile(eager, dynamic=False)
                except Exception as e:  # no dynamo on this build/platform
                    log.warning("%s: compile=True but torch.compile is unavailable (%s: %s); running eager",
                                self.method, type(e).__name__, e)
            else:
                log.warning("%s: compile=True but this torch has no torch.compile; running eager", self.method)
            entry = self._compiled[id(fn)] = [fn, compiled, False]   # fn kept alive: ids stay unique
        _, compiled, tried = entry
        if compiled is None:
            return eager

        def guarded(leaf, *rows):
            if entry[2]:
                return compiled(leaf, *rows)
            try:  # the first call compiles; a failure there (no C++ compiler, unsupported op) falls back
                out = compiled(leaf, *rows)
            except LatentflowError:
                raise
            except Exception as e:
                log.warning("%s: torch.compile failed on the energy (%s: %s); falling back to eager",
                            self.method, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
                entry[1] = None
                return eager(leaf, *rows)
            entry[2] = True
            return out
        return guarded

    def _step(self, fn, s: Tensor, rows: tuple):
        fwd = self._fwd_for(fn)
        if not self.cuda_graph:
            return self._eager_step(fwd, s, *rows)
        key = (id(fn), tuple(s.shape), tuple(tuple(r.shape) for r in rows))
        graphed = self._graphs.get(key)
        if graphed is None:
            graphed = self._graphs[key] = _GraphedStep(lambda a, *b: self._eager_step(fwd, a, *b), s, rows)
        return graphed(s, *rows)

    def value_and_grad(self, fn: Callable[..., tuple[Tensor, Tensor | None]], state: Tensor,
                       *rows: Tensor, uses_G: bool = True, uses_D: bool = True):
        """Evaluate ``fn(state, *rows) -> (value [B], aux)`` chunk by chunk and the gradient of
        ``value`` with respect to ``state`` only (each row's gradient is that of its own value: no
        coupling). ``rows`` are per-chain tensors chunked alongside ``state``. ``fn`` calls G and D
        once per row at most (``uses_G``/``uses_D`` say which), which is what the counters add up.

        Returns ``(value, grad, aux)`` with ``aux`` concatenated (or ``None``)."""
        bs = self._chunk_size(fn, state, rows, grad=True, uses_G=uses_G, uses_D=uses_D)
        vals, grads, auxs = [], [], []
        self._counting = False   # compiled and graphed steps do not run Python side effects
        try:
            for sl in chunk_slices(state.shape[0], bs):
                v, g, aux = self._step(fn, state[sl], tuple(r[sl] for r in rows))
                vals.append(v)
                grads.append(g)
                if aux is not None:
                    auxs.append(aux)
                self._count(v.shape[0], uses_G, uses_D, backward=True)
        finally:
            self._counting = True
        cat = (lambda xs: xs[0]) if len(vals) == 1 else torch.cat
        return cat(vals), cat(grads), (cat(auxs) if auxs else None)

    def _count(self, b: int, uses_G: bool, uses_D: bool, backward: bool, forward: bool = True):
        if uses_G:
            self.count.n_G_forward += b if forward else 0
            self.count.n_G_backward += b if backward else 0
        if uses_D:
            self.count.n_D_forward += b if forward else 0
            self.count.n_D_backward += b if backward else 0

    # -- randomness ----------------------------------------------------------------------------------
    def randn(self, shape, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        """``rng.randn`` without a host synchronisation: a CPU generator serving CUDA tensors draws into
        pinned memory and copies asynchronously (the caching host allocator keeps the buffer until the
        copy is done). Same numbers as ``rng.randn``."""
        if generator.device.type == "cpu" and self.device.type == "cuda":
            t = torch.randn(tuple(shape), generator=generator, dtype=dtype, pin_memory=True)
            return t.to(self.device, non_blocking=True)
        return _rng.randn(shape, generator, self.device, dtype)

    def rand(self, shape, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        """Uniform [0, 1) counterpart of :meth:`randn`."""
        if generator.device.type == "cpu" and self.device.type == "cuda":
            t = torch.rand(tuple(shape), generator=generator, dtype=dtype, pin_memory=True)
            return t.to(self.device, non_blocking=True)
        return _rng.rand(shape, generator, self.device, dtype)

    def map(self, fn: Callable[[Tensor], Tensor], *tensors: Tensor) -> Tensor:
        """Apply ``fn`` chunk by chunk under ``no_grad`` (and autocast, if asked) and concatenate."""
        bs = self._chunk_size(fn, tensors[0], tensors[1:], grad=False)
        outs = []
        dtype = tensors[0].dtype
        with torch.no_grad():
            for sl in chunk_slices(tensors[0].shape[0], bs):
                with self._amp():
                    out = fn(*(t[sl] for t in tensors))
                if self.autocast is not None and out.dtype in (torch.bfloat16, torch.float16) and dtype.is_floating_point:
                    out = out.to(dtype)
                outs.append(out)
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    # -- batch_size="auto" --------------------------------------------------------------------------
    def _chunk_size(self, fn, state: Tensor, rows: tuple, *, grad: bool, uses_G: bool = True,
                    uses_D: bool = True) -> int:
        if self.batch_size != "auto":
            return self.batch_size
        key = (getattr(fn, "__code__", None) or type(fn), grad)
        if key not in self._auto:
            self._auto[key] = self._probe_chunk(fn, state, rows, grad=grad, uses_G=uses_G, uses_D=uses_D)
            log.info("%s: batch_size='auto' -> %d rows per chunk (%s, %s)", self.method, self._auto[key],
                     "energy+grad" if grad else "forward", self.device)
        return self._auto[key]

    def _probe_rows(self, fn, state, rows, m: int, grad: bool):
        """One chunk of ``m`` rows through the eager step, counted like any other evaluation."""
        sl = slice(0, m)
        if grad:
            return self._eager_step(lambda leaf, *r: self._forward(fn, leaf, *r), state[sl], *(r[sl] for r in rows))
        with torch.no_grad(), self._amp():
            return (fn(state[sl], *(r[sl] for r in rows)),)

    def _probe_chunk(self, fn, state: Tensor, rows: tuple, *, grad: bool, uses_G: bool, uses_D: bool) -> int:
        """The largest chunk whose evaluation fits in the free memory, from a probe on a few rows.

        CUDA: peak allocated memory of probes on two chunk sizes gives the bytes per row (the slope,
        so fixed workspaces do not count per row); the chunk uses at most ``AUTO_MEMORY_FRACTION`` of
        the free device memory (``mem_get_info`` plus what the caching allocator holds unused), after
        the outputs of all ``n`` rows. CPU: the bytes autograd saves per row (plus the outputs) against
        the available RAM, capped at ``AUTO_CPU_MAX_ROWS``. Results never depend on the chunk size."""
        n = state.shape[0]
        out_row = 0
        if self.device.type == "cuda":
            m1, m2 = min(n, 4), min(n, 32)
            peaks = []
            for m in (m1, m2) if m2 > m1 else (m1,):
                torch.cuda.synchronize(self.device)
                base = torch.cuda.memory_allocated(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
                out = self._probe_rows(fn, state, rows, m, grad)
                torch.cuda.synchronize(self.device)
                peaks.append((m, torch.cuda.max_memory_allocated(self.device) - base))
                out_row = sum(_nbytes(t) for t in out) / m
                del out
            if len(peaks) == 2 and peaks[1][1] > peaks[0][1]:
                per_row = (peaks[1][1] - peaks[0][1]) / (peaks[1][0] - peaks[0][0])
            else:
                per_row = peaks[-1][1] / peaks[-1][0]
            free, _ = torch.cuda.mem_get_info(self.device)
            free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
            if grad:   # the probes' forwards were counted by fn itself
                self._count(m1 + (m2 if m2 > m1 else 0), uses_G, uses_D, backward=True, forward=False)
        else:
            m = min(n, 8)
            saved = [0]

            def pack(t):
                saved[0] += _nbytes(t)
                return t
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = self._probe_rows(fn, state, rows, m, grad)
            out_row = sum(_nbytes(t) for t in out) / m
            # the backward holds about as much again as the forward saved; the input chunk is copied
            per_row = 2 * saved[0] / m + 2 * out_row + 2 * _nbytes(state[:1])
            if grad:
                self._count(m, uses_G, uses_D, backward=True, forward=False)
            free = _available_ram_bytes() or 0
        budget = AUTO_MEMORY_FRACTION * free - 2 * out_row * n   # the outputs of all rows, and their cat
        chunk = int(budget // max(per_row, 1.0)) if budget > 0 else 1
        cap = n if self.device.type == "cuda" else min(n, AUTO_CPU_MAX_ROWS)
        return max(1, min(chunk, cap))

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
        if self._auto:   # what batch_size="auto" chose, per kind of evaluation
            full["auto_batch_size"] = {("grad" if g else "forward"): bs for (_, g), bs in self._auto.items()}
        full["wall_s"] = time.perf_counter() - self.t0
        return Result(x=x, z=z, info=full)


class _GraphedStep:
    """One chunk's energy-and-gradient step captured as a CUDA graph for fixed input shapes.

    Warm-up runs on a side stream (compiles, cuDNN autotuning), then one capture; each call copies
    its inputs into the static buffers, replays, and clones the static outputs (the next replay
    overwrites them). Nothing in the step draws random numbers, so replays are exact re-runs."""

    WARMUP = 3

    def __init__(self, step: Callable, s: Tensor, rows: tuple):
        self.static_s = s.detach().clone()
        self.static_rows = tuple(r.detach().clone() for r in rows)
        side = torch.cuda.Stream(device=s.device)
        side.wait_stream(torch.cuda.current_stream(s.device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                step(self.static_s, *self.static_rows)
        torch.cuda.current_stream(s.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = step(self.static_s, *self.static_rows)

    def __call__(self, s: Tensor, *rows: Tensor):
        self.static_s.copy_(s)
        for dst, src in zip(self.static_rows, rows):
            dst.copy_(src)
        self.graph.replay()
        v, g, aux = self.out
        return v.clone(), g.clone(), (aux.clone() if aux is not None else None)


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
