"""Count the string literals naming a registered method outside ``latentflow/samplers/``.

    python tools/method_literals.py            # every literal, by file; exit 1 past MAX_LITERALS

A method's knowledge lives in its kernel: code elsewhere reads the declarations (``needs``, ``cost``,
``search_space``, ``calibration``...) instead of naming methods. A *literal* is a string constant in the
AST of a module under ``latentflow/`` (``samplers/`` excluded) equal to a registered method name
(``latentflow.methods()``, ``"none"`` included); docstrings (the first statement of a module, class or
function) do not count, nor do f-strings' parts. Allowed: the default method, benchmark suites declared as
data; none in ``tune`` or ``fit`` (``app/tune/*.py``, ``app/fit.py``).

``"none"`` is also an ordinary value of other options (``norm="none"``, ``time_weight="none"``, "none" in a
message): a ``"none"`` literal counts only where it can mean the method, that is beside another method
name in one tuple, list, set or dict, or compared with, assigned to or passed as something whose name
says ``method``. The others are listed apart (``--all``), so nothing is hidden.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "latentflow"
MAX_LITERALS = 15
#: method names that are also ordinary words: counted only in a method's context (module docstring)
AMBIGUOUS = {"none"}
#: modules (paths under latentflow/, as globs) where no method literal may stand
NONE_IN = ("app/tune/*.py", "app/fit.py")


def method_names() -> set[str]:
    sys.path.insert(0, str(ROOT.parent))
    try:
        import latentflow
    finally:
        sys.path.pop(0)
    return set(latentflow.methods())


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _fstring_parts(tree: ast.AST) -> set[int]:
    return {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}


def _says_method(node: ast.AST | None) -> bool:
    return node is not None and "method" in ast.unparse(node).lower()


def _in_method_context(node: ast.Constant, parents: dict[int, ast.AST], names: set[str]) -> bool:
    """Whether an ambiguous literal stands where it can mean the method (module docstring)."""
    parent = parents.get(id(node))
    if isinstance(parent, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
        items = [*parent.keys, *parent.values] if isinstance(parent, ast.Dict) else parent.elts
        others = {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
        if (others - AMBIGUOUS) & names:
            return True
        parent = parents.get(id(parent))  # a collection compared with or assigned to a method name
    if isinstance(parent, ast.Compare):
        return any(_says_method(n) for n in [parent.left, *parent.comparators])
    if isinstance(parent, (ast.Assign, ast.AnnAssign)):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        return any(_says_method(t) for t in targets)
    if isinstance(parent, ast.keyword):
        return "method" in (parent.arg or "")
    if isinstance(parent, ast.arguments):  # a default: the argument it belongs to
        pairs = list(zip(reversed(parent.args), reversed(parent.defaults)))
        pairs += [(a, d) for a, d in zip(parent.kwonlyargs, parent.kw_defaults) if d is not None]
        return any(d is node and "method" in a.arg for a, d in pairs)
    return False


def literals(
    names: set[str] | None = None, root: Path = ROOT, *, ambiguous: bool = False
) -> list[tuple[str, int, str]]:
    """``(path under latentflow/, line, name)`` of every method literal outside ``samplers/``; with
    ``ambiguous``, instead the ``AMBIGUOUS`` literals that stand outside a method's context."""
    names = method_names() if names is None else names
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("samplers/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree) | _fstring_parts(tree)
        parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names):
                continue
            if id(node) in skip:
                continue
            counted = node.value not in AMBIGUOUS or _in_method_context(node, parents, names)
            if counted != ambiguous:
                found.append((rel, node.lineno, node.value))
    return sorted(found)


def forbidden(found: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """The literals standing where none may (``NONE_IN``)."""
    return [f for f in found if any(Path(f[0]).match(g) for g in NONE_IN)]


def main() -> int:
    if "--all" in sys.argv[1:]:
        for rel, line, name in literals(ambiguous=True):
            print(f"latentflow/{rel}:{line}: {name!r} (not counted: an ordinary value, not the method)")
    found = literals()
    for rel, line, name in found:
        print(f"latentflow/{rel}:{line}: {name!r}")
    bad = forbidden(found)
    print(f"{len(found)} method literals outside samplers/ (at most {MAX_LITERALS}); {len(bad)} in tune or fit (none)")
    return 1 if len(found) > MAX_LITERALS or bad else 0


if __name__ == "__main__":
    sys.exit(main())
