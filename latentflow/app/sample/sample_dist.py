"""``latentflow sample`` over ``torch.distributed``: every rank refines its blocks of the chains, rank 0
writes the one output set a single process writes.

Under ``torchrun --nproc-per-node N -m latentflow sample ...`` (or from Python with a process group
initialised) :func:`sample_distributed` runs on every rank with the same arguments:

1. rank 0 checks and locks ``out`` (:class:`~latentflow.app.outputs.OutputSet`); a failure there is
   raised on every rank;
2. every rank draws the initial states of all chains from ``Generator(seed)`` as one process does
   (cheap: ``num × latent_dim`` numbers) and calls ``latentflow.stream.refine_to_disk`` with that
   generator (each block samples with a copy of its state, as the one process's ``refine`` does) into a
   shard folder beside ``out`` (``.OUT.shards``, on a file system all ranks see); the blocks are
   numbered globally and split between the ranks, each runs with ``chain_offset`` = its first row, so
   the samples are those of a single process up to round-off;
3. rank 0 reads the shards back (``load_result``: per-chain info concatenated, evaluation counts summed
   over all ranks), writes ``samples.safetensors``, the PNG and ``report.json`` exactly as the single
   process does, commits the set and removes the shard folder.

A killed rank (torchrun stops the others) leaves the shard folder behind: the same command again keeps
every finished shard and computes only the missing blocks (the resume of ``refine_to_disk``).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from ... import dist
from ...errors import OptionError
from ...samplers import generate
from ...stream import load_result, refine_to_disk
from ..outputs import OutputSet

log = logging.getLogger("latentflow")

#: the most chains per shard (block) of a distributed ``sample`` run
MAX_BLOCK = 4096


def shard_folder(out: str | Path) -> Path:
    """Where the ranks of a distributed run into ``out`` write their shards: ``.OUT.shards`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.shards"


def block_size(num: int, size: int) -> int:
    """Chains per block: every rank gets at least one block, none more than :data:`MAX_BLOCK` chains."""
    return max(1, min(MAX_BLOCK, -(-num // size)))


def sample_distributed(
    model, method, num, seed, dev, options, batch_size, progress, class_label, out, *, steps
) -> dict:
    """``sample_model`` on every rank of the process group; every rank returns rank 0's report.

    ``steps`` are the single-process run's own pieces (so that both write the same set):
    ``files`` (the set's file names), ``prepare`` (load the model, settle the options), ``initial``
    (the initial state of chosen rows) and ``report`` (write the report and files)."""
    w = dist.world()
    if out is None:
        raise OptionError("a distributed sample run needs out= (a folder every rank can see)")
    outset = dist.agree(
        lambda: OutputSet(out, steps["files"], allowed=steps.get("allowed", ()))
    )  # rank 0, before compute
    staged = None
    if w.main:
        staged = outset.__enter__()  # lock + staging folder
    try:
        report = _sample(
            model, method, num, seed, dev, options, batch_size, progress, class_label, out, staged, w, steps
        )
        if w.main:
            dist.agree(outset.commit)
            shutil.rmtree(shard_folder(out), ignore_errors=True)
        else:
            dist.agree(lambda: None)
    finally:
        if w.main:
            outset.__exit__(None, None, None)
    dist.barrier()
    return report


def _sample(model, method, num, seed, dev, options, batch_size, progress, class_label, out, staged, w, steps) -> dict:
    run = steps["prepare"](model, method, num, seed, dev, options, batch_size, progress and w.main, class_label)
    import torch

    gen = torch.Generator("cpu").manual_seed(seed)
    t0 = time.perf_counter()
    # every rank draws all initial states as one process does (num x latent_dim numbers: cheap), then
    # samples its blocks with the generator in the state one process's refine would find it in
    start, z, x0, y = steps["initial"](run, gen)
    t_gen = time.perf_counter() - t0
    state = z if z is not None else x0
    chunk = block_size(num, w.size)
    t1 = time.perf_counter()
    D, opts = run.pair.run_d(run.opts)  # the calibrated D where the model's sampling block calibrates it
    refine_to_disk(
        run.pair.G,
        D,
        state,
        method,
        shard_folder(out),
        chunk=chunk,
        seed=gen,
        overwrite=True,
        **({} if y is None else {"y": y}),
        **opts,
    )
    wall = time.perf_counter() - t1

    def assemble():
        res = load_result(shard_folder(out))
        res.info["wall_s_summed"] = res.info.get("wall_s")  # rank-seconds over all blocks
        res.info["wall_s"] = wall  # elapsed, as a single process reports it
        res.info["world_size"] = w.size
        x_before = x0
        if z is not None:
            t = time.perf_counter()
            x_before = generate(run.pair.G, z, y=y)
            res.info.setdefault("generator_wall_s", time.perf_counter() - t)
        t_all = t_gen + res.info.pop("generator_wall_s", 0.0)
        return steps["report"](run, start, x_before, res, t_all, staged.staging)

    return dist.agree(assemble)


# -- one refine call split over the ranks (the image benchmark's rows) ----------------------------------


def refine_split(G, D, z, method: str, seed: int, **options):
    """``refine(G, D, z, method, seed=seed, **options)`` with the rows split over the ranks: each rank
    refines its contiguous slice (``chain_offset`` = the slice's start, so the rows are those of one
    call) and every rank gets the whole ``Result`` back: ``x``, ``z`` and per-chain info concatenated
    in row order, the evaluation counters summed over the ranks, the other info of rank 0. A world of
    one is one plain ``refine`` call."""
    import torch

    from ...api import refine

    w = dist.world()
    if not w.distributed:
        return refine(G, D, z, method=method, seed=seed, **options)
    sl = dist.shard(z.shape[0])
    y = options.get("y")
    if isinstance(y, torch.Tensor) and y.dim() == 1 and y.shape[0] == z.shape[0]:  # per-chain labels: this rank's
        options = {**options, "y": y[sl]}
    res = refine(G, D, z[sl], method=method, seed=seed, chain_offset=sl.start, **options)
    return gather_result(res, z.shape[0], sl.stop - sl.start)


def gather_rows(t):
    """Every rank's rows of ``t`` (contiguous slices in rank order) concatenated, on ``t``'s device."""
    import torch

    parts = dist.gather_objects(t.detach().cpu())
    return torch.cat(parts).to(t.device)


def gather_result(res, n: int, rows: int):
    """The whole ``Result`` from every rank's part (see :func:`refine_split`)."""
    from ...result import Result
    from ...stream import COUNTERS

    mine = sorted(k for k, v in res.info.items() if hasattr(v, "dim") and v.dim() >= 1 and v.shape[0] == rows)
    per_chain = set.intersection(*(set(ks) for ks in dist.gather_objects(mine)))  # the same keys on every rank
    info = {}
    for k in sorted(res.info):
        v = res.info[k]
        if k in per_chain:
            info[k] = gather_rows(v)
        elif k in COUNTERS:
            info[k] = sum(dist.gather_objects(v)) if k != "wall_s" else max(dist.gather_objects(v))
        else:
            info[k] = v
    z = gather_rows(res.z) if res.z is not None else None
    return Result(x=gather_rows(res.x), z=z, info=info)
