"""The deadline engine: when each process of the measures must be answered, and which reminders,
breaches, extensions and reschedules follow. Pure state and rules; the caller brings the clock
and writes out the notices and changed states it returns.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from streams.rules.refusals import Refusal
from streams.rules.workcalendar import Deadline, WorkCalendar

ZONE = ZoneInfo("Asia/Shanghai")
ONE_DAY = timedelta(days=1)
HEAD_RULE = "R-7.1"  # actions reserved for a department's principal head


@dataclass(frozen=True)
class Process:
    """One row of the deadlines table (docs/measures.md; the measures' "deadlines in one table")."""

    case_type: str
    days: int
    max_extension_days: int  # 0 = no extension allowed
    rule_id: str
    description: str


PROCESSES: dict[str, Process] = {
    p.case_type: p
    for p in (
        Process(
            "catalog_update",
            15,
            0,
            "R-14.1",
            "department updates its catalog entries after a change",
        ),
        Process("catalog_review", 10, 0, "R-14.1", "authority reviews a catalog submission"),
        Process("share_request", 10, 0, "R-26.1", "provider answers a conditional share request"),
        Process("verification", 10, 10, "R-19.1", "provider answers a request to verify a datum"),
        Process(
            "open_catalog_objection",
            10,
            10,
            "R-31.1",
            "provider answers an objection to the open catalog",
        ),
        Process("open_request", 15, 15, "R-32.1", "provider answers a conditional open request"),
        Process("objection_mark", 3, 0, "R-41.1", "authority marks a datum as objected"),
        Process("objection_decide", 10, 0, "R-41.1", "authority decides an objection in its scope"),
        Process("objection_forward", 5, 0, "R-41.1", "authority forwards an objection"),
        Process(
            "objection_forwarded_decide", 5, 0, "R-41.1", "department decides a forwarded objection"
        ),
    )
}


def statutory_due(case_type: str, received: date, calendar: WorkCalendar) -> Deadline:
    """When a process of the deadlines table is due, counted in working days from the day after `received`."""
    return calendar.add_working_days(received, PROCESSES[case_type].days)


@dataclass(slots=True)
class DeadlineState:
    deadline_id: str
    case_type: str
    case_id: str
    party: str  # department code that must act
    received_on: date
    due_on: date
    provisional: bool
    remind_on: date  # the working day on which the reminder fires
    reminded: bool = False
    breached: bool = False
    closed: bool = False
    extended_by: int = 0
    extension_approved_by: str | None = None
    version: int = 0  # bumped on every change
    extension_event_id: str | None = None  # the command that extended it, so that a repeat of it is recognised


_STATE_FIELDS = attrgetter(*(f.name for f in fields(DeadlineState)))


def _copy(s: DeadlineState) -> DeadlineState:
    # dataclasses.replace costs ~9 µs a state, which dominated writing out a million of them
    return DeadlineState(*_STATE_FIELDS(s))


@dataclass(frozen=True)
class Notice:
    notice_id: str  # f"{deadline_id}:{kind}:{due_on}" so that a repeat is recognisable downstream
    kind: str  # started | reminder | breach | closed | extended | rescheduled | refused
    deadline_id: str
    case_type: str
    case_id: str
    party: str
    due_on: date
    provisional: bool
    rule_id: str
    at: datetime
    message: str


@lru_cache(maxsize=8192)
def _midnight(d: date) -> int:
    """00:00 Asia/Shanghai of `d` as a Unix timestamp (cached: the same few hundred days recur)."""
    return int(datetime(d.year, d.month, d.day, tzinfo=ZONE).timestamp())


def _timestamp(now: datetime) -> float:
    # a naive datetime could be UTC or Beijing time: eight hours off either way, so refuse it
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now={now!r} has no time zone; pass an aware datetime (e.g. tzinfo=ZONE)")
    return now.timestamp()


class DeadlineEngine:
    """All open deadlines of the bus. Firing is driven by a heap of (fire_at, deadline_id, version)
    with lazy invalidation, so a tick costs in proportion to what is due, not to what is open."""

    def __init__(self, calendar: WorkCalendar, heads: Mapping[str, str], remind_before: int = 2):
        if remind_before < 1:
            raise ValueError("remind_before is at least one working day")
        self.calendar = calendar
        self.heads = heads  # department code -> principal head; read at approval time
        self.remind_before = remind_before
        self.states: dict[str, DeadlineState] = {}
        self._heap: list[tuple[int, str, int]] = []
        self._stale = 0  # heap entries known to be outdated, to decide when to compact
        self._provisional: set[str] = set()  # open deadlines counted on an unpublished year
        self._changed: dict[str, DeadlineState] = {}
        self._open = 0
        # chinese-calendar costs ~30 µs a day looked up, ~0.5 ms a deadline; deadlines share
        # their days, so counts are memoised until the calendar's published years change
        self._counts: dict[tuple[date, int], Deadline] = {}
        self._befores: dict[date, date] = {}
        self._counted_on: tuple[object, ...] = ()

    # ---- operations

    def start(
        self,
        deadline_id: str,
        case_type: str,
        case_id: str,
        party: str,
        received_on: date,
        now: datetime,
    ) -> list[Notice]:
        """Open the deadline of a case received on `received_on`; a repeated start is a no-op."""
        if deadline_id in self.states:
            return []  # a redelivered start event; the first one already counted
        proc = PROCESSES.get(case_type)
        if proc is None:
            raise Refusal(
                f"{case_type!r} is not a process with a deadline; known are {', '.join(PROCESSES)}"
            )
        if party not in self.heads:
            raise Refusal(
                f"{party!r} is not a department registered on the bus, "
                f"so no deadline can be set for it",
                (HEAD_RULE,),
            )
        if isinstance(received_on, datetime):
            raise TypeError("received_on is the day of receipt (a date), not a datetime")
        _timestamp(now)
        # the day of receipt does not count (add_working_days starts on the next day)
        dl = self._add_working_days(received_on, proc.days)
        s = DeadlineState(
            deadline_id,
            case_type,
            case_id,
            party,
            received_on,
            dl.due,
            dl.provisional,
            self._remind_on(received_on, dl.due),
        )
        self.states[deadline_id] = s
        self._open += 1
        if s.provisional:
            self._provisional.add(deadline_id)
        self._changed[deadline_id] = s
        self._arm(s)
        return [self._notice(s, "started", now)]

    def answer(self, deadline_id: str, now: datetime) -> list[Notice]:
        """The party has acted: close the deadline (nothing fires for it any more)."""
        s = self._get(deadline_id)
        _timestamp(now)
        if s.closed:
            return []
        self._touch(s)
        s.closed = True
        self._open -= 1
        self._provisional.discard(deadline_id)
        self._maybe_compact()
        return [self._notice(s, "closed", now)]

    def extend(self, deadline_id: str, days: int, approved_by: str, now: datetime,
               actor: str | None = None, event_id: str | None = None) -> list[Notice]:
        """Move the due date `days` working days on, once, with the party's head's approval, when the party asks
        (`actor`; None when the caller has already established who asks). The command that did so (`event_id`)
        read again changes nothing and is no second request."""
        s = self._get(deadline_id)
        if event_id is not None and s.extension_event_id == event_id:
            return []
        proc = PROCESSES[s.case_type]
        rule = proc.rule_id
        now_ts = _timestamp(now)
        if actor is not None and actor != s.party:
            raise Refusal(
                f"the deadline for case {s.case_id} is {s.party}'s to meet: only {s.party}, with its principal "
                f"head's approval, may ask to extend it, not {actor}",
                (HEAD_RULE, rule),
            )
        # allow one extension with the head's approval; the others none
        if proc.max_extension_days == 0:
            raise Refusal(
                f"the deadline for '{proc.description}' cannot be extended: {rule} sets "
                f"{proc.days} working days with no extension",
                (rule,),
            )
        if s.closed:
            raise Refusal(
                f"case {s.case_id} is already answered; there is no deadline left to extend",
                (rule,),
            )
        if s.breached or now_ts >= _midnight(s.due_on + ONE_DAY):
            raise Refusal(
                f"the deadline for case {s.case_id} ran out on {s.due_on.isoformat()}; "
                f"an extension must be approved before the deadline passes",
                (rule,),
            )
        if s.extended_by:
            raise Refusal(
                f"the deadline for case {s.case_id} was already extended by {s.extended_by} "
                f"working days (approved by {s.extension_approved_by}); "
                f"{rule} allows one extension only",
                (rule,),
            )
        if (
            isinstance(days, bool)
            or not isinstance(days, int)
            or not 1 <= days <= proc.max_extension_days
        ):
            raise Refusal(
                f"an extension for '{proc.description}' is 1 to {proc.max_extension_days} "
                f"working days ({rule}), not {days!r}",
                (rule,),
            )
        head = self.heads.get(s.party)
        if not head:
            raise Refusal(
                f"{s.party} has no registered principal head, so nobody can approve an extension",
                (HEAD_RULE, rule),
            )
        # an extension is the head's act; the data officer or another head cannot approve it
        if (approved_by or "").strip() != head:
            raise Refusal(
                f"an extension must be approved by the principal head of {s.party}, {head}; "
                f"{approved_by!r} is not the registered head",
                (HEAD_RULE, rule),
            )
        dl = self._add_working_days(s.due_on, days)
        self._touch(s)
        s.due_on = dl.due
        s.provisional = s.provisional or dl.provisional
        s.remind_on = self._remind_on(s.received_on, s.due_on)
        s.reminded = False  # the party is reminded again before the new date
        s.extended_by = days
        s.extension_approved_by = head
        s.extension_event_id = event_id
        if s.provisional:
            self._provisional.add(deadline_id)
        self._arm(s)
        self._maybe_compact()
        return [self._notice(s, "extended", now)]

    def tick(self, now: datetime) -> list[Notice]:
        """Every reminder and breach due at `now` and not yet emitted, oldest first."""
        now_ts = _timestamp(now)
        heap, states, out = self._heap, self.states, []
        # a deadline has at most one live entry; after a reminder fires, its breach entry is pushed
        # and, if already due too, popped later in this same loop: notices come out in time order
        while heap and heap[0][0] <= now_ts:
            fire_at, deadline_id, version = heapq.heappop(heap)
            s = states.get(deadline_id)
            if s is None or s.version != version or fire_at != self._next_fire(s):
                if self._stale:
                    self._stale -= 1
                continue
            if not s.reminded:
                s.reminded = True
                kind = "reminder"
            else:
                s.breached = True
                kind = "breach"
            s.version += 1
            self._changed[deadline_id] = s
            out.append(self._notice(s, kind, now))
            self._arm(s)
        return out

    def recompute_provisional(self, now: datetime) -> list[Notice]:
        """Recount the provisional deadlines after the calendar learned a year."""
        now_ts = _timestamp(now)
        out = []
        for deadline_id in sorted(self._provisional):
            s = self.states[deadline_id]
            proc = PROCESSES[s.case_type]
            dl = self._add_working_days(s.received_on, proc.days + s.extended_by)
            remind_on = self._remind_on(s.received_on, dl.due)
            if (dl.due, dl.provisional, remind_on) == (s.due_on, s.provisional, s.remind_on):
                continue
            old_due, old_provisional = s.due_on, s.provisional
            self._touch(s)
            s.due_on, s.provisional, s.remind_on = dl.due, dl.provisional, remind_on
            # a reminder or breach already sent stands unless its new moment is still ahead:
            # then the party hears it again at the right time, under the new due date
            if s.reminded and _midnight(remind_on) > now_ts:
                s.reminded = False
            if s.breached and _midnight(dl.due + ONE_DAY) > now_ts:
                s.breached = False
            if not s.provisional:
                self._provisional.discard(deadline_id)
            self._arm(s)
            if (old_due, old_provisional) != (s.due_on, s.provisional):
                out.append(self._notice(s, "rescheduled", now, old_due=old_due))
        self._maybe_compact()
        return out

    def load(self, state: DeadlineState) -> None:
        """Restore one state written earlier (after a restart). Not reported by `changed()`."""
        if state.case_type not in PROCESSES:
            raise Refusal(
                f"deadline {state.deadline_id!r} is of process {state.case_type!r}, "
                f"which has no deadline any more"
            )
        s = _copy(state)  # the engine mutates its states; never the caller's object
        old = self.states.get(s.deadline_id)
        if old is not None:
            if self._next_fire(old) is not None:
                self._stale += 1
            if not old.closed:
                self._open -= 1
            self._provisional.discard(s.deadline_id)
        self.states[s.deadline_id] = s
        if not s.closed:
            self._open += 1
            if s.provisional:
                self._provisional.add(s.deadline_id)
        self._arm(s)

    def refused(self, deadline_id: str, actor: str, action: str, refusal: Refusal, now: datetime,
                event_id: str) -> list[Notice]:
        """The notice telling the party of a deadline that a command on it was refused, and why (none for a
        deadline the engine does not hold: there is no party to tell)."""
        s = self.states.get(deadline_id)
        if s is None:
            return []
        proc = PROCESSES[s.case_type]
        return [Notice(f"{deadline_id}:refused:{event_id}", "refused", deadline_id, s.case_type, s.case_id, s.party,
                       s.due_on, s.provisional, (refusal.rule_ids or (proc.rule_id,))[0], now,
                       f"Refused: {actor}'s {action} of case {s.case_id} ({proc.description}), due from {s.party} "
                       f"by {s.due_on.isoformat()}: {refusal.reason}.")]

    def changed(self) -> list[DeadlineState]:
        """Copies of the states changed since the last call, for the compacted deadlines topic."""
        out = [_copy(s) for s in self._changed.values()]
        self._changed.clear()
        return out

    def open_count(self) -> int:
        return self._open

    # ---- internals

    def _get(self, deadline_id: str) -> DeadlineState:
        s = self.states.get(deadline_id)
        if s is None:
            raise Refusal(f"there is no deadline {deadline_id!r}")
        return s

    def _remind_on(self, received_on: date, due_on: date) -> date:
        self._check_calendar()
        before = self._befores.get(due_on)
        if before is None:
            before = self._befores[due_on] = self.calendar.working_days_before(
                due_on, self.remind_before
            )
        # short deadlines (3 days) would otherwise be reminded on or before the day of receipt
        return max(before, received_on + ONE_DAY)

    def _add_working_days(self, received_on: date, days: int) -> Deadline:
        self._check_calendar()
        key = (received_on, days)
        dl = self._counts.get(key)
        if dl is None:
            dl = self._counts[key] = self.calendar.add_working_days(received_on, days)
        return dl

    def _check_calendar(self) -> None:
        # holding the PublishedYear objects themselves: a newly published year or a corrected one
        # compares unequal, so nothing counted on the old calendar is reused
        published = tuple(self.calendar.published.values())
        if published != self._counted_on or len(self._counts) > 100_000:
            self._counts.clear()
            self._befores.clear()
            self._counted_on = published

    @staticmethod
    def _next_fire(s: DeadlineState) -> int | None:
        if s.closed:
            return None
        if not s.reminded:
            return _midnight(s.remind_on)
        if not s.breached:
            return _midnight(s.due_on + ONE_DAY)  # the breach: the whole due day is allowed
        return None

    def _arm(self, s: DeadlineState) -> None:
        fire_at = self._next_fire(s)
        if fire_at is not None:
            heapq.heappush(self._heap, (fire_at, s.deadline_id, s.version))

    def _touch(self, s: DeadlineState) -> None:
        """Call before changing `s`: its heap entry, if any, becomes stale."""
        if self._next_fire(s) is not None:
            self._stale += 1
        s.version += 1
        self._changed[s.deadline_id] = s

    def _maybe_compact(self) -> None:
        # stale entries are harmless but cost memory; drop them once they are half the heap,
        # which keeps the rebuild's cost amortised over the changes that made them stale
        if self._stale <= 1024 or 2 * self._stale <= len(self._heap):
            return
        states, nf = self.states, self._next_fire
        self._heap = [
            e
            for e in self._heap
            if (s := states.get(e[1])) is not None and s.version == e[2] and e[0] == nf(s)
        ]
        heapq.heapify(self._heap)
        self._stale = 0

    def _notice(
        self, s: DeadlineState, kind: str, now: datetime, old_due: date | None = None
    ) -> Notice:
        proc = PROCESSES[s.case_type]
        return Notice(
            f"{s.deadline_id}:{kind}:{s.due_on.isoformat()}",
            kind,
            s.deadline_id,
            s.case_type,
            s.case_id,
            s.party,
            s.due_on,
            s.provisional,
            proc.rule_id,
            now,
            _message(s, proc, kind, now, old_due),
        )


def _message(
    s: DeadlineState, proc: Process, kind: str, now: datetime, old_due: date | None
) -> str:
    due = s.due_on.isoformat()
    if s.provisional:
        due += (
            " (provisional: counted on a year whose official working-day calendar"
            " is not yet published)"
        )
    case = f"case {s.case_id} ({proc.description})"
    if kind == "started":
        return (
            f"Case {s.case_id} ({proc.description}): {s.party} must act by {due}, "
            f"{proc.days} working days after receipt on {s.received_on.isoformat()} "
            f"({proc.rule_id})."
        )
    if kind == "reminder":
        return f"Reminder: {case} is due from {s.party} by {due} ({proc.rule_id})."
    if kind == "breach":
        return (
            f"Breach: {case} was due from {s.party} by {s.due_on.isoformat()} "
            f"and has not been answered ({proc.rule_id})."
        )
    if kind == "closed":
        answered = now.astimezone(ZONE).date()
        timing = "after" if answered > s.due_on else "within"
        return (
            f"Closed: {case} was answered by {s.party} on {answered.isoformat()}, {timing} "
            f"the deadline of {s.due_on.isoformat()} ({proc.rule_id})."
        )
    if kind == "extended":
        return (
            f"Extended: {case} is now due from {s.party} by {due}, {s.extended_by} more "
            f"working days approved by its principal head {s.extension_approved_by} "
            f"({HEAD_RULE}, {proc.rule_id})."
        )
    if kind == "rescheduled":
        if old_due == s.due_on:
            return (
                f"Rescheduled: {case} stays due from {s.party} by {due}, now final under the "
                f"published calendar ({proc.rule_id})."
            )
        return (
            f"Rescheduled: {case} is now due from {s.party} by {due} instead of "
            f"{old_due.isoformat() if old_due else '?'}, under the published calendar "
            f"({proc.rule_id})."
        )
    raise ValueError(f"unknown notice kind {kind!r}")


def command_record(now: datetime, action: str, deadline_id: str, actor: str, **fields: Any) -> dict[str, Any]:
    """A govbus.deadlines.DeadlineCommand; its event id is derived, so a re-sent command is recognisable."""
    return {"event_id": f"{deadline_id}:{action}", "occurred_at": now, "action": action, "deadline_id": deadline_id,
            "case_type": None, "case_id": None, "party": None, "received_on": None, "extension_days": None,
            "approved_by": None, "actor": actor, **fields}
