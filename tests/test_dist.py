"""latentflow.dist: chain slices and the collectives, in a world of one and in two gloo processes."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from latentflow import dist
from latentflow.errors import OptionError


@pytest.mark.parametrize("n,size", [(0, 3), (1, 2), (10, 3), (200, 2), (7, 7), (5, 8)])
def test_shard_partitions_rows_in_order(n, size):
    slices = [dist.shard(n, r, size) for r in range(size)]
    rows = [i for s in slices for i in range(s.start, s.stop)]
    assert rows == list(range(n))
    lengths = [s.stop - s.start for s in slices]
    assert max(lengths) - min(lengths) <= 1
    assert lengths == sorted(lengths, reverse=True)


def test_shard_rejects_bad_arguments():
    with pytest.raises(OptionError, match="rank"):
        dist.shard(10, 2, 2)
    with pytest.raises(OptionError, match="n must"):
        dist.shard(-1, 0, 1)


def test_world_of_one_without_a_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    w = dist.init_from_env()
    assert (w.rank, w.size, w.distributed, w.main) == (0, 1, False, True)
    assert dist.sum_ints({"a": 3}) == {"a": 3}
    assert dist.broadcast_object({"x": 1}) == {"x": 1}
    dist.barrier()
    assert dist.shard(10) == slice(0, 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, size, port, q):
    os.environ.update(
        WORLD_SIZE=str(size), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    w = dist.init_from_env("gloo")
    try:
        sl = dist.shard(11)
        total = dist.sum_ints({"rows": sl.stop - sl.start, "rank": w.rank})
        got = dist.broadcast_object({"from": w.rank} if w.main else None)
        dist.barrier()
        q.put((w.rank, w.size, (sl.start, sl.stop), total, got))
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_sum_and_broadcast():
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    out = sorted(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [o[2] for o in out] == [(0, 6), (6, 11)]
    for _rank, size, _, total, got in out:
        assert size == 2
        assert total == {"rank": 1, "rows": 11}
        assert got == {"from": 0}
