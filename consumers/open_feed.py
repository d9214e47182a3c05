"""The open-data SDK: what a registered party receives, as a portal or a researcher's program reads it. The
unconditionally open data every authenticated party may read (R-32.3) and the party's own conditionally open feed
(R-32.1), desensitized by the bus (R-29.1), each record naming its source department and retrieval date (R-32.2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consumers.feed import Feed
from schemas.provenance import provenance_digest
from topics import registry
from topics.acls import party_principal

OPEN = "govbus.open.OpenDelivery"


@dataclass(frozen=True)
class OpenRecord:
    event_id: str
    resource_code: str
    resource_name: str
    source_department: str
    source_department_name: str
    retrieved_on: str  # ISO date
    published_at: datetime
    delivered_at: datetime
    open_attribute: str  # unconditional | conditional
    items: dict[str, Any]  # desensitized
    party: str | None  # conditional: the approved party
    grant_id: str | None  # conditional: the approval it came under
    digest: str
    partition: int
    offset: int

    def verify(self) -> bool:
        """True when the content is what the bus released from its source (R-28.1)."""
        return self.digest == provenance_digest(self.source_department, self.resource_code, self.event_id, "",
                                                self.items)


class OpenFeed(Feed):
    """`async with OpenFeed("51102419690817975X") as feed: async for rec in feed: ...`, with the party's
    credentials in GOVBUS_KAFKA_CONFIG (`govbus party credentials`)."""

    schema = OPEN
    credentials = "govbus party credentials {}"

    @staticmethod
    def _topics(party: str, prefix: str) -> tuple[str, ...]:
        return registry.name_of(registry.OPEN_FEED, prefix), registry.open_party_name(party, prefix)

    @staticmethod
    def _group(party: str, prefix: str) -> str:
        return f"{party_principal(party, prefix)}.open"

    @staticmethod
    def _make(d: dict, r) -> OpenRecord:
        return OpenRecord(**d, partition=r.partition, offset=r.offset)
