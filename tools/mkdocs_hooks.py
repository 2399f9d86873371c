"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks``): text written once, shown on several pages.

A page's markdown may hold, on a line of its own:

* ``<!-- include: FILE -->``: the repository file FILE (``CHANGELOG.md``), its headings one level deeper when the
  page has a title of its own above the directive (``ARCHITECTURE.md`` in the development page);
* ``<!-- include: FILE#NAME -->``: the text of FILE between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
  (the method table of ``README.md``, written once there);
* ``<!-- options-table: engine -->``: the fields of ``latentflow.options.EngineOptions`` (name, type, default,
  help) as a table, from the record itself.

A directive that cannot be resolved stops the build. In the rendered API pages, the Sphinx roles some docstrings
use (``:class:`X```, ``:func:`f```) are shown as plain code.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
_INCLUDE = re.compile(r"^<!-- include: (?P<file>[^#\s]+)(?:#(?P<name>[\w-]+))? -->$", re.M)
_OPTIONS = re.compile(r"^<!-- options-table: (?P<what>\w+) -->$", re.M)
_FENCE = re.compile(r"^(`{3,}|~{3,})")
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):(?=<code>)")


def _demote(text: str) -> str:
    out, fence = [], None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m and (fence is None or line.strip() == fence):
            fence = m.group(1) if fence is None else None
        elif fence is None and line.startswith("#"):
            line = "#" + line
        out.append(line)
    return "\n".join(out) + "\n"


def _include(m: re.Match, page: str, markdown: str) -> str:
    path = ROOT / m["file"]
    if not path.is_file():
        raise PluginError(f"{page}: include: {m['file']} does not exist")
    text = path.read_text(encoding="utf-8")
    if not m["name"]:
        titled = any(line.startswith("# ") for line in markdown[: m.start()].splitlines())
        return _demote(text) if titled else text
    start, end = f"<!-- {m['name']}:start -->", f"<!-- {m['name']}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise PluginError(f"{page}: include: {m['file']} needs one {start} ... {end} pair")
    return text[text.index(start) + len(start) : text.index(end)].strip("\n") + "\n"


def _cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _options_table(m: re.Match, page: str) -> str:
    if m["what"] != "engine":
        raise PluginError(f"{page}: options-table: unknown table {m['what']!r} (known: engine)")
    from latentflow.options import EngineOptions

    rows = ["| option | type | default | what it does |", "|---|---|---|---|"]
    for f in EngineOptions.fields_info():
        rows.append(f"| `{f['name']}` | {_cell(f['type'])} | `{f['default']!r}` | {_cell(f['help'])} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    where = page.file.src_path
    markdown = _INCLUDE.sub(lambda m: _include(m, where, markdown), markdown)
    return _OPTIONS.sub(lambda m: _options_table(m, where), markdown)


def on_page_content(html: str, page, config, files) -> str:
    return _ROLE.sub("", html)
