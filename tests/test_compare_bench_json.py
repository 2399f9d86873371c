"""tools/compare_bench_json.py: benchmark documents equal but for timings, and (``--added-ok``) for what the
second adds: new keys and new rows, matched by identity rather than position."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import compare_bench_json
    finally:
        sys.path.pop(0)
    return compare_bench_json


def _row(model, label, emd, **extra):
    return {"model": model, "label": label, "metrics": {"emd": emd, **extra}, "wall_s": 1.0}


BEFORE = {"env": {"git_commit": "a"}, "rows": [_row("g", "gen", 0.2), _row("g", "ddls", 0.1), _row("s", "gen", 0.3)]}


def test_timings_are_left_out_and_anything_else_is_a_difference(tool):
    after = json.loads(json.dumps(BEFORE))
    after["rows"][0]["wall_s"] = 9.0
    assert tool.differences(BEFORE, after) == []
    after["rows"][1]["metrics"]["emd"] = 0.11
    assert tool.differences(BEFORE, after) == [("/rows[1]/metrics/emd", 0.1, 0.11)]


def test_added_keys_and_rows_are_skipped_only_when_asked(tool):
    # a new metric in every row and a new row inside the first model's group (so positions shift)
    rows = [_row("g", "gen", 0.2, recall=0.9), _row("g", "ddls", 0.1, recall=0.8), _row("g", "trunc", 0.5)]
    after = {"env": {"git_commit": "b"}, "rows": rows + [_row("s", "gen", 0.3, recall=0.7)]}
    assert tool.differences(BEFORE, after, added_ok=True, ignore=frozenset({"git_commit"})) == []
    assert tool.differences(BEFORE, after, added_ok=True) == [("/env/git_commit", "a", "b")]
    assert len(tool.differences(BEFORE, after)) > 1  # by position, and the new keys count
    changed = json.loads(json.dumps(after))
    changed["rows"][3]["metrics"]["emd"] = 0.31  # a pre-existing row's number: still found
    assert tool.differences(BEFORE, changed, added_ok=True, ignore=frozenset({"git_commit"})) == [
        ("/rows[s/gen]/metrics/emd", 0.3, 0.31)
    ]
    dropped = {"env": BEFORE["env"], "rows": rows[:2]}  # a row only in the first is a difference
    assert tool.differences(BEFORE, dropped, added_ok=True) == [("/rows[s/gen]", "row", "<missing>")]


def test_main_exits_non_zero_on_a_difference(tool, tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(BEFORE))
    b.write_text(json.dumps({**BEFORE, "extra": 1}))
    assert tool.main(["x", str(a), str(b)]) == 1
    assert tool.main(["x", "--added-ok", str(a), str(b)]) == 0
    assert "0 difference(s)" in capsys.readouterr().out
