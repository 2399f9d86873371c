"""Compare two benchmark JSON documents (``latentflow bench ... --out``): identical except timings.

    python tools/compare_bench_json.py before.json after.json    # exit 1 when they differ

Keys that end in ``wall_s`` or ``cpu_s`` (times measured, not computed) are left out; everything else,
metrics, options, evaluation counts, curves and the environment, is compared exactly.
"""

from __future__ import annotations

import json
import sys


def differences(a, b, path: str = "") -> list[tuple]:
    """``(path, a, b)`` for every leaf where ``a`` and ``b`` differ (timing keys left out)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k.endswith(("wall_s", "cpu_s")):
                continue
            if k not in a or k not in b:
                out.append((f"{path}/{k}", a.get(k, "<missing>"), b.get(k, "<missing>")))
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = [(path, f"{len(a)} items", f"{len(b)} items")] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [(path, a, b)]


def main(argv: list[str]) -> int:
    with open(argv[1]) as f1, open(argv[2]) as f2:
        diffs = differences(json.load(f1), json.load(f2))
    print(f"{argv[1]} vs {argv[2]}: {len(diffs)} difference(s) (wall times and CPU seconds left out)")
    for d in diffs[:50]:
        print("  ", *d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
