"""Benchmark suites as data, and the one runner that turns a suite into files.

A :class:`Suite` is its rows (the methods it compares by default), its headline metric, a function that
runs the rows into a JSON document, and the report built from that document (a markdown table, plus
figures for the image suite). :func:`run_suite` checks the output path and seed before any compute,
runs the suite, writes the JSON first and the reports from it, prints the table and returns the exit
code: 0 when every row ran, 1 when any row failed (the other rows are still written).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import OptionError
from .outputs import check_out_file, check_seed, check_writable

__all__ = ["Suite", "SUITES", "run_suite", "suite_names"]


@dataclass(frozen=True)
class Suite:
    """One benchmark suite. ``run(**kw) -> (doc, samples)``; ``write(doc, samples, out)`` writes the
    JSON document first, then the reports built from it; ``table(doc)`` is the printed markdown."""
    name: str
    rows: tuple[str, ...]
    metric: str
    run: Callable[..., tuple[dict, dict]]
    table: Callable[[dict], str]
    write: Callable[[dict, dict, Path], None]
    default_out: str
    out_is_file: bool      # toy2d: a JSON path (the table beside it as .md); images: a folder
    summary: str


def _toy2d_run(models=None, num=None, seeds=None, quick=False, progress=False, device="cpu",
               **unused) -> tuple[dict, dict]:
    from .toy2d import toy2d
    n, s = (500, 1) if quick else (num or 5000, seeds or 3)
    return toy2d(tuple(models or ()) or ("grid25-wgangp", "swissroll-wgangp"), num=n, seeds=tuple(range(s)),
                 progress=progress, device=device), {}


def _toy2d_write(doc: dict, samples: dict, out: Path) -> None:
    from .toy2d import toy2d_table, write_doc
    write_doc(doc, out, toy2d_table(doc))


def _toy2d_table(doc: dict) -> str:
    from .toy2d import toy2d_table
    return toy2d_table(doc)


def _images_run(models=None, num=None, seed=0, methods=None, quick=False, inception=False, inception_num=None,
                budget=None, progress=False, device="cpu", **unused) -> tuple[dict, dict]:
    from .images import images
    t0 = time.perf_counter()
    doc, samples = images(models[0] if models else "dcgan-fashion", methods, num=num, seed=seed, budget=budget,
                          quick=quick, inception=inception, inception_num=inception_num, progress=progress,
                          device=device)
    doc["total_wall_s"] = time.perf_counter() - t0
    return doc, samples


def _images_write(doc: dict, samples: dict, out: Path) -> None:
    from .images_report import write_outputs
    write_outputs(doc, samples, out)


def _images_table(doc: dict) -> str:
    from .images_report import images_table
    return images_table(doc)


SUITES: dict[str, Suite] = {
    "toy2d": Suite("toy2d", ("data (fresh sample)", "generator", "DRS", "MH-GAN", "DOT", "DDLS (ULA)", "DDLS (MALA)"),
                   "emd", _toy2d_run, _toy2d_table, _toy2d_write, "results/toy2d.json", True,
                   "2-D models (25 Gaussians, swiss roll): modes, high-quality %, EMD"),
    "images": Suite("images", ("generator", "drs", "mh", "dot", "ddls", "ddls-mala", "drs-cal", "mh-cal", "ddls-cal"),
                    "fid_fmnist", _images_run, _images_table, _images_write, "results/images", False,
                    "an image GAN (dcgan-fashion) at an equal D budget: FID-FMNIST, KID, classifier score"),
}


def suite_names() -> list[str]:
    return list(SUITES)


def run_suite(name: str, *, out: str | Path | None = None, seed: int = 0, echo: Callable | None = print,
              **kw) -> int:
    """Run suite ``name`` (keyword options as :class:`Suite.run` takes them: ``models``, ``num``, ``seeds``,
    ``methods``, ``quick``, ...), write its JSON and reports to ``out`` (default the suite's), print the
    table with ``echo``; returns the exit code (1 when any row failed)."""
    if name not in SUITES:
        raise OptionError(f'unknown suite "{name}"; suites: {", ".join(SUITES)}')
    suite = SUITES[name]
    seed = check_seed(seed)
    out = Path(out or suite.default_out)
    (check_out_file if suite.out_is_file else check_writable)(out, name="out")   # before any compute
    doc, samples = suite.run(seed=seed, **kw)
    suite.write(doc, samples, out)
    if echo is not None:
        echo(suite.table(doc))
        if suite.out_is_file:
            echo(f"wrote {out}")
        else:
            echo(f"\nwrote {out / 'results.json'} and results.md, figures in {out} "
                 f"({doc.get('total_wall_s', 0):.0f} s)")
    return 1 if any("error" in r for r in doc["rows"]) else 0
