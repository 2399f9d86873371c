"""Reports of the image suite, always built from its JSON document: the markdown table with a verdict
line, the FID-FMNIST-against-steps plot and before/after grids (matplotlib imported lazily)."""

from __future__ import annotations

import logging
import math
import traceback
from pathlib import Path

from ..._io import atomic_write_bytes, atomic_write_text
from ...result import Evals
from ...samplers import NO_REFINEMENT
from ..report import write_json
from .images_metrics import M_CS, M_FID, M_IFID, M_IKID, M_IS, M_KID, M_PRDC
from .images_rows import FOCUS

log = logging.getLogger("latentflow.bench")

TIE_PCT = 1.0  # a FID change within ±1% of the generator's is not counted as beating it
#: the name of each headline metric in the verdict
_NAMES = {M_FID: "FID-FMNIST", M_IFID: "Inception FID"}


def headline(doc: dict) -> tuple[str, str]:
    """(key, name) of the metric a document ranks rows by: FID-FMNIST, or Inception FID for any other model."""
    key = doc.get("headline", M_FID)
    return key, _NAMES.get(key, key)


def _f(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.{nd}g}" if abs(v) >= 1e4 else f"{v:.{nd}f}"
    return str(v)


def generator_row(rows) -> dict | None:
    """The row of the generator alone (the baseline), when it ran."""
    return next((r for r in rows if r["method"] == NO_REFINEMENT and "error" not in r), None)


def verdict(doc: dict) -> str:
    """One line: which rows beat the generator alone on the headline FID, and the best row."""
    key, name = headline(doc)
    ok = [r for r in doc["rows"] if "error" not in r]
    gen = generator_row(ok)
    if gen is None:
        return "no verdict: the generator row is missing or failed"
    others = [r for r in ok if r is not gen]
    if not others:
        return "no verdict: only the generator ran"
    g = gen["metrics"][key]
    better = [r for r in others if r["metrics"][key] < g * (1 - TIE_PCT / 100)]
    best = min(others, key=lambda r: r["metrics"][key])
    d = doc.get("budget", {}).get("d_forward_per_sample")
    s = (f"At ≈{d} D evaluations per sample, " if d else "") + (
        f"{len(better)} of {len(others)} methods beat the generator alone on {name} by more than {TIE_PCT:g}% "
        f"({', '.join(r['label'] for r in better) or 'none'}); best: {best['label']} "
        f"({_f(best['metrics'][key])} vs {_f(g)}, {best['vs_generator_pct'][key]:+.1f}%)."
    )
    ddls = [r for r in others if r["method"] == FOCUS]
    if ddls:
        bd = min(ddls, key=lambda r: r["metrics"][key])
        pct = bd["vs_generator_pct"][key]
        s += (
            f" Best DDLS ({bd['label']}) {'meets' if pct <= -20 else 'does not meet'} the ≥20% {name} "
            f"reduction target ({pct:+.1f}%)."
        )
    failed = [r["label"] for r in doc["rows"] if "error" in r]
    if failed:
        s += f" Failed rows: {', '.join(failed)}."
    return s


def images_table(doc: dict) -> str:
    """Markdown table of an ``images`` document (plus the verdict line under it)."""
    if headline(doc)[0] == M_IFID:
        return _generic_table(doc)
    inc = any(M_IFID in r.get("metrics", {}) or M_IFID in r.get("metric_errors", {}) for r in doc["rows"])
    head = [
        "method",
        "G fwd/bwd per sample",
        "D fwd/bwd per sample",
        "FID-FMNIST ↓",
        "vs generator",
        "KID-FMNIST ↓",
        "classifier score ↑",
        "precision ↑",
        "recall ↑",
        "density",
        "coverage ↑",
    ]
    if inc:
        head.append(f"Inception FID (n={doc.get('inception', {}).get('num', '?')}) ↓")
    head += ["accept", "wall s"]

    def rest(r: dict, m: dict) -> list:
        cells = [_f(m.get(M_KID), 3), _f(m.get(M_CS)), *(_f(m.get(k), 3) for k in M_PRDC)]
        if inc:
            if M_IFID in m:
                cells.append(_f(m[M_IFID]))
            else:
                cells.append("error" if M_IFID in r.get("metric_errors", {}) else "")
        return cells + _accept_wall(r)

    return _rows_table(doc, head, M_FID, rest)


def _rows_table(doc: dict, head: list, fid_key: str, rest) -> str:
    """The table: per row its label, G and D evaluations per sample, the FID under ``fid_key`` and its change
    against the generator, then ``rest(row, metrics)`` (a failed row: its error); the verdict and the metric
    errors under it."""
    lines = _head_lines(doc, head)
    for r in doc["rows"]:
        if "error" in r:
            lines.append(_error_line(r, head))
            continue
        b, m = Evals(**r["budget_per_sample"]), r["metrics"]
        delta = r.get("vs_generator_pct", {}).get(fid_key)
        cells = [
            r["label"],
            f"{b.n_G_forward:.1f} / {b.n_G_backward:.1f}",
            f"{b.n_D_forward:.1f} / {b.n_D_backward:.1f}",
            _f(m.get(fid_key)),
            "–" if r["method"] == NO_REFINEMENT or delta is None else f"{delta:+.1f}%",
            *rest(r, m),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return _tail(doc, lines)


def _accept_wall(r: dict) -> list:
    acc = r.get("accept_rate_mean", r.get("accept_rate"))
    return [_f(acc) if isinstance(acc, float) else "", f"{r['wall_s']:.1f}"]


def _head_lines(doc: dict, head: list) -> list:
    return [
        f"**{doc.get('model')}**, {doc.get('num')} samples per row, seed {doc.get('seed')}, "
        f"budget ≈{doc.get('budget', {}).get('d_forward_per_sample')} D evaluations per sample "
        f"({doc.get('env', {}).get('device_name') or doc.get('env', {}).get('device', '')}, "
        f"torch {doc.get('env', {}).get('torch', '?')})"
        + (f"; real: {doc['real']['spec']} ({doc['real']['num_reference']} images)" if doc.get("real") else ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]


def _error_line(r: dict, head: list) -> str:
    return f"| {r['label']} | error: {r['error'].splitlines()[0][:200]} |" + " |" * (len(head) - 2)


def _tail(doc: dict, lines: list) -> str:
    lines += ["", doc.get("verdict") or verdict(doc)]
    errs = {(r["label"], k): v for r in doc["rows"] for k, v in r.get("metric_errors", {}).items()}
    if errs:
        lines.append("")
        by_error: dict = {}  # one line per (metric, message): the offline IS reason is the same on every row
        for (label, k), v in errs.items():
            by_error.setdefault((k, v.splitlines()[0][:300]), []).append(label)
        for (k, v), labels in by_error.items():
            lines.append(f"- {', '.join(labels)}, {k}: {v}")
    return "\n".join(lines)


def _generic_table(doc: dict) -> str:
    """The table of a run against ``--real``: Inception FID / KID / IS and PRDC on every row."""
    head = ["method", "G fwd/bwd per sample", "D fwd/bwd per sample", "Inception FID ↓", "vs generator"]
    head += ["Inception KID ↓", "IS ↑", "precision ↑", "recall ↑", "density", "coverage ↑", "accept", "wall s"]
    return _rows_table(
        doc,
        head,
        M_IFID,
        lambda r, m: [_f(m.get(M_IKID), 3), _f(m.get(M_IS)), *(_f(m.get(k), 3) for k in M_PRDC), *_accept_wall(r)],
    )


def curves_png(path: Path, doc: dict) -> bool:
    """FID-FMNIST against sampler steps (Che et al. 2020, Figure 5), one line per DDLS/DOT row."""
    curves = [c for c in doc.get("curves", []) if len(c["steps"]) >= 2]
    if not curves:
        return False
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for c in curves:
        ax.plot(c["steps"], c[M_FID], marker="o", label=c["label"])
    gen = generator_row(doc["rows"])
    if gen:
        ax.axhline(gen["metrics"][M_FID], color="grey", ls="--", lw=1, label="generator")
    ax.set_xlabel("sampler steps (D evaluations per sample)")
    ax.set_ylabel("FID-FMNIST")
    ax.set_title(f"{doc.get('model')}: FID-FMNIST vs steps (n={doc.get('num')})")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return True


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_").replace("__", "_")


def write_outputs(doc: dict, samples: dict, out: str | Path, n_grid: int = 64) -> dict:
    """Write ``results.json`` (first), ``results.md``, ``fid_vs_steps.png`` and before/after grids."""
    from ..report import grid_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": "results.json", "md": "results.md"}
    gen_label = (generator_row(doc["rows"]) or {}).get("label")
    vr = (-1.0, 1.0)
    grids = {}
    if gen_label and gen_label in samples:
        for label in samples:
            if label == gen_label:
                continue
            grids[label] = f"grid_{_slug(label)}.png"
    doc["files"] = {**files, **({"plot": "fid_vs_steps.png"} if doc.get("curves") else {}), "grids": grids}
    write_json(out / "results.json", doc)
    table = images_table(doc)
    atomic_write_text(out / "results.md", table + "\n")
    try:
        if doc.get("curves"):
            curves_png(out / "fid_vs_steps.png", doc)
        for label, fname in grids.items():
            grid_png(
                out / fname,
                samples[gen_label][:n_grid],
                samples[label][:n_grid],
                label,
                value_range=vr,
                max_images=n_grid,
            )
    except Exception:  # noqa: BLE001  (figures are extras; the JSON and table are written)
        log.error("writing figures failed: %s", traceback.format_exc())
    return doc["files"]
