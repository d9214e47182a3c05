"""Incremental fetch sessions (KIP-227) for aiokafka's consumer, which sends every fetch in full.

Without a session, every fetch names each partition the consumer reads and every answer carries each of them, records
or not: a worker reading 31 inbound topics of 8 partitions builds and parses 248 partition entries per fetch (some
4 ms of Python), however few of them have anything new. In a session the broker keeps the partitions and their fetch
offsets; a fetch names only the partitions whose offset changed (and those to forget), and the answer only the
partitions with new records or a changed state.

`use_fetch_sessions(consumer)` fits a started consumer's fetcher with them: one session per broker, opened by the
first full fetch, carried on with each answer; any error (the broker evicted the session, a lost connection, a
cancelled fetch) closes it on the client, and the next fetch is a full one again. aiokafka is pinned
(pyproject.toml): this reaches into its fetcher, and tests/unit/test_fetch_sessions.py checks what it relies on.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

log = logging.getLogger("govbus.fetch")

INT32_MAX = 2**31 - 1

Wanted = dict[TopicPartition, tuple[int, int]]  # partition -> (fetch offset, max bytes)


class Session:
    """The client's side of one broker's fetch session: its id, the epoch of the next fetch, and the partitions
    (with their fetch offsets) the broker holds in it."""

    __slots__ = ("id", "epoch", "held")

    def __init__(self) -> None:
        self.id = 0
        self.epoch = 0
        self.held: Wanted = {}

    def close(self) -> None:
        self.id, self.epoch, self.held = 0, 0, {}

    def request(self, full: FetchRequest) -> SessionFetchRequest:
        """The fetch to send instead of `full` (aiokafka's, naming every partition wanted from this broker)."""
        wanted = {TopicPartition(topic, p): (offset, max_bytes)
                  for topic, parts in full.topics for p, offset, max_bytes in parts}
        return self.fetch(wanted, (full._max_wait_ms, full._min_bytes, full._max_bytes,  # noqa: SLF001
                                   full._isolation_level, full._rack_id))  # noqa: SLF001

    def fetch(self, wanted: Wanted, params: tuple) -> SessionFetchRequest:
        """The fetch of these partitions at these offsets; `params`: max wait, min bytes, max bytes, isolation
        level and rack, as aiokafka's FetchRequest takes them."""
        if not self.id:
            return SessionFetchRequest(params, self, wanted, 0, 0, wanted, [])
        held = self.held
        changed = {tp: v for tp, v in wanted.items() if held.get(tp) != v}
        forgotten = [tp for tp in held if tp not in wanted] if len(held) != len(wanted) or changed else []
        return SessionFetchRequest(params, self, wanted, self.id, self.epoch, changed, forgotten)

    def answered(self, request: SessionFetchRequest, error_code: int, session_id: int) -> None:
        """Carry the session on with a fetch's answer (or close it on an error)."""
        if error_code or request.sessionless:
            if error_code:
                log.info("fetch session %s closed by the broker (error %s): the next fetch is a full one",
                         self.id, error_code)
            self.close()
            return
        if request.session_epoch == 0:  # a full fetch: it opened a session, if the broker had room for one
            self.id = session_id
            self.epoch = 1 if session_id else 0
            self.held = dict(request.wanted) if session_id else {}
            return
        self.held.update(request.send)
        for tp in request.forget:
            self.held.pop(tp, None)
        self.epoch = 1 if self.epoch == INT32_MAX else self.epoch + 1


class SessionFetchRequest(FetchRequest):
    """A fetch in a session: on the wire, the partitions whose offsets changed and those to forget; to the
    fetcher (`topics`), every partition the session holds once it is answered, at its fetch offset, so that the
    answer's partitions are checked against the positions they were fetched from (once answered, only the
    partitions the answer carries: the fetcher reads `topics` whole for each answer)."""

    def __init__(self, params: tuple, session: Session, wanted: Wanted, session_id: int, epoch: int,
                 send: Wanted, forget: list[TopicPartition]):
        max_wait_ms, min_bytes, max_bytes, isolation_level, rack_id = params
        super().__init__(max_wait_ms, min_bytes, max_bytes, isolation_level, [], rack_id=rack_id)
        self.session = session
        self.wanted = wanted
        self.session_id = session_id
        self.session_epoch = epoch
        self.send = send
        self.forget = forget
        self.sessionless = False
        self.answered_with: list[tuple[str, list]] | None = None  # the answer's partitions, once answered

    @property
    def topics(self) -> list[tuple[str, list[tuple[int, int, int]]]]:
        if self.answered_with is not None:
            return self.answered_with
        return _by_topic(self.wanted)

    def answered_by(self, response) -> None:
        """Keep of the answer only the partitions the session holds (always so), and let the fetcher check
        just those."""
        held = self.wanted
        answered = []
        for topic, partitions in response.topics:
            kept, checked = [], []
            for p in partitions:
                fetched = held.get(TopicPartition(topic, p[0]))  # (offset, max bytes)
                if fetched is not None:
                    kept.append(p)
                    checked.append((p[0], *fetched))
            partitions[:] = kept
            if checked:
                answered.append((topic, checked))
        self.answered_with = answered

    def build(self, request_struct_class):
        version = request_struct_class.API_VERSION
        if version < 7:  # a broker without sessions: the full fetch
            self.sessionless = True
            self._topics = _by_topic(self.wanted)
            return super().build(request_struct_class)
        by_topic: dict[str, list[tuple]] = defaultdict(list)
        for tp, (offset, max_bytes) in self.send.items():
            by_topic[tp.topic].append((tp.partition, -1, offset, -1, max_bytes) if version >= 9
                                      else (tp.partition, offset, -1, max_bytes))
        forgotten: dict[str, list[int]] = defaultdict(list)
        for tp in self.forget:
            forgotten[tp.topic].append(tp.partition)
        args = [-1, self._max_wait_ms, self._min_bytes, self._max_bytes, self._isolation_level,
                self.session_id, self.session_epoch, list(by_topic.items()), list(forgotten.items())]
        if version >= 11:
            args.append(self._rack_id)
        return request_struct_class(*args)


def _by_topic(wanted: Wanted) -> list[tuple[str, list[tuple[int, int, int]]]]:
    by_topic: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for tp, (offset, max_bytes) in wanted.items():
        by_topic[tp.topic].append((tp.partition, offset, max_bytes))
    return list(by_topic.items())


class SessionClient:
    """The fetcher's client: passes every request on, and carries a fetch's session on with its answer."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    async def send(self, node_id, request, *args, **kwargs):
        if not isinstance(request, SessionFetchRequest):
            return await self._client.send(node_id, request, *args, **kwargs)
        try:
            response = await self._client.send(node_id, request, *args, **kwargs)
        except BaseException:  # unanswered: the broker may or may not have moved the session on
            request.session.close()
            raise
        if request.sessionless:
            request.session.answered(request, 0, 0)
            return response
        request.session.answered(request, response.error_code, response.session_id)
        request.answered_by(response)
        return response


class Planner:
    """aiokafka's fetch planning (Fetcher._get_actions_per_node) for a fetcher with sessions. The fetcher asks for
    a plan each time it wakes, twice or more per fetch; aiokafka's walks every assigned partition through the
    cluster metadata and builds a full request, which the session then cuts down: some 2 ms for 248 partitions,
    at every wake. Here the partitions are grouped by leader once per assignment and metadata, a wake walks only
    the partitions of brokers with no fetch in flight, and the session's fetch is made from their offsets at once.
    Whatever this does not plan for (a partition without a known leader, KIP-392 read replicas) goes to aiokafka's
    own planning. tests/unit/test_fetch_sessions.py holds the plans equal."""

    def __init__(self, fetcher, sessions: dict[int, Session]):
        self.fetcher = fetcher
        self.sessions = sessions
        self.aiokafkas = fetcher._get_actions_per_node  # noqa: SLF001
        self._made_for: tuple | None = None  # the assignment and partition metadata the groups were made for
        self._groups: dict[int, list] = {}  # leader -> [(partition, its state)]
        self._leader: dict[TopicPartition, int] = {}

    def _grouped(self, assignment) -> bool:
        cluster = self.fetcher._client.cluster  # noqa: SLF001
        known = cluster._partitions  # noqa: SLF001  (replaced whole by each metadata update)
        made = self._made_for
        if made is not None and made[0] is assignment and made[1] is known:
            return True
        groups: dict[int, list] = defaultdict(list)
        leader: dict[TopicPartition, int] = {}
        for tp in assignment.tps:
            node = cluster.leader_for_partition(tp)
            if node is None or node == -1:
                self._made_for = None
                return False
            groups[node].append((tp, assignment.state_value(tp)))
            leader[tp] = node
        self._groups, self._leader, self._made_for = dict(groups), leader, (assignment, known)
        return True

    def plan(self, assignment):
        fetcher = self.fetcher
        if fetcher._preferred_read_replica or not self._grouped(assignment):  # noqa: SLF001
            fetches, *rest = self.aiokafkas(assignment)
            return [(node_id, self.sessions[node_id].request(req)) for node_id, req in fetches], *rest
        records = fetcher._records  # noqa: SLF001
        in_flight = fetcher._in_flight  # noqa: SLF001
        backoffs: dict[int, list[float]] = defaultdict(list)
        for tp, buffered in records.items():  # records not yet taken: that broker is not fetched from meanwhile
            node = self._leader.get(tp)
            if node is not None and (backoff := buffered.calculate_backoff()):
                backoffs[node].append(backoff)
        resets: dict[int, list[TopicPartition]] = defaultdict(list)
        resume: list = []
        fetches = []
        params = (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes, fetcher._fetch_max_bytes,  # noqa: SLF001
                  fetcher._isolation_level, fetcher._client_rack or "")  # noqa: SLF001
        max_bytes = fetcher._max_partition_fetch_bytes  # noqa: SLF001
        for node, members in self._groups.items():
            if node in in_flight:
                continue
            wanted: Wanted = {}
            for tp, state in members:
                if tp in records:
                    continue
                if not state.has_valid_position:
                    resets[node].append(tp)
                elif state.paused:
                    resume.append(state.resume_fut)
                else:
                    wanted[tp] = (state.position, max_bytes)
            if wanted and node not in backoffs and node not in resets:
                session = self.sessions[node]
                if not session.id:  # a full fetch: partitions in a random order, as aiokafka sends them
                    order = list(wanted.items())
                    random.shuffle(order)
                    wanted = dict(order)
                fetches.append((node, session.fetch(wanted, params)))
        timeout = min(map(max, backoffs.values())) if backoffs else fetcher._fetcher_timeout  # noqa: SLF001
        return fetches, dict(resets), timeout, False, resume


def use_fetch_sessions(consumer: AIOKafkaConsumer) -> dict[int, Session]:
    """Fit a started consumer's fetcher with incremental fetch sessions; returns them, by broker."""
    fetcher = consumer._fetcher  # noqa: SLF001
    sessions: dict[int, Session] = defaultdict(Session)
    fetcher._get_actions_per_node = Planner(fetcher, sessions).plan  # noqa: SLF001
    fetcher._client = SessionClient(fetcher._client)  # noqa: SLF001
    return sessions
