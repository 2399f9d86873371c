"""The files of a ``refine_to_disk`` run: one safetensors shard per block of chains (``x``, ``z``, labels
and per-chain diagnostics, with the run key and counters in its metadata) and ``index.json``; reading
them back as tensors or as one ``Result``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from torch import Tensor

from .._io import atomic_save_safetensors, atomic_write_json
from ..errors import OptionError
from ..result import GD_EVAL_KEYS, Result

log = logging.getLogger("latentflow")

#: the index of a finished run, inside ``out_path``
INDEX = "index.json"
#: the lock file of a run, inside ``out_path``
LOCK = ".lock"
#: counters summed over the shards (and so over processes) into the index's ``totals``
COUNTERS = (*GD_EVAL_KEYS, "wall_s")


def keys_in(out: Path) -> set[str]:
    """The run keys of what ``out`` already holds (its index and shards)."""
    from safetensors import safe_open

    keys = set()
    idx = out / INDEX
    if idx.exists():
        try:
            keys.add(str(json.loads(idx.read_text()).get("run_key")))
        except (OSError, ValueError, AttributeError):
            keys.add("unreadable index.json")
    for p in sorted(out.glob("shard-*-of-*.safetensors")):
        try:
            with safe_open(str(p), "pt") as fh:
                keys.add(str((fh.metadata() or {}).get("run_key")))
        except Exception:  # noqa: BLE001  (unreadable: rewritten when its block comes)
            pass
    return keys


def clear(out: Path) -> None:
    (out / INDEX).unlink(missing_ok=True)
    for p in out.glob("shard-*-of-*.safetensors"):
        p.unlink()


def _shard_name(b: int, n_blocks: int) -> str:
    return f"shard-{b:05d}-of-{n_blocks:05d}.safetensors"


def _shard_meta(path: Path) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            return fh.metadata() or {}
    except Exception:  # noqa: BLE001  (unreadable or foreign: rewritten)
        return None


def write_blocks(G, D, rows, method, out, key, make_gen, seed, n, chunk, blocks, resume, options, y_all=None) -> None:
    from ..api import refine

    n_blocks = -(-n // chunk)
    for b in blocks:
        lo, hi = b * chunk, min((b + 1) * chunk, n)
        path = out / _shard_name(b, n_blocks)
        if resume and path.exists() and (_shard_meta(path) or {}).get("run_key") == key:
            log.info("refine_to_disk: keeping %s (same run)", path.name)
            continue
        y_b = y_all[lo:hi] if isinstance(y_all, Tensor) else y_all
        res = refine(G, D, rows(lo, hi), method=method, generator=make_gen(), chain_offset=lo, y=y_b, **options)
        tensors = {"x": res.x}
        if res.z is not None:
            tensors["z"] = res.z
        if res.y is not None:
            tensors["y"] = res.y
        scalars = {}
        for k, v in res.info.items():
            if isinstance(v, Tensor) and v.dim() >= 1 and v.shape[0] == hi - lo:
                tensors["info." + k] = v
            elif k not in COUNTERS and k != "options" and not isinstance(v, Tensor):
                scalars[k] = v
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        counters = {k: res.info[k] for k in COUNTERS if k in res.info}
        meta = {
            "run_key": key,
            "block": str(b),
            "start": str(lo),
            "stop": str(hi),
            "method": method,
            "seed": str(seed),
            "counters": json.dumps(counters),
            "options": json.dumps(res.info.get("options", {}), default=repr),
            "info": json.dumps(scalars, default=repr),
        }
        atomic_save_safetensors(tensors, path, metadata=meta)
        del res, tensors
        log.info("refine_to_disk: wrote %s (%d/%d)", path.name, b + 1, n_blocks)


def write_index(out, key, method, seed, n, chunk, options, y=None) -> dict:
    n_blocks = -(-n // chunk)
    totals: dict[str, float] = {}
    shards = []
    for b in range(n_blocks):
        lo, hi = b * chunk, min((b + 1) * chunk, n)
        name = _shard_name(b, n_blocks)
        meta = _shard_meta(out / name)
        if meta is None or meta.get("run_key") != key:
            raise OptionError(
                f"refine_to_disk: shard {name} of this run is missing in {str(out)!r} "
                f"(a process stopped early?); run again to resume"
            )
        counters = json.loads(meta.get("counters", "{}"))
        for k, v in counters.items():
            totals[k] = totals.get(k, 0) + v
        shards.append({"file": name, "start": lo, "stop": hi, "counters": counters})
    index = {
        "schema": 1,
        "method": method,
        "seed": seed,
        "n": n,
        "chunk": chunk,
        "run_key": key,
        "shards": shards,
        "totals": totals,
        "options": json.loads(json.dumps(options, default=repr)),
    }
    if y is not None:
        index["y"] = y
    atomic_write_json(out / INDEX, index, indent=1)
    return index


def load_shards(out_path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> dict[str, Tensor]:
    """Concatenate the shards of a ``refine_to_disk`` run (all tensors, or only ``keys``), in order.

    Loads everything into memory: for 50k images read the shards one by one instead."""
    from safetensors.torch import load_file

    out = Path(out_path)
    idx_path = out / INDEX
    if not idx_path.exists():
        raise OptionError(f"{out} has no {INDEX}: not a finished refine_to_disk output")
    index = json.loads(idx_path.read_text())
    parts: dict[str, list[Tensor]] = {}
    for sh in index["shards"]:
        for k, v in load_file(str(out / sh["file"])).items():
            if keys is None or k in keys:
                parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


def load_result(out_path: str | os.PathLike) -> Result:
    """The ``Result`` of a finished ``refine_to_disk`` run, as one ``refine`` call over all N chains would
    return it: ``x``, ``z`` and the per-chain info concatenated, the counters summed over the shards
    (``wall_s``: summed over blocks, i.e. processor time when processes ran in parallel) and the other
    scalars of the first block (``method``, ``options``, ...). Loads everything into memory."""
    from safetensors import safe_open

    out = Path(out_path)
    parts = load_shards(out)
    index = json.loads((out / INDEX).read_text())
    with safe_open(str(out / index["shards"][0]["file"]), "pt") as fh:
        meta = fh.metadata() or {}
    info: dict = json.loads(meta.get("info", "{}"))
    info["options"] = json.loads(meta.get("options", "{}"))
    info.update({k[len("info.") :]: v for k, v in parts.items() if k.startswith("info.")})
    info.update(index["totals"])
    return Result(x=parts["x"], z=parts.get("z"), info=info, y=parts.get("y"))
