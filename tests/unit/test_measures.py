"""docs/measures.md names every rule the code and the tests name, and what it names exists."""

import ast
import importlib
import re
from pathlib import Path

from topics.settings import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "measures.md").read_text(encoding="utf-8")
RULE = re.compile(r"\bR-\d+\.\d+\b")
SOURCES = ("streams", "topics", "schemas", "consumers", "ops", "tests")


def documented() -> set[str]:
    return set(re.findall(r"^### (R-\d+\.\d+) ", DOC, flags=re.M))


def named_in_the_tree() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in SOURCES:
        for path in (REPO_ROOT / top).rglob("*"):
            if path.suffix in (".py", ".yml", ".yaml", ".avsc", ".sql") and ".venv" not in path.parts:
                for rule in RULE.findall(path.read_text(encoding="utf-8", errors="replace")):
                    found.setdefault(rule, path)
    return found


def test_every_rule_named_in_the_code_or_the_tests_is_in_the_document():
    missing = {r: str(p.relative_to(REPO_ROOT)) for r, p in named_in_the_tree().items() if r not in documented()}
    assert not missing, f"rule ids without a section in docs/measures.md: {missing}"


def test_every_function_the_document_names_exists():
    for dotted in re.findall(r"`((?:streams|topics|schemas|consumers|ops)\.[\w.]+)`", DOC):
        parts = dotted.split(".")
        for split in range(len(parts) - 1, 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:split]))
            except ModuleNotFoundError:
                continue
            for attr in parts[split:]:
                assert hasattr(obj, attr), f"docs/measures.md names {dotted}, which does not exist"
                obj = getattr(obj, attr)
            break
        else:
            raise AssertionError(f"docs/measures.md names {dotted}, whose module does not exist")


def test_every_test_the_document_names_exists_and_carries_the_rule():
    section = None
    for line in DOC.splitlines():
        if line.startswith("### R-"):
            section = line.split()[1]
        for file, name in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", line):
            tree = ast.parse((REPO_ROOT / file).read_text(encoding="utf-8"))
            funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            assert name in funcs, f"docs/measures.md names {file}::{name}, which does not exist"
            marked = ast.unparse(funcs[name]) + "".join(
                ast.unparse(n) for n in tree.body if isinstance(n, ast.Assign) and "pytestmark" in ast.unparse(n))
            assert f"'{section}'" in marked or f'"{section}"' in marked, f"{file}::{name} does not carry {section}"
