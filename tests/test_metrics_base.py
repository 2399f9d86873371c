"""latentflow.metrics._base: the feature-extractor registry, and one cache folder for every unit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import latentflow.metrics as metrics
from latentflow import _io
from latentflow.errors import OptionError
from latentflow.metrics import _base
from latentflow.models import cache_dir as models_cache_dir


def test_both_extractors_are_registered_and_unknown_names_refused():
    assert set(_base.FEATURE_EXTRACTORS) <= set(_base._EXTRACTORS)
    with pytest.raises(
        OptionError,
        match=r"feature_extractor: expected one of inception-v3-compat, "
        r"fmnist-classifier; got 'vgg'",
    ):
        _base.resolve_extractor("vgg", None, False)


def test_the_fmnist_extractor_resolves_without_a_download():
    kw, tag = _base.resolve_extractor(_base.FMNIST, offline=True, need_logits=True)
    assert kw == {"feature_extractor": "fmnist-classifier"} and tag.startswith("sha")


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"LATENTFLOW_CACHE": "/tmp/lf", "XDG_CACHE_HOME": "/tmp/xdg"}, "/tmp/lf"),
        ({"XDG_CACHE_HOME": "/tmp/xdg"}, "/tmp/xdg/latentflow"),
    ],
)
def test_one_cache_dir_honours_latentflow_cache_then_xdg(monkeypatch, env, expected):
    for k in ("LATENTFLOW_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert str(_io.cache_dir()) == str(_base.cache_dir()) == str(models_cache_dir()) == expected


def test_no_metric_module_imports_the_metric_code_back():
    folder = Path(metrics.__file__).resolve().parent
    for name in ("_base", "inception_offline"):
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
        assert not mods & {"fidelity", "fmnist_classifier"}, name
    tree = ast.parse((folder / "fidelity.py").read_text(encoding="utf-8"))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
    assert "fmnist_classifier" not in mods
