"""The floors run one way: a module imports only its own floor and those below, and every module imports
on its own in a fresh interpreter (no import circle holds by import order)."""

import ast
import subprocess
import sys

import pytest

from topics.settings import REPO_ROOT

PACKAGES = ("schemas", "topics", "streams", "consumers", "ops")
# from the ground up; a module's floor is its longest matching prefix
FLOORS = {
    "topics.settings": 0, "topics.metrics": 0, "topics.departments": 0, "schemas": 0,
    "topics": 1,
    "streams.rules": 2,
    "streams": 3, "consumers": 3,
    "ops": 4,
}


def modules() -> list[str]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((REPO_ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).with_suffix("")
            out.append(".".join(rel.parts).removesuffix(".__init__"))
    return out


def floor(module: str) -> int:
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return FLOORS[best]


def imports(module: str) -> set[str]:
    path = REPO_ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = REPO_ROOT / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    known = set(modules())
    return {m for m in found if m in known}


def test_no_module_imports_a_floor_above_its_own():
    upward = [f"{m} (floor {floor(m)}) imports {i} (floor {floor(i)})"
              for m in modules() for i in imports(m) if floor(i) > floor(m)]
    assert not upward, "\n".join(upward)


def test_the_subscriber_sdk_and_the_sinks_need_nothing_of_ops():
    assert not [(m, i) for m in modules() if m.startswith("consumers") for i in imports(m) if i.startswith("ops")]


def test_no_two_modules_import_each_other_in_a_circle():
    graph = {m: imports(m) - {m} for m in modules()}
    state: dict[str, int] = {}
    circles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if n.startswith(m + ".") or m.startswith(n + "."):
                continue  # a package and its own modules
            if state.get(n) == 1:
                circles.append(" -> ".join(path[path.index(n):] + [n]) if n in path else f"{m} -> {n}")
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not circles, "\n".join(circles)


@pytest.mark.parametrize("module", [m for m in modules() if not m.endswith("__main__")])
def test_every_module_imports_on_its_own(module):
    res = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
