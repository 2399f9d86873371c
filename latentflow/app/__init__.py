"""The app layer: what the ``latentflow`` commands run, on top of the library.

``sample_model`` (``latentflow sample``) loads a model, refines a batch and writes its output set;
benchmark suites are data (:data:`SUITES`: rows + a metric) run by one runner (:func:`run_suite`) that
writes the JSON document first and the reports (markdown, figures) from it. The CLI imports only this
package; nothing in the library imports it (the facade ``latentflow`` only lazily).

Layout, by job: ``sample/`` (``latentflow sample``), ``tune/`` (``latentflow tune``), ``bench/`` (``suites``,
``runner``, ``toy2d`` and ``images*``: the two suites); shared by them: ``fit`` (what a method needs of a
model, options a run uses), ``options`` (typed ``--opt``), ``outputs`` (checked, locked output folders
written as one set), ``report`` (strict JSON, samples, figures).
"""

from __future__ import annotations

from ..errors import DivergenceWarning, LatentflowError, OptionError, OutputError, suggest
from ..samplers import DEFAULT_METHOD, NO_REFINEMENT
from .bench.suites import SUITES, Suite, run_suite, suite_names
from .fit import check_method_fits, fitting_methods, resolve_device, sampling_options
from .options import parse_config_options, parse_method_options, parse_pairs
from .outputs import MAX_SEED, OutputSet, check_seed, check_writable
from .report import json_text, sample_summary
from .sample.sample import OUTPUT_FILES, sample_model

__all__ = [
    "LatentflowError",
    "OptionError",
    "sample_model",
    "NO_REFINEMENT",
    "OUTPUT_FILES",
    "run_suite",
    "SUITES",
    "Suite",
    "suite_names",
    "parse_method_options",
    "parse_config_options",
    "parse_pairs",
    "suggest",
    "DEFAULT_METHOD",
    "check_seed",
    "check_writable",
    "OutputError",
    "DivergenceWarning",
    "MAX_SEED",
    "OutputSet",
    "json_text",
    "check_method_fits",
    "fitting_methods",
    "sampling_options",
    "resolve_device",
    "list_methods",
    "method_names",
    "models_table",
    "convert",
    "export",
    "trainer_kinds",
    "get_trainer",
    "run_tune",
    "check_parallel_trainer",
    "init_distributed",
    "is_main",
    "sample_summary",
]


def run_tune(model, real, *, budget: int = 100, out=None, seed: int = 0, quiet: bool = False, **options) -> dict:
    """``latentflow tune``: :func:`latentflow.app.tune.tune_cmd.run_tune_command` (writes tune.json/.md/.png);
    ``options``: ``labels``, ``features``, ``time_budget``, ``metric``."""
    from .tune.tune_cmd import run_tune_command

    return run_tune_command(model, real, budget=budget, out=out, seed=seed, quiet=quiet, **options)


def init_distributed():
    """Join the process group ``torchrun`` describes (``latentflow.dist.init_from_env``; a world of one
    outside torchrun)."""
    from ..dist import init_from_env

    return init_from_env()


def is_main() -> bool:
    """Whether this process is rank 0 (or the only one): the one that prints."""
    from ..dist import is_main as _is_main

    return _is_main()


def list_methods() -> dict:
    """``name -> MethodInfo`` of every registered sampler (``latentflow methods``)."""
    from ..samplers import methods

    return methods()


def method_names() -> list[str]:
    """The registered methods (plug-ins and the generator alone included), for ``latentflow sample --method``."""
    return sorted(list_methods())


def models_table() -> list[dict]:
    """One row per manifest model: source, offline availability, size, verification (hashes in the
    manifest), and ``checkpoints``: the files on disk hashed against the manifest or the pins."""
    from ..models import model_rows as _rows

    return _rows()


def convert(*args, **kwargs):
    """``latentflow.models.convert``: a .pt/.pth/.ckpt pair -> safetensors + latentflow.json."""
    from ..models import convert as _convert

    return _convert(*args, **kwargs)


def export(*args, **kwargs):
    """``latentflow.models.export``: a model -> G/D safetensors + latentflow.json."""
    from ..models import export as _export

    return _export(*args, **kwargs)


def trainer_kinds() -> list[str]:
    """The trainers ``latentflow train`` offers (``gan``, ``dflow``, ...)."""
    from ..train import TRAINERS

    return list(TRAINERS)


def get_trainer(kind: str):
    """``(Config class, train function)`` of trainer ``kind``."""
    from ..train import get_trainer as _get

    return _get(kind)


def trainer_presets(kind: str) -> dict[str, dict]:
    """Named recipes of trainer ``kind`` (``latentflow train dflow --preset fmnist-cpu``)."""
    from ..train import trainer_presets as _p

    return _p(kind)


def check_parallel_trainer(kind: str) -> None:
    """Refuse a trainer that does not run data-parallel when this process is one of several (torchrun)."""
    from ..train import check_parallel

    check_parallel(kind)
