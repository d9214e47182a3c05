"""The department registry (R-7.1, R-9.1): who is on the bus, at which level, with which head."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

SEED = Path(__file__).resolve().parent / "departments.yaml"
CODE = re.compile(r"^[A-Z][A-Z0-9]{1,7}-[A-Z0-9]{1,10}$")


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    level: str  # city | county
    kind: str  # authority | bureau | utility
    head: str
    data_officer: str
    county: str | None = None
    base_database: str | None = None


@lru_cache(maxsize=4)
def load(path: Path = SEED) -> dict[str, Department]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    depts = {}
    for d in raw["departments"]:
        dept = Department(**d)
        if not CODE.match(dept.code):
            raise ValueError(f"department code {dept.code!r} in {path.name} is not of the form AREA-UNIT")
        depts[dept.code] = dept
    return depts


@lru_cache(maxsize=4)
def counties(path: Path = SEED) -> dict[str, str]:
    """The counties, districts and zones of the registry (R-9.1): code -> name, in the registry's order."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {c["code"]: c["name"] for c in raw.get("counties") or []}
