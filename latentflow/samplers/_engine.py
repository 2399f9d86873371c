"""Evaluation for every sampler: counted and chunked G/D calls, gradients with respect to the chain
state only, ``torch.compile`` / CUDA graphs / autocast, ``batch_size="auto"``, the per-chain random
streams and the on-device divergence mask.

Nothing here reads a device value back to the host inside a step: counters are host integers known
in advance, the divergence mask stays on the device and is read once by the driver at the end.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import torch
from torch import Tensor

from ..energy import chunk_slices, d_values, frozen  # noqa: F401  (re-exported for callers)
from ..errors import LatentflowError
from ..result import Evals
from ..rng import ChainStream
from ._auto_batch import probe_chunk
from ._checks import AUTOCAST_DTYPES, check_batch_size, check_grad_path, check_speed_options
from ._cuda_graph import GraphedStep

log = logging.getLogger("latentflow")

__all__ = ["Counter", "Engine", "frozen", "d_values", "chunk_slices", "AUTOCAST_DTYPES"]

#: evaluations of G, D and a score model, counted in samples (rows), forward and backward separately
Counter = Evals


class Engine:
    """Per-call evaluation state shared by the kernels: the eval counter, the chunk size, the speed
    options, the per-chain random streams and the divergence mask (see ``EngineOptions`` for the
    options themselves).

    * ``compile``: the per-chunk energy goes through ``torch.compile``; eager (with a logged warning)
      where compiling fails.
    * ``cuda_graph``: the per-chunk energy-and-gradient step is captured as a CUDA graph per chunk
      shape and replayed.
    * ``autocast``: G and D run under ``torch.autocast``; the state, energies and gradients stay in the
      state's dtype.
    """

    def __init__(self, method: str, n: int, device: torch.device, eng, key: int | None):
        self.method = method
        self.n = n
        self.device = torch.device(device)
        self.batch_size = check_batch_size(eng.batch_size, n)
        check_speed_options(self.device, eng.cuda_graph)
        self.compile = eng.compile
        self.cuda_graph = eng.cuda_graph
        self.autocast = eng.autocast
        self.count = Counter()
        ids = torch.arange(eng.chain_offset, eng.chain_offset + n, device=self.device, dtype=torch.int64)
        #: the per-chain random streams (``None`` for a method that draws nothing with these options)
        self.rng = ChainStream(key, ids) if key is not None else None
        self.diverged = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.diverged_step = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self._auto: dict = {}  # fn key -> resolved chunk size (batch_size="auto")
        self._compiled: dict = {}  # id(fn) -> (fn, compiled fn or None after a failure)
        self._graphs: dict = {}  # (id(fn), shapes) -> GraphedStep
        self._counting = True  # False while a step counts its rows itself (compiled/graphed)
        self.y: Tensor | None = None  # the chains' class labels (set_labels), None when unconditional
        self.num_classes = 0
        self.t0 = time.perf_counter()

    def set_labels(self, y: Tensor | None, num_classes: int) -> None:
        self.y, self.num_classes = y, int(num_classes)

    @property
    def ys(self) -> tuple:
        """``()`` or ``(y,)``: the labels as per-chain rows, passed last to G and D (chunked with the state)."""
        return () if self.y is None else (self.y,)

    def aux_labels(self, stream: ChainStream, n: int) -> tuple:
        """Labels for ``n`` auxiliary draws (a DRS pilot run, DOT's K_eff pairs) from their own ``stream``:
        ``()`` when unconditional; uniform per draw when ``num_classes`` is known; else the chains' labels
        cycled (row j gets ``y[j mod B]``)."""
        if self.y is None:
            return ()
        if self.num_classes > 0:
            from ..rng import LABEL_SLOT, LABEL_STEP

            return (stream.labels(LABEL_STEP, LABEL_SLOT, self.num_classes),)
        return (self.y[torch.arange(n, device=self.y.device) % self.y.shape[0]],)

    def check_finite(self, i: int, *tensors: Tensor) -> Tensor:
        """Mark chains with a non-finite value in any of ``tensors`` as diverged at step ``i`` (step 0:
        the initial state). Returns the mask of chains that are fine now and never diverged. On the
        device: no host synchronisation."""
        ok = torch.ones(self.n, dtype=torch.bool, device=self.device)
        for t in tensors:
            ok &= torch.isfinite(t.reshape(self.n, -1)).all(1)
        newly = ~ok & ~self.diverged
        self.diverged_step = torch.where(newly, torch.full_like(self.diverged_step, i), self.diverged_step)
        self.diverged |= ~ok
        return ~self.diverged

    def advance(self, i: int, new: Tensor, old: Tensor, *checks: Tensor) -> Tensor:
        """``new`` for the chains whose ``new`` and ``checks`` are finite after step ``i`` (and that never
        diverged), ``old`` for the others (frozen at their last good state)."""
        live = self.check_finite(i, new, *checks)
        return torch.where(live.reshape((-1,) + (1,) * (new.dim() - 1)), new, old)

    # -- evaluation -------------------------------------------------------------------------------
    def G(self, G, z: Tensor, *ys: Tensor) -> Tensor:
        """``G(z)``, or ``G(z, y)`` with labels ``ys = (y,)``."""
        if self._counting:
            self.count.n_G_forward += z.shape[0]
        return G(z, *ys)

    def D(self, D, x: Tensor, *cond) -> Tensor:
        if self._counting:
            self.count.n_D_forward += x.shape[0]
        return d_values(D(x, *cond), x.shape[0], "D(x, t)" if cond else "D(x)")

    def score(self, S, x: Tensor, sigma: Tensor) -> Tensor:
        """``S(x, σ)`` of a score model, counted in ``n_score_forward``."""
        if self._counting:
            self.count.n_score_forward += x.shape[0]
        return S(x, sigma)

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
            check_grad_path(self.method, v)
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
                    log.warning(
                        "%s: compile=True but torch.compile is unavailable (%s: %s); running eager",
                        self.method,
                        type(e).__name__,
                        e,
                    )
            else:
                log.warning("%s: compile=True but this torch has no torch.compile; running eager", self.method)
            entry = self._compiled[id(fn)] = [fn, compiled, False]  # fn kept alive: ids stay unique
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
                log.warning(
                    "%s: torch.compile failed on the energy (%s: %s); falling back to eager",
                    self.method,
                    type(e).__name__,
                    str(e).splitlines()[0] if str(e) else "",
                )
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
            graphed = self._graphs[key] = GraphedStep(lambda a, *b: self._eager_step(fwd, a, *b), s, rows)
        return graphed(s, *rows)

    def value_and_grad(
        self,
        fn: Callable[..., tuple[Tensor, Tensor | None]],
        state: Tensor,
        *rows: Tensor,
        uses_G: bool = True,
        uses_D: bool = True,
    ):
        """Evaluate ``fn(state, *rows) -> (value [B], aux)`` chunk by chunk and the gradient of
        ``value`` with respect to ``state`` only (each row's gradient is that of its own value: no
        coupling). ``rows`` are per-chain tensors chunked alongside ``state``. ``fn`` calls G and D
        once per row at most (``uses_G``/``uses_D`` say which), which is what the counters add up.

        Returns ``(value, grad, aux)`` with ``aux`` concatenated (or ``None``)."""
        bs = self._chunk_size(fn, state, rows, grad=True, uses_G=uses_G, uses_D=uses_D)
        vals, grads, auxs = [], [], []
        self._counting = False  # compiled and graphed steps do not run Python side effects
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

    def map(self, fn: Callable[[Tensor], Tensor], *tensors: Tensor) -> Tensor:
        """Apply ``fn`` chunk by chunk under ``no_grad`` (and autocast, if asked) and concatenate."""
        bs = self._chunk_size(fn, tensors[0], tensors[1:], grad=False)
        outs = []
        dtype = tensors[0].dtype
        with torch.no_grad():
            for sl in chunk_slices(tensors[0].shape[0], bs):
                with self._amp():
                    out = fn(*(t[sl] for t in tensors))
                if (
                    self.autocast is not None
                    and out.dtype in (torch.bfloat16, torch.float16)
                    and dtype.is_floating_point
                ):
                    out = out.to(dtype)
                outs.append(out)
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    # -- batch_size="auto" --------------------------------------------------------------------------
    def _chunk_size(
        self, fn, state: Tensor, rows: tuple, *, grad: bool, uses_G: bool = True, uses_D: bool = True
    ) -> int:
        if isinstance(self.batch_size, int):  # else "auto"
            return self.batch_size
        key = (getattr(fn, "__code__", None) or type(fn), grad)
        if key not in self._auto:
            self._auto[key] = probe_chunk(self, fn, state, rows, grad=grad, uses_G=uses_G, uses_D=uses_D)
            log.info(
                "%s: batch_size='auto' -> %d rows per chunk (%s, %s)",
                self.method,
                self._auto[key],
                "energy+grad" if grad else "forward",
                self.device,
            )
        return self._auto[key]

    def probe_rows(self, fn, state, rows, m: int, grad: bool):
        """One chunk of ``m`` rows through the eager step, counted like any other evaluation."""
        sl = slice(0, m)
        if grad:
            return self._eager_step(lambda leaf, *r: self._forward(fn, leaf, *r), state[sl], *(r[sl] for r in rows))
        with torch.no_grad(), self._amp():
            return (fn(state[sl], *(r[sl] for r in rows)),)
