"""Tables of the GPU check (``benchmarks/gpu_check.sh``) from its JSON files.

    python benchmarks/gpu_table.py junit results/gpu/pytest_gpu.xml results/gpu/pytest_gpu.json RC
    python benchmarks/gpu_table.py render results/gpu/throughput.json results/gpu/pytest_gpu.json \
        results/gpu/README.md [--readme docs/gpu.md]

``render`` writes a markdown report with the device name: the gpu tests' counts, per model and batch the
steps/s of every loop and latentflow's best compiled or graph-captured path against the plain and the
StudioGAN-style loops (the targets: >= 2x and >= 3x at batch >= 1,024 on the CIFAR-10 architectures),
the compiled-vs-eager differences, the 50k-chain ``batch_size="auto"`` run and the 50k x 1,000
estimate; with ``--readme PAGE`` it also replaces the page's text between ``<!-- gpu-table:start -->`` and
``<!-- gpu-table:end -->`` (the documentation's GPU page, ``docs/gpu.md``). Ratios are from one run of the benchmark.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

START, END = "<!-- gpu-table:start -->", "<!-- gpu-table:end -->"
FAST = ("latentflow+compile", "latentflow+cuda_graph", "latentflow+compile+cuda_graph")


def junit(xml_path: str, out: str, rc: str) -> int:
    doc = {"returncode": int(rc), "tests": 0, "failures": 0, "errors": 0, "skipped": 0, "failed": []}
    p = Path(xml_path)
    if p.exists():
        root = ET.parse(p).getroot()
        suites = [root] if root.tag == "testsuite" else list(root)
        for s in suites:
            for k in ("tests", "failures", "errors", "skipped"):
                doc[k] += int(s.get(k, 0))
            for case in s.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    doc["failed"].append(f"{case.get('classname')}::{case.get('name')}")
    doc["passed"] = doc["tests"] - doc["failures"] - doc["errors"] - doc["skipped"]
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def _ratio(rows: dict, a: str, b: str):
    return rows[a]["chain_steps_per_s"] / rows[b]["chain_steps_per_s"] if a in rows and b in rows else None


def _fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def table(tp: dict, tests: dict | None) -> str:
    env = tp.get("env", {})
    dev = env.get("device_name") or env.get("gpu") or env.get("device") or "?"
    lines = [
        f"GPU check on **{dev}** (torch {env.get('torch', '?')}, one run of `benchmarks/gpu_check.sh`"
        f"{', CI sizes' if tp.get('quick') else ''}, {tp.get('total_s', 0):.0f} s of benchmark).",
        "",
    ]
    if tests is not None:
        lines += [
            f"`pytest -m gpu`: {tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
            f"{tests['skipped']} skipped" + (f" ({', '.join(tests['failed'])})" if tests["failed"] else ""),
            "",
        ]
    lines += [
        "| model | chains | plain steps/s | StudioGAN-style | latentflow eager | compiled | CUDA graph | bf16 "
        "| best fast / plain | best fast / StudioGAN | 50k x 1,000 (h, best) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for res in tp.get("results", []):
        rows = {r["loop"]: r for r in res["rows"]}
        sps = lambda k, rows=rows: rows[k]["chain_steps_per_s"] if k in rows else None
        fast = [k for k in FAST if k in rows]
        best = max(fast, key=lambda k: rows[k]["chain_steps_per_s"]) if fast else None
        r_plain = _ratio(rows, best, "plain") if best else None
        r_studio = _ratio(rows, best, "studiogan-style") if best else None
        fastest = max(rows.values(), key=lambda r: r["chain_steps_per_s"])
        bf = next((k for k in rows if k.startswith("latentflow+bf") or k.startswith("latentflow+fp")), None)
        lines.append(
            f"| {res['model']} | {res['chains']} | {_fmt(sps('plain'), '.0f')} | "
            f"{_fmt(sps('studiogan-style'), '.0f')} | {_fmt(sps('latentflow'), '.0f')} | "
            f"{_fmt(sps('latentflow+compile'), '.0f')} | {_fmt(sps('latentflow+cuda_graph'), '.0f')} | "
            f"{_fmt(sps(bf) if bf else None, '.0f')} | {_fmt(r_plain)}x | {_fmt(r_studio)}x | "
            f"{fastest['est_50k_x_1000_s'] / 3600:.2f} ({fastest['loop']}) |"
        )
        if res["model"] != "mlp" and res["chains"] >= 1024 and best:
            ok = (r_plain or 0) >= 2 and (r_studio or 0) >= 3
            verdicts.append(
                f"- {res['model']} @ {res['chains']}: {best} is {_fmt(r_plain)}x plain (target 2x), "
                f"{_fmt(r_studio)}x StudioGAN-style (target 3x): **{'met' if ok else 'NOT met'}**"
            )
    if verdicts:
        lines += ["", "Targets (batch >= 1,024, CIFAR-10 architectures):", *verdicts]
    eq = [
        (res["model"], res["chains"], p, d)
        for res in tp.get("results", [])
        for p, d in (res.get("equal_to_eager") or {}).items()
    ]
    if eq:
        lines += [
            "",
            "Against eager (256 chains, 5 steps, same seed): "
            + "; ".join(
                f"{m} {p}: " + (f"max |dx| {d['max_abs_dx']:.2e}" if "max_abs_dx" in d else d.get("error", "?"))
                for m, c, p, d in eq
            ),
        ]
    if tp.get("auto_50k") or tp.get("skipped"):
        lines.append("")
    for a in tp.get("auto_50k", []):
        lines.append(
            f'- {a["chains"]} chains, `batch_size="auto"` ({a["model"]}): '
            + (
                f"ran, no out-of-memory, {a['s']:.1f} s for one step, chunks {a.get('auto_batch_size')}"
                if a["ok"]
                else f"FAILED: {a.get('error')}"
            )
        )
    for s in tp.get("skipped", []):
        lines.append(f"- skipped {s['model']} (chains {s['chains']}): {s['why']}")
    return "\n".join(lines) + "\n"


def render(tp_path: str, tests_path: str, out: str, readme: str | None = None) -> int:
    tp = json.loads(Path(tp_path).read_text())
    tests = json.loads(Path(tests_path).read_text()) if Path(tests_path).exists() else None
    text = table(tp, tests)
    Path(out).write_text("# GPU check\n\n" + text)
    print(text)
    if readme:
        p = Path(readme)
        doc = p.read_text()
        if START in doc and END in doc:
            head, rest = doc.split(START, 1)
            _, tail = rest.split(END, 1)
            p.write_text(head + START + "\n" + text + END + tail)
        else:
            print(f"gpu_table: {readme} has no {START} / {END} markers; left unchanged", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["junit"] and len(argv) == 4:
        return junit(*argv[1:])
    if argv[:1] == ["render"] and len(argv) in (4, 6):
        readme = argv[5] if len(argv) == 6 and argv[4] == "--readme" else None
        return render(argv[1], argv[2], argv[3], readme)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
