"""The one way a rule says no: a reason written for the department officer who asked, the rule ids it
was decided under, and a code for machines; returned where a check finds several, raised where one ends
the operation."""

from __future__ import annotations

from collections.abc import Iterable


class Refusal(Exception):
    """What the measures do not allow. Retrying the same request cannot succeed."""

    retriable = False

    def __init__(self, reason: str, rule_ids: Iterable[str] = (), code: str = "refused"):
        super().__init__(reason)
        self.reason = reason
        self.rule_ids = tuple(rule_ids)
        self.code = code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Refusal) and (self.code, self.reason, self.rule_ids) == (
            other.code, other.reason, other.rule_ids)

    def __hash__(self) -> int:
        return hash((self.code, self.reason, self.rule_ids))

    def __repr__(self) -> str:
        return f"Refusal({self.reason!r}, {self.rule_ids!r}, code={self.code!r})"
