"""Provenance digest of a delivery (R-28.1): SHA-256 over canonical JSON of provider, resource, event id,
subject and content, recomputable in any language."""

from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring
from typing import Any


def _reference(publisher: str, resource_code: str, event_id: str, subject_id: str, items: dict[str, Any]) -> str:
    return json.dumps([publisher, resource_code, event_id, subject_id, items],
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_text(publisher: str, resource_code: str, event_id: str, subject_id: str,
                   items: dict[str, Any]) -> str:
    """The canonical JSON; built piece by piece for the usual flat records of text and numbers (the
    same text, faster), by json.dumps for anything else."""
    parts = []
    for s in (publisher, resource_code, event_id, subject_id):
        if type(s) is not str:
            return _reference(publisher, resource_code, event_id, subject_id, items)
        parts.append(encode_basestring(s))
    fields = []
    for k in sorted(items):
        v = items[k]
        t = type(v)
        if type(k) is not str or t not in _SCALARS:
            return _reference(publisher, resource_code, event_id, subject_id, items)
        fields.append(encode_basestring(k) + ":" + (encode_basestring(v) if t is str else json.dumps(v)))
    return "[" + ",".join(parts) + ",{" + ",".join(fields) + "}]"


_SCALARS = frozenset((str, int, float, bool, type(None)))


def provenance_digest(publisher: str, resource_code: str, event_id: str, subject_id: str,
                      items: dict[str, Any]) -> str:
    text = canonical_text(publisher, resource_code, event_id, subject_id, items)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
