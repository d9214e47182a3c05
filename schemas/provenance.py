"""Provenance digest of a delivery (R-28.1): SHA-256 over provider, resource, event id and content.

The same function runs where a delivery is made and where it is received, so a receiver
can verify that what arrived is what the provider published.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def provenance_digest(publisher: str, resource_code: str, event_id: str, subject_id: str,
                      items: dict[str, Any]) -> str:
    canonical = json.dumps(
        [publisher, resource_code, event_id, subject_id, items],
        ensure_ascii=False, sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
