"""The client's side of incremental fetch sessions (topics/fetch_sessions.py): what a fetch names on the wire, how
an answer carries the session on, and what of aiokafka's fetcher it relies on."""

from __future__ import annotations

import inspect

from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v11

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
