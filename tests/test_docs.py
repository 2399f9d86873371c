"""The documentation cannot rot: every Python and shell block of README.md and docs/ runs (at the sizes its
``small`` substitutions give) or says why not, the README stays a front page, and every page is in the site's
nav. The conventions are in docs/development.md and tests/docblocks.py."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from docblocks import Block, DocBlockError, check_syntax, collect, run_page, run_python

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))
#: pages whose blocks train models, start several processes or compute Inception features: run in the slow
#: selection (.ci/run runs it); the fast one compiles / parses their blocks
SLOW_PAGES = {"docs/trainers.md", "docs/scaling.md", "docs/score-models.md", "docs/benchmarks.md"}
README_MAX_BYTES = 12 * 1024


def _have(need: str) -> bool:
    if need == "fashion-mnist":
        from latentflow.data import find_fashion_mnist

        try:
            find_fashion_mnist()
        except Exception:
            return False
        return True
    return False


@pytest.fixture(scope="module")
def docs_cache(tmp_path_factory):
    """One latentflow cache for every page (reference statistics are computed once)."""
    return tmp_path_factory.mktemp("docs-cache")


def _env(cache: Path) -> dict:
    """The shell blocks' environment: ``latentflow`` (command and package) resolves to this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(LATENTFLOW_CACHE=str(cache), MPLBACKEND="Agg", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return env


def _run(page: str, tmp_path: Path, monkeypatch, cache: Path) -> None:
    blocks = collect(ROOT / page, display=page)
    missing = sorted({n for b in blocks if b.runs for n in b.needs if not _have(n)})
    if missing:
        pytest.skip(f"{page} needs {', '.join(missing)}")
    monkeypatch.setenv("LATENTFLOW_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    work = tmp_path / "work"
    work.mkdir()
    try:
        run_page(blocks, work, _env(cache), repo=ROOT)
        error = None
    except DocBlockError as e:
        error = str(e)
    if error:  # outside the except clause: the report is the block's file, line and traceback only
        pytest.fail(error, pytrace=False)


@pytest.mark.rng_ok  # the blocks are user code: they may draw from the global torch RNG
@pytest.mark.parametrize("page", [p for p in PAGES if p not in SLOW_PAGES])
def test_page_code_blocks_run(page, tmp_path, monkeypatch, docs_cache):
    _run(page, tmp_path, monkeypatch, docs_cache)


@pytest.mark.slow
@pytest.mark.rng_ok
@pytest.mark.parametrize("page", sorted(SLOW_PAGES))
def test_slow_page_code_blocks_run(page, tmp_path, monkeypatch, docs_cache):
    _run(page, tmp_path, monkeypatch, docs_cache)


@pytest.mark.parametrize("page", sorted(SLOW_PAGES))
def test_slow_page_code_blocks_compile(page):
    """The fast selection's check of the slow pages: Python blocks compile, shell blocks parse."""
    errors = []
    for b in collect(ROOT / page, display=page):
        if b.runs:
            try:
                check_syntax(b)
            except DocBlockError as e:
                errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def test_every_code_block_runs_or_says_why_not():
    """Blocks of a runnable language either run or carry a norun reason; the rest are text (collect checks
    the languages and the directives' syntax)."""
    for page in PAGES:
        for b in collect(ROOT / page, display=page):
            if b.lang in ("python", "bash"):
                assert b.runs or b.norun, b.where


def test_readme_is_a_front_page():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move text into docs/ (limit {README_MAX_BYTES})"


def _nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node] if node.endswith(".md") else []
    if isinstance(node, list):
        return [p for item in node for p in _nav_pages(item)]
    if isinstance(node, dict):
        return [p for v in node.values() for p in _nav_pages(v)]
    return []


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert sorted(pages - set(nav)) == [], "pages missing from mkdocs.yml's nav"
    assert sorted(set(nav) - pages) == [], "nav entries without a page"
    assert len(nav) == len(set(nav)), "a page is in the nav twice"


def test_readme_links_point_at_files_that_exist():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [x for x in links if "://" not in x]
    assert local, "the README links to the docs pages"
    missing = [x for x in local if not (ROOT / x).exists()]
    assert missing == []


# -- the collector and runner themselves -------------------------------------------------------------------


def _page(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "page.md"
    p.write_text(text)
    return p


def test_a_broken_python_block_fails_naming_the_file_and_line(tmp_path):
    page = _page(
        tmp_path,
        "# Page\n\n```python\nx = 1\n```\n\ntext\n\n```python\ny = x + 1\nassert y == 3, 'y is 2'\n```\n",
    )
    blocks = collect(page, display="docs/page.md")
    assert [b.line for b in blocks] == [3, 9]
    with pytest.raises(DocBlockError) as e:
        run_page(blocks, tmp_path, dict(os.environ))
    msg = str(e.value)
    assert msg.startswith("docs/page.md:9: python block failed: AssertionError: y is 2")
    assert 'docs/page.md", line 11' in msg  # the traceback points at the markdown line


def test_a_broken_shell_block_fails_naming_the_file_and_line(tmp_path):
    page = _page(tmp_path, "```bash\ntrue\n```\n\n```bash\necho made it\nfalse\necho not reached\n```\n")
    with pytest.raises(DocBlockError, match=r"^page.md:5: shell block exited with 1") as e:
        run_page(collect(page, display="page.md"), tmp_path, dict(os.environ))
    assert "made it" in str(e.value) and "not reached" not in str(e.value)


def test_blocks_of_a_page_share_one_namespace_and_working_directory(tmp_path):
    page = _page(
        tmp_path,
        "```python\nopen('a.txt', 'w').write('hi')\nk = 3\n```\n"
        '```bash\ntest "$(cat a.txt)" = hi\n```\n'
        "```python\nassert k == 3\n```\n",
    )
    work = tmp_path / "w"
    work.mkdir()
    assert run_page(collect(page), work, dict(os.environ)) == 3
    assert (work / "a.txt").exists()


def test_norun_blocks_are_skipped_and_need_a_reason(tmp_path):
    page = _page(tmp_path, "<!-- norun: needs a GPU -->\n```python\nraise SystemExit(1)\n```\n")
    (b,) = collect(page)
    assert not b.runs and b.norun == "needs a GPU"
    assert run_page([b], tmp_path, dict(os.environ)) == 0
    with pytest.raises(DocBlockError, match="page.md:2: norun needs a reason"):
        collect(_page(tmp_path, "<!-- norun: -->\n```python\npass\n```\n"), display="page.md")


def test_small_substitutions_are_applied_and_must_match(tmp_path, monkeypatch):
    page = _page(tmp_path, "<!-- small: `50000` => `5`; `steps=1000` => `steps=2` -->\n\n```python\nn = 50000\n```\n")
    (b,) = collect(page)
    assert b.subs == (("50000", "5"), ("steps=1000", "steps=2"))
    with pytest.raises(DocBlockError, match="small: `steps=1000` does not occur"):
        b.source()
    ok = Block(b.path, b.line, "python", "n = 50000\n", None, (("50000", "5"),))
    ns: dict = {}
    monkeypatch.chdir(tmp_path)
    run_python(ok, ns)
    assert ns["n"] == 5


def test_cwd_and_needs_directives(tmp_path):
    page = _page(tmp_path, "<!-- needs: fashion-mnist -->\n<!-- cwd: repo -->\n```bash\npwd > /dev/null\n```\n")
    (b,) = collect(page)
    assert b.cwd == "repo" and b.needs == ("fashion-mnist",)
    with pytest.raises(DocBlockError, match="cwd must be one of repo"):
        collect(_page(tmp_path, "<!-- cwd: /tmp -->\n```bash\ntrue\n```\n"))
    with pytest.raises(DocBlockError, match="no repository root was given"):
        run_page([b], tmp_path, dict(os.environ))


def test_syntax_check_of_a_slow_page_names_the_line(tmp_path):
    page = _page(tmp_path, "text\n\n```python\ndef f(:\n```\n\n```bash\nif then fi\n```\n")
    py, sh = collect(page, display="p.md")
    with pytest.raises(DocBlockError, match=r"^p.md:3: python block does not compile"):
        check_syntax(py)
    with pytest.raises(DocBlockError, match=r"^p.md:7: shell block does not parse"):
        check_syntax(sh)


def test_nested_fences_and_unknown_languages(tmp_path):
    page = _page(tmp_path, "````markdown\n```python\nraise SystemExit\n```\n````\n")
    (b,) = collect(page)
    assert b.lang == "markdown" and not b.runs and "raise SystemExit" in b.code
    with pytest.raises(DocBlockError, match="page.md:1: unknown code block language 'pycon'"):
        collect(_page(tmp_path, "```pycon\n>>> 1\n```\n"), display="page.md")
    with pytest.raises(DocBlockError, match="never closed"):
        collect(_page(tmp_path, "```python\nx = 1\n"))
