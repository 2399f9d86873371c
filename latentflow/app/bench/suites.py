"""The benchmark suites, by name: each is data (:class:`~latentflow.app.bench.runner.Suite`: rows, a metric,
how it runs and reports), and :func:`run_suite` runs one with the one runner
(:func:`latentflow.app.bench.runner.run`), which writes the JSON first and the reports from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ...errors import OptionError
from .images import IMAGES
from .runner import Suite, run
from .toy2d import TOY2D

__all__ = ["Suite", "SUITES", "run_suite", "suite_names"]

SUITES: dict[str, Suite] = {"toy2d": TOY2D, "images": IMAGES}


def suite_names() -> list[str]:
    return list(SUITES)


def run_suite(name: str, *, out: str | Path | None = None, seed: int = 0, echo: Callable | None = print, **kw) -> int:
    """Run suite ``name`` (see :func:`latentflow.app.bench.runner.run`); returns the exit code."""
    if name not in SUITES:
        raise OptionError(f'unknown suite "{name}"; suites: {", ".join(SUITES)}')
    return run(SUITES[name], out=out, seed=seed, echo=echo, **kw)
