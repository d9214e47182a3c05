"""Schema evolution check: can the newer version of a record type read data the previous one wrote?"""

from __future__ import annotations

import io
from collections import defaultdict

from fastavro import schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from schemas.codec import Codec, SchemaVersion


def backward_problems(old: SchemaVersion, new: SchemaVersion, samples: int = 200) -> list[str]:
    """Problems reading `old`-written data with `new`; empty when backward compatible."""
    problems: set[str] = set()
    for record in generate_many(old.schema, samples):
        buf = io.BytesIO()
        schemaless_writer(buf, old.schema, record)
        buf.seek(0)
        try:
            schemaless_reader(buf, old.schema, new.schema)
        except Exception as exc:
            problems.add(f"{type(exc).__name__}: {exc}")
    return sorted(problems)


def evolution_report(codec: Codec) -> dict[str, list[str]]:
    """For each pair of consecutive versions kept in schemas/, the problems found."""
    by_name: dict[str, list[SchemaVersion]] = defaultdict(list)
    for v in codec.versions:
        by_name[v.name].append(v)
    report = {}
    for versions in by_name.values():
        versions.sort(key=lambda v: v.version)
        for old, new in zip(versions, versions[1:], strict=False):
            report[f"{new.name} v{old.version} -> v{new.version}"] = backward_problems(old, new)
    return report
