"""The client's side of incremental fetch sessions (topics/fetch_sessions.py): what a fetch names on the wire, how
an answer carries the session on, and what of aiokafka's fetcher it relies on."""

from __future__ import annotations

import inspect

from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v11
from hypothesis import given
from hypothesis import strategies as st

from topics.fetch_sessions import INT32_MAX, Session

MB = 1_048_576


def full(offsets: dict[tuple[str, int], int]) -> FetchRequest:
    by_topic: dict[str, list] = {}
    for (topic, p), offset in offsets.items():
        by_topic.setdefault(topic, []).append((p, offset, MB))
    return FetchRequest(500, 1, 16 * MB, 1, list(by_topic.items()))


def wire(request) -> dict:
    struct = request.build(FetchRequest_v11)
    return {"session": (struct.session_id, struct.session_epoch),
            "partitions": {(t, p[0]): p[2] for t, parts in struct.topics for p in parts},
            "forgotten": {(t, p) for t, parts in struct.forgotten_topics_data for p in parts}}


OFFSETS = {("in.a", p): 10 * p for p in range(8)} | {("in.b", p): 0 for p in range(8)}


def test_the_first_fetch_is_full_and_asks_for_a_session():
    req = Session().request(full(OFFSETS))
    assert wire(req) == {"session": (0, 0), "partitions": OFFSETS, "forgotten": set()}


def test_once_open_a_fetch_names_only_the_partitions_that_moved_and_those_to_forget():
    session = Session()
    session.answered(session.request(full(OFFSETS)), 0, 77)
    assert (session.id, session.epoch) == (77, 1)
    assert wire(session.request(full(OFFSETS))) == {"session": (77, 1), "partitions": {}, "forgotten": set()}

    moved = dict(OFFSETS)
    moved[("in.a", 3)] = 35
    del moved[("in.b", 5)]  # its records wait to be taken: not fetched meanwhile
    req = session.request(full(moved))
    assert wire(req) == {"session": (77, 1), "partitions": {("in.a", 3): 35}, "forgotten": {("in.b", 5)}}
    # to the fetcher, the request is every partition the session holds once answered, at its fetch offset
    assert {(t, p[0]): p[1] for t, parts in req.topics for p in parts} == moved
    session.answered(req, 0, 77)
    assert session.epoch == 2
    assert session.held == {TopicPartition(t, p): (o, MB) for (t, p), o in moved.items()}
    back = wire(session.request(full(OFFSETS | {("in.a", 3): 35})))
    assert back == {"session": (77, 2), "partitions": {("in.b", 5): 0}, "forgotten": set()}


def test_an_error_closes_the_session_and_the_next_fetch_is_full():
    session = Session()
    session.answered(session.request(full(OFFSETS)), 0, 77)
    session.answered(session.request(full(OFFSETS)), 71, 0)  # INVALID_FETCH_SESSION_EPOCH
    assert (session.id, session.epoch, session.held) == (0, 0, {})
    assert wire(session.request(full(OFFSETS)))["partitions"] == OFFSETS


def test_a_broker_without_room_for_a_session_gets_full_fetches():
    session = Session()
    session.answered(session.request(full(OFFSETS)), 0, 0)
    assert wire(session.request(full(OFFSETS))) == {"session": (0, 0), "partitions": OFFSETS, "forgotten": set()}


def test_the_epoch_wraps_to_one():
    session = Session()
    session.answered(session.request(full(OFFSETS)), 0, 5)
    session.epoch = INT32_MAX
    session.answered(session.request(full(OFFSETS)), 0, 5)
    assert session.epoch == 1


def test_a_broker_older_than_fetch_v7_gets_the_full_fetch_and_no_session():
    session = Session()
    req = session.request(full(OFFSETS))
    struct = req.build(FetchRequest_v4)
    assert {(t, p[0]): p[1] for t, parts in struct.topics for p in parts} == OFFSETS
    session.answered(req, 0, 0)
    assert session.id == 0 and req.sessionless


def test_what_it_relies_on_in_aiokafkas_fetcher_is_there():
    # the fetch routine asks _get_actions_per_node for its requests and sends them through self._client; each
    # answer's partitions are checked against request.topics
    routine = inspect.getsource(Fetcher._fetch_requests_routine)
    assert "self._get_actions_per_node(assignment)" in routine
    proc = inspect.getsource(Fetcher._proc_fetch_request)
    assert "await self._client.send(node_id, request)" in proc
    assert "for topic, partitions in request.topics:" in proc
    for name in ("_max_wait_ms", "_min_bytes", "_max_bytes", "_isolation_level", "_rack_id"):
        assert name in inspect.getsource(FetchRequest.__init__)


# ----------------------------------------------------------------------------------------- the planner

class Cluster:
    """The cluster metadata a fetcher plans with: each partition's leader."""

    def __init__(self, leaders: dict[TopicPartition, int | None]):
        self._partitions = {}
        for tp, leader in leaders.items():
            self._partitions.setdefault(tp.topic, {})[tp.partition] = leader

    def leader_for_partition(self, tp):
        return self._partitions.get(tp.topic, {}).get(tp.partition)

    def broker_metadata(self, node_id):
        return object()


class Buffered:
    """Records fetched and not yet taken, with the fetcher's back-off for their partition."""

    def __init__(self, backoff: float):
        self.backoff = backoff

    def calculate_backoff(self):
        return self.backoff


class Client:
    def __init__(self, cluster):
        self.cluster = cluster


def fetcher_with(cluster: Cluster, records: dict, in_flight: set[int]) -> Fetcher:
    f = Fetcher.__new__(Fetcher)  # the planning alone: no client, no routine
    f._client = Client(cluster)  # noqa: SLF001
    f._records = records  # noqa: SLF001
    f._in_flight = in_flight  # noqa: SLF001
    f._preferred_read_replica = {}  # noqa: SLF001
    f._fetch_max_wait_ms, f._fetch_min_bytes, f._fetch_max_bytes = 500, 1, 16 * MB  # noqa: SLF001
    f._isolation_level, f._client_rack, f._max_partition_fetch_bytes = 0, None, MB  # noqa: SLF001
    f._fetcher_timeout = 0.2  # noqa: SLF001
    return f


def outcome(plan) -> tuple:
    fetches, resets, timeout, invalid, resume = plan
    return ({node: (wire(req)["partitions"], req.session_id) for node, req in fetches},
            {node: sorted(tps) for node, tps in resets.items() if tps}, timeout, invalid, sorted(map(id, resume)))


TPS = [TopicPartition(t, p) for t in ("in.a", "in.b", "in.c") for p in range(4)]


@given(st.data())
def test_the_planner_plans_what_aiokafkas_planning_does(data):
    import asyncio

    from aiokafka.consumer.subscription_state import Assignment

    from topics.fetch_sessions import Planner

    async def plans():
        assignment = Assignment(TPS)
        leaders = {tp: data.draw(st.sampled_from([1, 2, 3]), label=f"leader {tp}") for tp in TPS}
        records = {}
        for tp in TPS:
            state = assignment.state_value(tp)
            how = data.draw(st.sampled_from(["fetch", "fetch", "fetch", "reset", "paused", "buffered"]), label=str(tp))
            if how != "reset":
                state.seek(data.draw(st.integers(0, 10**6)))
            if how == "paused":
                state.pause()
            if how == "buffered":
                records[tp] = Buffered(data.draw(st.sampled_from([0, 0.05, 0.1])))
        in_flight = data.draw(st.sets(st.sampled_from([1, 2, 3])), label="in flight")
        if data.draw(st.booleans(), label="a leader unknown"):
            leaders[TPS[0]] = data.draw(st.sampled_from([None, -1]))
        cluster = Cluster(leaders)
        theirs = fetcher_with(cluster, records, in_flight)
        ours = fetcher_with(cluster, records, in_flight)
        sessions: dict[int, Session] = {n: Session() for n in (-1, 1, 2, 3)}
        fetches, *rest = Fetcher._get_actions_per_node(theirs, assignment)  # noqa: SLF001
        expected = outcome(([(n, sessions[n].request(r)) for n, r in fetches], *rest))
        got = outcome(Planner(ours, {n: Session() for n in (-1, 1, 2, 3)}).plan(assignment))
        return expected, got

    expected, got = asyncio.run(plans())
    assert got == expected


def test_the_planner_groups_once_per_assignment_and_metadata_and_asks_only_brokers_with_no_fetch_in_flight():
    import asyncio

    from aiokafka.consumer.subscription_state import Assignment

    from topics.fetch_sessions import Planner

    async def go():
        assignment = Assignment(TPS)
        for tp in TPS:
            assignment.state_value(tp).seek(5)
        cluster = Cluster({tp: 1 + tp.partition % 2 for tp in TPS})
        fetcher = fetcher_with(cluster, {}, {1})
        planner = Planner(fetcher, {1: Session(), 2: Session()})
        fetches, *_ = planner.plan(assignment)
        assert [n for n, _ in fetches] == [2]
        groups = planner._groups  # noqa: SLF001
        planner.plan(assignment)
        assert planner._groups is groups  # noqa: SLF001
        cluster._partitions = dict(cluster._partitions)  # new metadata: grouped again
        planner.plan(assignment)
        assert planner._groups is not groups  # noqa: SLF001

    asyncio.run(go())


def test_once_answered_the_fetcher_checks_only_the_partitions_the_answer_carries():
    session = Session()
    session.answered(session.request(full(OFFSETS)), 0, 77)
    req = session.request(full(OFFSETS))

    class Answer:
        topics = [("in.a", [(3, 0, 99, 99, 0, [], b"records")]), ("in.z", [(0, 0, 1, 1, 0, [], b"")]),
                  ("in.b", [])]

    answer = Answer()
    req.answered_by(answer)
    assert req.topics == [("in.a", [(3, 30, MB)])]
    assert answer.topics[1] == ("in.z", [])  # not held by the session: not the fetcher's to see


def test_what_the_planner_relies_on_in_aiokafka_is_there():
    from aiokafka.cluster import ClusterMetadata

    init = inspect.getsource(Fetcher.__init__)
    for name in ("_records", "_in_flight", "_preferred_read_replica", "_fetch_max_wait_ms", "_fetch_min_bytes",
                 "_fetch_max_bytes", "_isolation_level", "_client_rack", "_max_partition_fetch_bytes",
                 "_fetcher_timeout"):
        assert f"self.{name} =" in init or f"self.{name}:" in init, name
    # metadata is replaced whole by an update: the planner groups again when it sees another dict
    assert "self._partitions = _new_partitions" in inspect.getsource(ClusterMetadata.update_metadata)
