"""One runner for every benchmark suite: check, run, write the JSON first, the reports from it.

A :class:`Suite` is data: its rows (the methods it compares by default), its headline metric, a
function that runs the rows into a JSON document, and the report built from that document (a markdown
table, plus figures for the image suite). :func:`run` checks the output path and seed before any
compute, runs the suite, writes the JSON first and the reports from it, prints the table and returns
the exit code: 0 when every row ran, 1 when any row failed (the other rows are still written).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..._io import atomic_write_text
from ..outputs import check_out_file, check_seed, check_writable
from ..report import write_json

__all__ = ["Suite", "run"]


@dataclass(frozen=True)
class Suite:
    """One benchmark suite. ``run(**kw) -> (doc, samples)``; ``table(doc)`` is the printed markdown.
    ``default_out``: a ``.json`` path (the table is written beside it as ``.md``) or a folder
    (``results.json`` and ``results.md`` in it). ``write(doc, samples, out)``, where given, replaces that
    default writing (it writes the JSON document first, then the reports built from it)."""

    name: str
    rows: tuple[str, ...]
    metric: str
    run: Callable[..., tuple[dict, dict]]
    table: Callable[[dict], str]
    default_out: str
    summary: str
    write: Callable[[dict, dict, Path], object] | None = None  # what it returns is not used

    @property
    def out_is_file(self) -> bool:
        """``out`` names the JSON file (else a folder)."""
        return self.default_out.endswith(".json")

    def write_outputs(self, doc: dict, samples: dict, out: Path) -> None:
        """The JSON document first, then the reports from it (the suite's ``write``, or the table)."""
        if self.write is not None:
            self.write(doc, samples, out)
            return
        json_path, md_path = (
            (out, out.with_suffix(".md")) if self.out_is_file else (out / "results.json", out / "results.md")
        )
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_path, doc)
        atomic_write_text(md_path, self.table(doc) + "\n")


def run(suite: Suite, *, out: str | Path | None = None, seed: int = 0, echo: Callable | None = print, **kw) -> int:
    """Run ``suite`` (keyword options as its ``run`` takes them: ``models``, ``num``, ``seeds``, ``methods``,
    ``quick``, ...), write its JSON and reports to ``out`` (default the suite's), print the table with
    ``echo``; returns the exit code (1 when any row failed)."""
    seed = check_seed(seed)
    out = Path(out or suite.default_out)
    (check_out_file if suite.out_is_file else check_writable)(out, name="out")  # before any compute
    doc, samples = suite.run(seed=seed, **kw)
    from ...dist import is_main

    if not is_main():  # under torchrun every rank ran the rows' slices; rank 0 writes and prints
        return 1 if any("error" in r for r in doc["rows"]) else 0
    suite.write_outputs(doc, samples, out)
    if echo is not None:
        echo(suite.table(doc))
        if suite.out_is_file:
            echo(f"wrote {out}")
        else:
            echo(
                f"\nwrote {out / 'results.json'} and results.md, figures in {out} ({doc.get('total_wall_s', 0):.0f} s)"
            )
    return 1 if any("error" in r for r in doc["rows"]) else 0
