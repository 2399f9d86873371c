"""The code blocks of README.md and docs/*.md: collected from the markdown, run in order, failures named by
file and line (``tests/test_docs.py`` runs them; docs/development.md documents the conventions).

A fenced block whose info string starts with ``python`` runs in-process with ``exec`` (one namespace per
page, in the page's temporary working directory); ``bash``/``sh``/``shell`` blocks run with
``bash -e -o pipefail`` there. HTML comments on the lines directly before a block (blank lines between
are allowed) change how it runs:

* ``<!-- norun: REASON -->``: the block is not run; the reason is required.
* ``<!-- small: `OLD` => `NEW`; `OLD2` => `NEW2` -->``: the test replaces the text OLD by NEW before running
  (a smaller size); every OLD must occur in the block, so an edited block cannot silently drop it.
* ``<!-- cwd: repo -->``: a shell block runs in the repository root (commands on the source tree; it must not
  write files there).
* ``<!-- needs: fashion-mnist -->``: the block needs that data set (the test skips the page without it).
"""

from __future__ import annotations

import os
import re
import subprocess
import traceback
from dataclasses import dataclass, field
from pathlib import Path

RUN_LANGS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
#: info strings of blocks that are not code to run (output, data, diagrams)
TEXT_LANGS = {"", "text", "yaml", "json", "toml", "markdown", "md", "ini"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<kind>norun|small|cwd|needs)\s*:(?P<body>.*?)-->\s*$")
CWDS = ("repo",)
NEEDS = ("fashion-mnist",)
_SUB = re.compile(r"`(?P<old>[^`]+)`\s*=>\s*`(?P<new>[^`]*)`")


class DocBlockError(AssertionError):
    """A block failed, or its markup is malformed; the message starts with ``FILE:LINE:``."""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # "python", "bash" or a text language
    code: str
    norun: str | None = None
    subs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    cwd: str | None = None  # "repo": run in the repository root
    needs: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in ("python", "bash") and self.norun is None

    def source(self) -> str:
        """The code as the test runs it: every ``small`` substitution applied (each must match)."""
        code = self.code
        for old, new in self.subs:
            if old not in code:
                raise DocBlockError(f"{self.where}: small: `{old}` does not occur in the block")
            code = code.replace(old, new)
        return code


def _directives(lines: list[str], fence_index: int, where: str) -> dict:
    norun, subs, cwd, needs = None, [], None, []
    i = fence_index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    while i >= 0:
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        body = m["body"].strip()
        if m["kind"] == "norun":
            if not body:
                raise DocBlockError(f"{where}: norun needs a reason (<!-- norun: why -->)")
            norun = body
        elif m["kind"] == "cwd":
            if body not in CWDS:
                raise DocBlockError(f"{where}: cwd must be one of {', '.join(CWDS)}; got {body!r}")
            cwd = body
        elif m["kind"] == "needs":
            if body not in NEEDS:
                raise DocBlockError(f"{where}: needs must be one of {', '.join(NEEDS)}; got {body!r}")
            needs.append(body)
        else:
            pairs = _SUB.findall(body)
            if not pairs or _SUB.sub("", body).strip(" ;"):
                raise DocBlockError(f"{where}: small must be `OLD` => `NEW` pairs separated by ';'; got {body!r}")
            subs = pairs + subs
        i -= 1
        while i >= 0 and not lines[i].strip():
            i -= 1
    return dict(norun=norun, subs=tuple(subs), cwd=cwd, needs=tuple(needs))


def collect(path: str | os.PathLike, display: str | None = None) -> list[Block]:
    """Every fenced block of the markdown file ``path`` (nested fences kept inside their outer block)."""
    path = Path(path)
    shown = Path(display) if display else path
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent, info = m["fence"], m["indent"], m["info"].strip()
        lang = info.split()[0].lower() if info else ""
        start, body, i = i, [], i + 1
        while i < len(lines):
            c = _FENCE.match(lines[i])
            if c and c["fence"][0] == fence[0] and len(c["fence"]) >= len(fence) and not c["info"].strip():
                break
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        else:
            raise DocBlockError(f"{shown}:{start + 1}: the fence is never closed")
        i += 1
        where = f"{shown}:{start + 1}"
        if lang not in RUN_LANGS and lang not in TEXT_LANGS:
            raise DocBlockError(
                f"{where}: unknown code block language {lang!r}; use one of "
                f"{sorted(RUN_LANGS)} (run) or {sorted(TEXT_LANGS)} (not code)"
            )
        blocks.append(
            Block(
                shown, start + 1, RUN_LANGS.get(lang, lang), "\n".join(body) + "\n", **_directives(lines, start, where)
            )
        )
    return blocks


def run_python(block: Block, namespace: dict) -> None:
    code = "\n" * block.line + block.source()  # line numbers in tracebacks are the markdown file's
    try:
        exec(compile(code, str(block.path), "exec"), namespace)
    except Exception as e:
        tb = traceback.format_exc(limit=-6)
        raise DocBlockError(f"{block.where}: python block failed: {type(e).__name__}: {e}\n{tb}") from e


def run_bash(block: Block, cwd: Path, env: dict, timeout: float = 300) -> None:
    try:
        p = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.source()],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise DocBlockError(f"{block.where}: shell block ran past {timeout} s") from e
    if p.returncode != 0:
        out = (p.stdout[-2000:] + "\n" + p.stderr[-4000:]).strip()
        raise DocBlockError(f"{block.where}: shell block exited with {p.returncode}:\n{out}")


def check_syntax(block: Block) -> None:
    """Compile a Python block / ``bash -n`` a shell block (the fast check of a page too slow to run)."""
    if block.lang == "python":
        try:
            compile("\n" * block.line + block.source(), str(block.path), "exec")
        except SyntaxError as e:
            raise DocBlockError(f"{block.where}: python block does not compile: {e}") from e
    elif block.lang == "bash":
        p = subprocess.run(["bash", "-n", "-c", block.source()], capture_output=True, text=True)
        if p.returncode != 0:
            raise DocBlockError(f"{block.where}: shell block does not parse: {p.stderr.strip()}")


def run_page(blocks: list[Block], cwd: Path, env: dict, timeout: float = 300, repo: Path | None = None) -> int:
    """Run a page's blocks in order (Python in one namespace, in ``cwd``; shell blocks marked ``cwd: repo``
    in ``repo``); returns how many ran."""
    namespace: dict = {"__name__": "__docs__"}
    old = Path.cwd()
    os.chdir(cwd)
    try:
        n = 0
        for b in blocks:
            if not b.runs:
                continue
            if b.lang == "python":
                run_python(b, namespace)
            else:
                if b.cwd == "repo" and repo is None:
                    raise DocBlockError(f"{b.where}: cwd: repo, but no repository root was given")
                run_bash(b, repo if b.cwd == "repo" else cwd, env, timeout)
            n += 1
        return n
    finally:
        os.chdir(old)
