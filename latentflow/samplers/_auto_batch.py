"""``batch_size="auto"``: the largest chunk of chains whose evaluation fits in the free memory, measured by
probing a few rows through the engine (counted like any other evaluation)."""

from __future__ import annotations

import os

import torch
from torch import Tensor

#: ``batch_size="auto"`` on the CPU never picks more rows than this per chunk (bigger chunks buy no
#: speed there, only memory).
AUTO_CPU_MAX_ROWS = 16384
#: fraction of the free memory an automatic chunk may plan to use (the rest is the safety margin).
AUTO_MEMORY_FRACTION = 0.7


def available_ram_bytes() -> int | None:
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


def nbytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, Tensor) else 0


def probe_chunk(eng, fn, state: Tensor, rows: tuple, *, grad: bool, uses_G: bool, uses_D: bool) -> int:
    """The largest chunk whose evaluation fits in the free memory, from a probe on a few rows.

    CUDA: peak allocated memory of probes on two chunk sizes gives the bytes per row (the slope,
    so fixed workspaces do not count per row); the chunk uses at most ``AUTO_MEMORY_FRACTION`` of
    the free device memory (``mem_get_info`` plus what the caching allocator holds unused), after
    the outputs of all ``n`` rows. CPU: the bytes autograd saves per row (plus the outputs) against
    the available RAM, capped at ``AUTO_CPU_MAX_ROWS``. Results never depend on the chunk size."""
    n = state.shape[0]
    out_row: float = 0
    if eng.device.type == "cuda":
        m1, m2 = min(n, 4), min(n, 32)
        peaks = []
        for m in (m1, m2) if m2 > m1 else (m1,):
            torch.cuda.synchronize(eng.device)
            base = torch.cuda.memory_allocated(eng.device)
            torch.cuda.reset_peak_memory_stats(eng.device)
            out = eng.probe_rows(fn, state, rows, m, grad)
            torch.cuda.synchronize(eng.device)
            peaks.append((m, torch.cuda.max_memory_allocated(eng.device) - base))
            out_row = sum(nbytes(t) for t in out) / m
            del out
        if len(peaks) == 2 and peaks[1][1] > peaks[0][1]:
            per_row = (peaks[1][1] - peaks[0][1]) / (peaks[1][0] - peaks[0][0])
        else:
            per_row = peaks[-1][1] / peaks[-1][0]
        free, _ = torch.cuda.mem_get_info(eng.device)
        free += torch.cuda.memory_reserved(eng.device) - torch.cuda.memory_allocated(eng.device)
        if grad:  # the probes' forwards were counted by fn itself
            eng._count(m1 + (m2 if m2 > m1 else 0), uses_G, uses_D, backward=True, forward=False)
    else:
        m = min(n, 8)
        saved = [0]

        def pack(t):
            saved[0] += nbytes(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = eng.probe_rows(fn, state, rows, m, grad)
        out_row = sum(nbytes(t) for t in out) / m
        # the backward holds about as much again as the forward saved; the input chunk is copied
        per_row = 2 * saved[0] / m + 2 * out_row + 2 * nbytes(state[:1])
        if grad:
            eng._count(m, uses_G, uses_D, backward=True, forward=False)
        free = available_ram_bytes() or 0
    budget = AUTO_MEMORY_FRACTION * free - 2 * out_row * n  # the outputs of all rows, and their cat
    chunk = int(budget // max(per_row, 1.0)) if budget > 0 else 1
    cap = n if eng.device.type == "cuda" else min(n, AUTO_CPU_MAX_ROWS)
    return max(1, min(chunk, cap))
