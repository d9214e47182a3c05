"""The seed data in ops/seed as records of the bus (for the demo, tests and benchmarks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import yaml

from topics.settings import REPO_ROOT

SEED = REPO_ROOT / "ops" / "seed"


def approved_entry(seed_file: str, **overrides) -> dict:
    """A CatalogEntry as the catalog agent publishes it, from a file of ops/seed/catalog."""
    from ops.events import entry_from_file
    from streams.rules.catalog import normalise_attributes
    from topics.departments import load

    raw = {**yaml.safe_load((SEED / "catalog" / seed_file).read_text(encoding="utf-8")), **overrides}
    dept = load()[raw["provider"]]
    return {"resource_code": raw["resource_code"], "version": 1, "level": dept.level, "county": dept.county,
            "approved_at": datetime.now(UTC), "approved_by": "NJ-SJJ (seed)", "submission_id": uuid.uuid4().hex,
            "entry": normalise_attributes(entry_from_file(raw, raw["provider"]))}
