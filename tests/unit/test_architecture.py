"""The shape of the house (docs/architecture.md): layers that import only downwards, no
import circles, and modules and functions small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"
MAX_MODULE = 600
MAX_FUNCTION = 80

#: each package and the layer it sits on: a module imports only its own layer or lower ones
LAYERS = {
    "lab": 0,
    "lab.errors": 0,
    "lab.capture": 1,
    "lab.model": 1,
    "lab.clients": 1,
    "lab.clienttls": 1,
    "lab.attackclients": 1,
    "lab.middlebox": 1,
    "lab.httpclient": 1,
    "lab.runtime": 2,
    "lab.report": 2,
    "lab.services": 3,
    "lab.deploy": 4,
    "lab.scenario": 5,
    "lab.interactive": 5,
    "lab.grade": 5,
    "lab.cli": 6,
    "lab.cli_class": 6,
    "lab.cli_common": 6,
    "lab.cli_live": 6,
    "lab.pytest_plugin": 6,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(LAB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    best = max(
        (k for k in LAYERS if k != "lab" and (module == k or module.startswith(k + "."))),
        key=len,
        default="lab" if module == "lab" else None,
    )
    assert best is not None, f"{module} has no layer in LAYERS"
    return LAYERS[best]


def imports(path: Path) -> set[str]:
    """Every lab module this file imports, wherever the import statement stands."""
    mods = {module_name(p) for p in LAB.rglob("*.py")}
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in mods}
    return out - {module_name(path)}


GRAPH = {module_name(p): imports(p) for p in LAB.rglob("*.py")}


def test_imports_run_downwards() -> None:
    upward = [f"{a} ({layer(a)}) -> {b} ({layer(b)})" for a, deps in GRAPH.items() for b in deps if layer(b) > layer(a)]
    assert upward == []


def test_no_import_circles() -> None:
    # a package's __init__ importing its own modules is how packages work; leave those out
    def edges(a: str) -> set[str]:
        return {b for b in GRAPH[a] if not (a + "." in b + "." and b.startswith(a + "."))}

    seen: dict[str, int] = {}
    circles = []

    def visit(a: str, path: list[str]) -> None:
        seen[a] = 1
        for b in sorted(edges(a)):
            if seen.get(b) == 1:
                circles.append(" -> ".join(path[path.index(b) :] + [b]) if b in path else f"{a} -> {b}")
            elif b not in seen:
                visit(b, [*path, b])
        seen[a] = 2

    for m in sorted(GRAPH):
        if m not in seen:
            visit(m, [m])
    assert circles == []


@pytest.mark.parametrize(
    "path",
    sorted([*LAB.rglob("*.py"), *(LAB.parent / "bench").glob("*.py")]),
    ids=lambda p: str(p.relative_to(LAB.parent)),
)
def test_small_modules_and_functions(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE, f"{path.name}: split it"
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(ast.parse(text))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION
    ]
    assert long == []


def test_the_sections_the_code_cites_exist() -> None:
    import re

    doc = (LAB.parent / "docs" / "architecture.md").read_text()
    headings = {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", doc, re.M)}
    cited = set()
    for p in LAB.rglob("*.py"):
        text = " ".join(p.read_text().split())
        cited |= {(p.name, m.group(1)) for m in re.finditer(r'docs/architecture\.md,? \(?"([^"]+)"', text)}
    assert cited, "the code cites its architecture page"
    missing = sorted(
        f"{name}: {section}" for name, section in cited if not any(h.startswith(section) for h in headings)
    )
    assert missing == []
