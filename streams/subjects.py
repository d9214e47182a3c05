"""The duplicate-collection memory of one worker, packed: per subject, which source published each item and the
digest of its value, in some 40 bytes, so that a city's 3.5 million subjects fit in well under a gigabyte."""

from __future__ import annotations

import struct

import orjson

PACKED = 1  # first byte of a packed value; a value kept as the topic's JSON starts with "{"
MARK = bytes((PACKED,))
HEAD = struct.Struct(">HH")  # item definition, (publisher, resource)
ITEM = struct.Struct(">HH8s")  # and the digest of the value
MAX_CODES = 0xFFFF
HEX = frozenset("0123456789abcdef")


class SubjectMemory:
    """subject id (the record key) -> {item definition: [publisher, resource, digest]}, as the rules of
    streams.rules.exchange read and write it; stored packed against code books of this worker's own."""

    def __init__(self) -> None:
        self.subjects: dict[bytes, bytes] = {}
        self._items: list[str] = []
        self._item_codes: dict[str, int] = {}
        self._sources: list[tuple[str, str]] = []
        self._source_codes: dict[tuple[str, str], int] = {}
        self._heads: dict[tuple[str, str, str], bytes] = {}  # item, publisher, resource -> their packed codes

    def __len__(self) -> int:
        return len(self.subjects)

    def _code(self, value, codes: dict, values: list) -> int | None:
        code = codes.get(value)
        if code is None:
            if len(values) >= MAX_CODES:
                return None
            code = codes[value] = len(values)
            values.append(value)
        return code

    def _head(self, item: str, publisher: str, resource: str) -> bytes | None:
        i = self._code(item, self._item_codes, self._items)
        s = self._code((publisher, resource), self._source_codes, self._sources)
        if i is None or s is None:
            return None
        head = self._heads[(item, publisher, resource)] = HEAD.pack(i, s)
        return head

    def pack(self, known: dict[str, list]) -> bytes:
        """The packed form; the JSON itself when something does not fit one (a digest not of 16 lower-case hex
        digits, more item definitions or sources than the code books hold)."""
        parts = [MARK]
        heads = self._heads
        for item, (publisher, resource, digest) in known.items():
            head = heads.get((item, publisher, resource)) or self._head(item, publisher, resource)
            if head is None or len(digest) != 16 or not HEX.issuperset(digest):
                return encode_json(known)
            parts.append(head)
            parts.append(bytes.fromhex(digest))
        return b"".join(parts)

    def unpack(self, value: bytes) -> dict[str, list]:
        if value[:1] != MARK:
            return orjson.loads(value)
        out = {}
        for i, s, raw in ITEM.iter_unpack(memoryview(value)[1:]):
            publisher, resource = self._sources[s]
            out[self._items[i]] = [publisher, resource, raw.hex()]
        return out

    def get(self, subject: bytes) -> dict[str, list]:
        value = self.subjects.get(subject)
        return self.unpack(value) if value else {}

    def put(self, subject: bytes, known: dict[str, list]) -> None:
        self.subjects[subject] = self.pack(known)

    def load(self, subject: bytes, value: bytes | None) -> None:
        """A record of the compacted topic: the subject's memory, or its removal."""
        if value is None:
            self.subjects.pop(subject, None)
        else:
            self.subjects[subject] = self.pack(orjson.loads(value))


def encode_json(known: dict[str, list]) -> bytes:
    """The compacted topic's form of a subject's memory: compact JSON in UTF-8."""
    return orjson.dumps(known)
