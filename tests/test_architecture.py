"""The import structure rules of ARCHITECTURE.md, measured from the source by tools/import_layers.py."""

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "import_layers.py"


@pytest.fixture(scope="module")
def report():
    if not TOOL.exists():
        pytest.skip("tools/import_layers.py is not part of an installed package (run from a checkout)")
    spec = importlib.util.spec_from_file_location("import_layers", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.report()


def test_no_rule_is_broken(report):
    _, r = report
    assert r["problems"] == []


def test_at_most_seven_levels(report):
    mod, r = report
    assert r["max_level"] <= mod.MAX_LEVELS == 7


def test_the_tool_finds_a_circle(tmp_path):
    # the measure itself must be able to fail: a two-module circle is reported
    spec = importlib.util.spec_from_file_location("import_layers", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert mod.levels({"a": {"b"}, "b": {"c"}, "c": set()}) == {"a": 3, "b": 2, "c": 1}
