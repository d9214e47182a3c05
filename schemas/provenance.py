"""Provenance digest of a delivery (R-28.1): SHA-256 over canonical JSON of provider, resource, event id,
subject and content, recomputable in any language."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any


def _reference(publisher: str, resource_code: str, event_id: str, subject_id: str, items: dict[str, Any]) -> str:
    return json.dumps([publisher, resource_code, event_id, subject_id, items],
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_text(publisher: str, resource_code: str, event_id: str, subject_id: str,
                   items: dict[str, Any]) -> str:
    """The canonical JSON; built piece by piece for the usual flat records of text and numbers (the
    same text, faster), by json.dumps for anything else."""
    return _canonical(_prefix(publisher, resource_code, event_id, subject_id),
                      publisher, resource_code, event_id, subject_id, items, {})


def _prefix(publisher: str, resource_code: str, event_id: str, subject_id: str) -> str | None:
    """The canonical text's opening, the same for every scope of one publication (None: not all text)."""
    parts = []
    for s in (publisher, resource_code, event_id, subject_id):
        if type(s) is not str:
            return None
        parts.append(encode_basestring(s))
    return "[" + ",".join(parts) + ",{"


def _canonical(prefix: str | None, publisher: str, resource_code: str, event_id: str, subject_id: str,
               items: dict[str, Any], written: dict[str, tuple[Any, str]]) -> str:
    """`written` keeps each item's text (name -> (value, "name":value)) for the next projection of the same
    publication, whose items are the same objects."""
    if prefix is None:
        return _reference(publisher, resource_code, event_id, subject_id, items)
    fields = []
    for k in sorted(items):
        v = items[k]
        hit = written.get(k)
        if hit is None or hit[0] is not v:
            if type(k) is not str or type(v) not in SCALARS:
                return _reference(publisher, resource_code, event_id, subject_id, items)
            hit = written[k] = (v, encode_basestring(k) + ":" + json_text(v))
        fields.append(hit[1])
    return prefix + ",".join(fields) + "}]"


SCALARS = frozenset((str, int, float, bool, type(None)))
_CONSTANTS = {True: "true", False: "false", None: "null"}


def json_text(v: Any) -> str:
    """json.dumps(v, ensure_ascii=False, sort_keys=True); a str, int, float, bool or None written without the
    encoder's set-up: the same text, a tenth of the time."""
    t = type(v)
    if t is str:
        return encode_basestring(v)
    if t is float and math.isfinite(v):
        return float.__repr__(v)
    if t is int:
        return int.__repr__(v)
    if t is bool or v is None:
        return _CONSTANTS[v]
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def provenance_digest(publisher: str, resource_code: str, event_id: str, subject_id: str,
                      items: dict[str, Any]) -> str:
    return digester(publisher, resource_code, event_id, subject_id)(items)


def digester(publisher: str, resource_code: str, event_id: str, subject_id: str) -> Callable[[dict[str, Any]], str]:
    """provenance_digest of one publication for any of its projections: what they share is worked out once."""
    prefix = _prefix(publisher, resource_code, event_id, subject_id)
    written: dict[str, tuple[Any, str]] = {}

    def digest(items: dict[str, Any]) -> str:
        text = _canonical(prefix, publisher, resource_code, event_id, subject_id, items, written)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    return digest
