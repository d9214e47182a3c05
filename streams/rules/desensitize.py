"""Desensitization (脱敏, R-29.1) as pure functions: what each data item of an open resource becomes before it reaches
an open feed, as its catalog entry declares (`open_treatment` of the data item, catalog entry v2).

A personal item is never passed on as it stands: an item without a declaration that is personal is removed (the
review refuses such an entry in the first place), a value a mask cannot read is masked whole, and an item the entry
does not list is dropped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

MASK = "*"
TREATMENTS: dict[str, tuple[str, ...]] = {
    # declaration: the item types it applies to
    "mask:identity": ("identifier", "string"),  # resident identity number, unified social credit code
    "mask:name": ("string",),  # a person's name: the surname stays
    "mask:phone": ("string", "identifier", "integer"),
    "mask:address": ("string",),  # down to the district or county, the rest masked
    "generalize:year": ("date", "datetime", "string"),  # a birth date to its year
    "generalize:district": ("string",),  # an address to its district or county
    "remove": ("string", "integer", "decimal", "date", "datetime", "boolean", "identifier"),
    "none": ("string", "integer", "decimal", "date", "datetime", "boolean", "identifier"),  # not personal only
}
_DISTRICT = re.compile(r"^(.*?(?:自治县|自治州|区|县|旗))")
_MOBILE = re.compile(r"^1\d{10}$")
_YEAR = re.compile(r"^(\d{4})-\d{2}-\d{2}")


def _whole(value: Any) -> str:
    return MASK * max(len(str(value)), 1)


def mask_identity(value: Any) -> str:
    """Only the first and the last character of an identity number or credit code stay."""
    s = str(value)
    return _whole(s) if len(s) < 8 else s[0] + MASK * (len(s) - 2) + s[-1]


def mask_name(value: Any) -> str:
    """The surname (the first character) stays: 张三丰 -> 张**."""
    s = str(value).strip()
    return _whole(s) if len(s) < 2 else s[0] + MASK * (len(s) - 1)


def mask_phone(value: Any) -> str:
    """A mobile number keeps its first three and last four digits; anything else is masked whole."""
    s = str(value).strip()
    return s[:3] + MASK * 4 + s[-4:] if _MOBILE.match(s) else _whole(s)


def district_of(value: Any) -> str | None:
    """The address down to its first district or county (区, 县, 旗), or None when it names none."""
    m = _DISTRICT.match(str(value).strip())
    return m.group(1) if m and len(m.group(1)) < len(str(value).strip()) else None


def mask_address(value: Any) -> str:
    district = district_of(value)
    return _whole(value) if district is None else district + MASK * 4


def generalize_district(value: Any) -> str:
    district = district_of(value)
    return MASK if district is None else district


def generalize_year(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return f"{value.year:04d}"
    m = _YEAR.match(str(value).strip())
    return m.group(1) if m else MASK


APPLY = {"mask:identity": mask_identity, "mask:name": mask_name, "mask:phone": mask_phone,
         "mask:address": mask_address, "generalize:year": generalize_year,
         "generalize:district": generalize_district}


def treatment_problem(item: Mapping[str, Any], opened: bool) -> str | None:
    """Why a data item's declaration cannot stand (None when it can); `opened`: the resource is open."""
    treatment = item.get("open_treatment")
    if treatment is None:
        if opened and item.get("personal"):
            return (f"data item {item['name']} is personal and the resource is open: declare how the bus desensitizes "
                    f"it (open_treatment: {', '.join(t for t in TREATMENTS if t != 'none')})")
        return None
    if treatment not in TREATMENTS:
        return f"data item {item['name']}: {treatment!r} is not a desensitization; use one of {', '.join(TREATMENTS)}"
    if treatment == "none" and item.get("personal"):
        return f"data item {item['name']} is personal: it cannot be opened as it stands (none)"
    if item.get("type") not in TREATMENTS[treatment]:
        return (f"data item {item['name']}: {treatment} does not apply to a {item.get('type')}; it applies to "
                f"{', '.join(TREATMENTS[treatment])}")
    return None


def desensitize(entry: Mapping[str, Any], items: Mapping[str, Any]) -> dict[str, Any]:
    """The items as they may go on an open feed, item by item as the entry declares (R-29.1)."""
    declared = {i["name"]: i for i in entry["entry"]["data_items"]}
    out: dict[str, Any] = {}
    for name, value in items.items():
        item = declared.get(name)
        if item is None or item.get("subject_id"):
            continue  # not catalogued, or the subject's identifier: never opened
        treatment = item.get("open_treatment")
        if treatment is None:
            treatment = "remove" if item.get("personal") else "none"
        if treatment == "none" and item.get("personal"):
            treatment = "remove"
        if treatment == "remove":
            continue
        if treatment == "none" or value is None:
            out[name] = value
        else:
            out[name] = APPLY[treatment](value)
    return out
