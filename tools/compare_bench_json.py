"""Compare two benchmark JSON documents (``latentflow bench ... --out``): identical except timings.

    python tools/compare_bench_json.py before.json after.json    # exit 1 when they differ
    python tools/compare_bench_json.py --added-ok --ignore git_commit --ignore verdict before.json after.json

Keys that end in ``wall_s`` or ``cpu_s`` (times measured, not computed) are left out; everything else,
metrics, options, evaluation counts, curves and the environment, is compared exactly.

``--added-ok``: what the second document adds is not a difference (new metric columns, new rows): a key
only in the second is skipped, and lists of rows (dicts with a ``label``) are matched by ``(model, key,
label)`` instead of by position, the second's extra rows skipped. A key or row only in the first is still a
difference. ``--ignore NAME``: leave out every key called NAME (e.g. ``git_commit``, or ``verdict``, a
sentence that counts the rows).
"""

from __future__ import annotations

import argparse
import json
import sys


def _row_id(r) -> tuple | None:
    return (r.get("model"), r.get("key"), r["label"]) if isinstance(r, dict) and "label" in r else None


def _name(row_id: tuple) -> str:
    return "/".join(str(p) for p in row_id if p)


def differences(a, b, path: str = "", *, added_ok: bool = False, ignore: frozenset = frozenset()) -> list[tuple]:
    """``(path, a, b)`` for every leaf where ``a`` and ``b`` differ (timing keys and ``ignore`` left out;
    ``added_ok``: what only ``b`` has is not a difference)."""
    kw = dict(added_ok=added_ok, ignore=ignore)
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k.endswith(("wall_s", "cpu_s")) or k in ignore or (added_ok and k not in a):
                continue
            if k not in a or k not in b:
                out.append((f"{path}/{k}", a.get(k, "<missing>"), b.get(k, "<missing>")))
            else:
                out += differences(a[k], b[k], f"{path}/{k}", **kw)
        return out
    if isinstance(a, list) and isinstance(b, list):
        ids_a, ids_b = [_row_id(x) for x in a], [_row_id(y) for y in b]
        by_id = added_ok and None not in ids_a and None not in ids_b and len(set(ids_b)) == len(ids_b)
        if by_id:  # rows: matched by identity, the second's extra rows skipped
            rows_b = dict(zip(ids_b, b))
            out = [(f"{path}[{_name(i)}]", "row", "<missing>") for i in ids_a if i not in rows_b]
            for i, x in zip(ids_a, a):
                if i in rows_b:
                    out += differences(x, rows_b[i], f"{path}[{_name(i)}]", **kw)
            order_b = [i for i in ids_b if i in set(ids_a)]
            if order_b != [i for i in ids_a if i in rows_b]:
                out.append((path, "row order", "changed"))
            return out
        out = [(path, f"{len(a)} items", f"{len(b)} items")] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]", **kw)
        return out
    return [] if a == b else [(path, a, b)]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--added-ok", action="store_true", help="keys and rows only in AFTER are not differences")
    p.add_argument("--ignore", action="append", default=[], metavar="NAME", help="leave out keys called NAME")
    a = p.parse_args(argv[1:])
    with open(a.before) as f1, open(a.after) as f2:
        diffs = differences(json.load(f1), json.load(f2), added_ok=a.added_ok, ignore=frozenset(a.ignore))
    left_out = "wall times and CPU seconds" + "".join(f", {k}" for k in a.ignore)
    added = "; keys and rows only in the second skipped" if a.added_ok else ""
    print(f"{a.before} vs {a.after}: {len(diffs)} difference(s) ({left_out} left out{added})")
    for d in diffs[:50]:
        print("  ", *d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
