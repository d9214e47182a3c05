"""The yearly evaluation of departments and counties (R-46.1) as pure functions over plain rows from the ledger
and the catalog: what each department owed in the year, what it did, its score, its rank, and the county roll-up."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from streams.rules.workcalendar import WorkCalendar
from topics.departments import Department

ZONE = ZoneInfo("Asia/Shanghai")

# the measures of a department, each a ratio of two counts; the score is their weighted mean
WEIGHTS = {"completeness": 1.0, "timeliness": 1.0, "fulfilment": 1.0, "answers": 1.0, "quality": 1.0,
           "share_degree": 1.0}
ANSWERS = ("approved", "refused", "overturned")  # a share request is answered, also by a ruling
REVIEWED = ("approved", "rejected")  # a catalog submission is reviewed
NOT_THE_PUBLISHERS = ("internal_error", "ledger_refused", "suspected_tampering")  # the bus's fault, or another's
ONE_SOURCE = "one_source_violation"
UNCATALOGUED = "unknown_resource"
SECURITY_KINDS = ("suspected_tampering", "republication")

# what the evaluation does not count yet (the cases are in the ledger's case_events): said in the report, not made
# up as a column
NOT_EVALUATED = (
    "verification (校核) cases and their outcomes (R-19.1, R-20.1)",
    "objections (异议) to data and the corrections they lead to (R-41.1)",
    "opening (开放): open requests and objections to the open catalog (R-31.1, R-32.1)",
)


@dataclass
class Counts:
    """What one department (or a roll-up of several) owed and did in the year; every measure is a ratio of two."""

    catalogued: int = 0  # resources in the approved catalog by the end of the year
    uncatalogued: int = 0  # resources it published though they were never catalogued
    updates_due: int = 0  # catalog updates owed after a change, due in the year
    updates_on_time: int = 0
    updates_late: int = 0  # made, but after the 15 working days
    updates_overdue: int = 0  # not made at all
    reviews_due: int = 0  # reviews owed by an authority, due in the year
    reviews_on_time: int = 0
    reviews_late: int = 0
    reviews_overdue: int = 0
    periods_expected: int = 0  # update-cycle periods of its responsibility list
    periods_met: int = 0  # ... in which it published
    requests_due: int = 0  # share requests it had to answer, due in the year
    requests_on_time: int = 0
    requests_late: int = 0
    requests_overdue: int = 0
    accepted: int = 0  # publications accepted
    rejected: int = 0  # publications refused, for reasons of its own
    one_source_violations: int = 0  # of them, refused as another's resource
    duplicate_subjects: int = 0  # subjects it collected again from another's source
    security_incidents: int = 0  # republication of received data, publishing in another's name
    shareable: int = 0  # catalogued resources whose share attribute is not none
    shared: int = 0  # catalogued resources delivered to another department in the year

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def late_updates(self) -> int:
        return self.updates_late + self.updates_overdue

    def measures(self) -> dict[str, float | None]:
        """Each measure as a ratio, None where the department owed nothing of the kind."""
        return {
            "completeness": _ratio(self.catalogued, self.catalogued + self.uncatalogued),
            "timeliness": _ratio(self.updates_on_time + self.reviews_on_time, self.updates_due + self.reviews_due),
            "fulfilment": _ratio(self.periods_met, self.periods_expected),
            "answers": _ratio(self.requests_on_time, self.requests_due),
            "quality": _ratio(self.accepted, self.accepted + self.rejected),
            "share_degree": _ratio(self.shared, self.catalogued),
        }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def score(measures: Mapping[str, float | None]) -> float | None:
    """R-46.1: 0-100, the weighted mean of the measures that apply; None when none does."""
    have = {k: v for k, v in measures.items() if v is not None}
    if not have:
        return None
    return round(100 * sum(WEIGHTS[k] * v for k, v in have.items()) / sum(WEIGHTS[k] for k in have), 1)


def rank(scores: Mapping[str, float | None]) -> dict[str, int]:
    """R-46.1: 1 for the best score, equal scores share a rank (1, 2, 2, 4); those without a score are unranked."""
    order = sorted((s, code) for code, s in scores.items() if s is not None)
    order.sort(key=lambda p: (-p[0], p[1]))
    ranks: dict[str, int] = {}
    for i, (s, code) in enumerate(order):
        ranks[code] = ranks[order[i - 1][1]] if i and order[i - 1][0] == s else i + 1
    return ranks


# --------------------------------------------------------------------------- the year and its days


@dataclass(frozen=True)
class Window:
    """The year evaluated: records from `start` up to `end` (now, for the current year), and `through`, the last
    day whose deadlines and periods count as over."""

    year: int
    start: datetime
    end: datetime
    through: date


def window(year: int, now: datetime) -> Window:
    """The window of `year` as of `now` (aware); a year not yet begun has an empty one."""
    start = datetime(year, 1, 1, tzinfo=ZONE)
    end = min(datetime(year + 1, 1, 1, tzinfo=ZONE), max(start, now))
    through = min(date(year, 12, 31), now.astimezone(ZONE).date() - timedelta(days=1))
    return Window(year, start, end, through)


def day_of(t: datetime) -> date:
    """The Beijing-time day of an instant, as the deadlines count it."""
    return t.astimezone(ZONE).date()


def periods(cycle: str, first: date, last: date, calendar: WorkCalendar) -> list[tuple[str, date]]:
    """R-13.1: the periods of an update cycle from `first` to `last`, each as (key, its last day); daily and
    realtime resources are published on working days; on_change has no periods."""
    out: list[tuple[str, date]] = []
    d = first
    while d <= last:
        key, end = period_of(cycle, d)
        if key is None:
            return []
        if cycle not in ("daily", "realtime") or _workday(calendar, d):
            out.append((key, end))
        d = end + timedelta(days=1)
    return out


def period_of(cycle: str, d: date) -> tuple[str | None, date]:
    """The period of `cycle` a day falls in, and that period's last day."""
    if cycle in ("daily", "realtime"):
        return d.isoformat(), d
    if cycle == "weekly":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}", d + timedelta(days=6 - d.weekday())
    if cycle == "monthly":
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        return f"{d.year}-{d.month:02d}", nxt - timedelta(days=1)
    if cycle == "quarterly":
        q = (d.month - 1) // 3
        nxt = date(d.year + (q == 3), (q + 1) % 4 * 3 + 1, 1)
        return f"{d.year}-Q{q + 1}", nxt - timedelta(days=1)
    if cycle == "yearly":
        return str(d.year), date(d.year, 12, 31)
    return None, d


def _workday(calendar: WorkCalendar, d: date) -> bool:
    known = calendar.is_workday(d)
    return d.weekday() < 5 if known is None else known


# --------------------------------------------------------------------------- the inputs, as the ledger holds them


@dataclass
class Inputs:
    """Plain rows from the ledger and the catalog (see consumers.queries.evaluation_inputs)."""

    entries: list[dict] = field(default_factory=list)  # catalog_entries + first_approved
    catalog_decisions: list[dict] = field(default_factory=list)  # subject_kind entry | change
    share_decisions: list[dict] = field(default_factory=list)
    publications: list[dict] = field(default_factory=list)  # publisher, resource_code, day, n (accepted)
    shared: list[dict] = field(default_factory=list)  # publisher, resource_code, subscribers (feed deliveries)
    rejects: list[dict] = field(default_factory=list)  # publisher, code, resource_code, system_code, n
    alerts: list[dict] = field(default_factory=list)  # kind, department, system_code, resource_code, subjects


@dataclass
class Case:
    """One statutory deadline of the year and what became of it."""

    party: str
    due: date
    answered: date | None
    resource: str = ""

    def outcome(self, through: date) -> str | None:
        """on_time, late, overdue, or None while still open."""
        if self.answered is not None:
            return "on_time" if self.answered <= self.due else "late"
        return "overdue" if self.due <= through else None


def _due(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def catalog_update_cases(decisions: Iterable[Mapping[str, Any]], approved_before: Mapping[str, datetime]
                         ) -> list[Case]:
    """R-14.1: each change of law, function or system owes its department a catalog update within 15 working days
    (due_on of the change's decision); the first update it submits after the change answers it, as the catalog
    agent closes the deadline. An update submitted without a recorded change is a case of its own, late or not
    as the catalog agent judged it."""
    rows = sorted(decisions, key=lambda d: d["occurred_at"])
    changes = [d for d in rows if d["subject_kind"] == "change" and d["status"] == "accepted"]
    updates = [d for d in rows if d["subject_kind"] == "entry" and d["status"] == "pending_review"
               and (d["late"] or (d["resource_code"] in approved_before
                                  and approved_before[d["resource_code"]] < d["occurred_at"]))]
    cases, used = [], set()
    for c in changes:
        due = _due(c["due_on"])
        if due is None:
            continue
        answer = next((u for u in updates if u["department"] == c["department"]
                       and u["occurred_at"] >= c["occurred_at"]), None)
        if answer is not None:
            used.add(answer["event_id"])
        cases.append(Case(c["department"], due, day_of(answer["occurred_at"]) if answer else None))
    for u in updates:
        if u["event_id"] not in used:
            received = day_of(u["occurred_at"])
            # judged late on receipt by the agent: the due day passed before it, else it was met
            cases.append(Case(u["department"], received - timedelta(days=1) if u["late"] else received, received))
    return cases


def review_cases(decisions: Iterable[Mapping[str, Any]], departments: Mapping[str, Department]) -> list[Case]:
    """R-14.1: the authority of the submitter's level reviews each submission within 10 working days (due_on of
    its pending_review decision); its approval or rejection answers it."""
    from streams.rules.catalog import reviewer_for

    reviewed: dict[str, date] = {}
    for d in sorted(decisions, key=lambda d: d["occurred_at"]):
        if d["subject_kind"] == "entry" and d["status"] in REVIEWED:
            reviewed.setdefault(d["subject_id"], day_of(d["occurred_at"]))
    cases = []
    for d in decisions:
        due = _due(d["due_on"])
        if d["subject_kind"] != "entry" or d["status"] != "pending_review" or due is None:
            continue
        dept = departments.get(d["department"])
        if dept is None:
            continue
        cases.append(Case(reviewer_for(dept, departments), due, reviewed.get(d["subject_id"])))
    return cases


def share_request_cases(decisions: Iterable[Mapping[str, Any]], providers: Mapping[str, str]) -> list[Case]:
    """R-26.1: the provider answers a conditional share request within 10 working days (due_on of its pending
    decision); an approval, a refusal or the authority's ruling answers it."""
    answered: dict[str, date] = {}
    for d in sorted(decisions, key=lambda d: d["occurred_at"]):
        if d["status"] in ANSWERS:
            answered.setdefault(d["request_id"], day_of(d["occurred_at"]))
    cases = []
    for d in decisions:
        due = _due(d["due_on"])
        provider = providers.get(d["resource_code"] or "")
        if d["status"] == "pending" and due is not None and provider is not None:
            cases.append(Case(provider, due, answered.get(d["request_id"]), d["resource_code"]))
    return cases


# --------------------------------------------------------------------------- the evaluation


@dataclass
class Listed:
    """R-45.1: an information system that collected duplicate data or published what is another's source, or
    whose resources' share requests went unanswered in time."""

    department: str
    system_code: str
    duplicate_subjects: int = 0
    one_source_violations: int = 0
    requests_not_answered_in_time: int = 0
    resources: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One department, county or the city: its counts, measures, score and rank."""

    code: str
    name: str
    kind: str  # department | county | city
    county: str | None
    counts: Counts
    measures: dict[str, float | None]
    score: float | None
    rank: int | None = None


@dataclass
class Evaluation:
    year: int
    through: date
    county: str | None  # None: the whole city
    departments: list[Row]
    counties: list[Row]
    total: Row  # the city, or the county asked for
    listed: list[Listed]
    notes: list[str]

    @property
    def has_data(self) -> bool:
        return any(r.score is not None for r in self.departments) or any(
            getattr(self.total.counts, f.name) for f in fields(Counts))


def _row(code: str, name: str, kind: str, county: str | None, counts: Counts) -> Row:
    m = counts.measures()
    return Row(code, name, kind, county, counts, m, score(m))


def evaluate(inputs: Inputs, departments: Mapping[str, Department], counties: Mapping[str, str], win: Window,
             calendar: WorkCalendar, county: str | None = None) -> Evaluation:
    """R-46.1: every department's measures of the year in `win`, its score and rank; each county rolled up from
    its departments, and the city from all (or, with `county`, that county's alone)."""
    end_day = day_of(win.end - timedelta(microseconds=1))
    counts: dict[str, Counts] = defaultdict(Counts)

    def in_year(d: date) -> bool:  # a case belongs to the year its deadline falls in
        return d.year == win.year

    catalogued = {e["resource_code"]: e for e in inputs.entries
                  if (e.get("first_approved") or e["approved_at"]) < win.end}
    first_approved = {e["resource_code"]: e.get("first_approved") or e["approved_at"] for e in inputs.entries}
    providers = {code: e["provider"] for code, e in catalogued.items()}
    system_of = {code: e["system_code"] for code, e in catalogued.items()}

    # the responsibility list is the provider's catalogued resources; each period of its update cycle
    # that is over (or already met) is owed one publication at least
    published: dict[tuple[str, str], set[date]] = defaultdict(set)
    for p in inputs.publications:
        counts[p["publisher"]].accepted += p["n"]
        published[(p["publisher"], p["resource_code"])].add(p["day"])
    shared = {(s["publisher"], s["resource_code"]) for s in inputs.shared if s["subscribers"]}
    for code, e in catalogued.items():
        c = counts[e["provider"]]
        c.catalogued += 1
        c.shareable += e["share_attribute"] != "none"
        c.shared += (e["provider"], code) in shared
        first = max(win.start.date(), day_of(first_approved[code]))
        days = published[(e["provider"], code)]
        met = {period_of(e["update_cycle"], d)[0] for d in days}
        for key, last in periods(e["update_cycle"], first, end_day, calendar):
            if last <= win.through or key in met:
                c.periods_expected += 1
                c.periods_met += key in met

    for kind, cases in (
        ("updates", catalog_update_cases(inputs.catalog_decisions, first_approved)),
        ("reviews", review_cases(inputs.catalog_decisions, departments)),
        ("requests", share_request_cases(inputs.share_decisions, providers)),
    ):
        for case in cases:
            outcome = case.outcome(win.through)
            if outcome is None or not in_year(case.due):
                continue
            c = counts[case.party]
            setattr(c, f"{kind}_due", getattr(c, f"{kind}_due") + 1)
            setattr(c, f"{kind}_{outcome}", getattr(c, f"{kind}_{outcome}") + 1)

    listed: dict[tuple[str, str], Listed] = {}

    def listing(dept: str, system: str | None, resource: str) -> Listed:
        item = listed.setdefault((dept, system or "-"), Listed(dept, system or "-"))
        if resource not in item.resources:
            item.resources.append(resource)
        return item

    uncatalogued: dict[str, set[str]] = defaultdict(set)
    for r in inputs.rejects:
        if r["publisher"] is None or r["code"] in NOT_THE_PUBLISHERS:
            continue
        c = counts[r["publisher"]]
        c.rejected += r["n"]
        if r["code"] == UNCATALOGUED and r["resource_code"] and r["resource_code"] not in catalogued:
            uncatalogued[r["publisher"]].add(r["resource_code"])
        if r["code"] == ONE_SOURCE:
            c.one_source_violations += r["n"]
            listing(r["publisher"], r["system_code"], r["resource_code"] or "-").one_source_violations += r["n"]
    for dept, codes in uncatalogued.items():
        counts[dept].uncatalogued += len(codes)
    for a in inputs.alerts:
        if a["kind"] == "duplicate_collection":
            counts[a["department"]].duplicate_subjects += a["subjects"]
            listing(a["department"], a["system_code"], a["resource_code"]).duplicate_subjects += a["subjects"]
        elif a["kind"] in SECURITY_KINDS:
            counts[a["department"]].security_incidents += a["subjects"]
    for case in share_request_cases(inputs.share_decisions, providers):
        if case.outcome(win.through) in ("late", "overdue") and in_year(case.due):
            listing(case.party, system_of[case.resource], case.resource).requests_not_answered_in_time += 1

    wanted = [d for d in departments.values() if county is None or d.county == county]
    rows = [_row(d.code, d.name, "department", d.county, counts[d.code]) for d in wanted]
    for code, r in rank({r.code: r.score for r in rows}).items():
        next(x for x in rows if x.code == code).rank = r
    county_rows = []
    for cc, cname in counties.items():
        if county is None or cc == county:
            total = sum((r.counts for r in rows if r.county == cc), Counts())
            county_rows.append(_row(cc, cname, "county", cc, total))
    for code, r in rank({r.code: r.score for r in county_rows}).items():
        next(x for x in county_rows if x.code == code).rank = r
    total = sum((r.counts for r in rows), Counts())
    top = _row(county, counties[county], "county", county, total) if county else _row(
        "CITY", "全市", "city", None, total)
    in_scope = {d.code for d in wanted}
    items = sorted((x for x in listed.values() if x.department in in_scope), key=lambda x: (x.department,
                                                                                            x.system_code))
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.code))
    return Evaluation(win.year, win.through, county, rows, county_rows, top, items, list(NOT_EVALUATED))
