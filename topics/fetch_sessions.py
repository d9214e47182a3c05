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
        if not self.id:
            return SessionFetchRequest(full, self, wanted, 0, 0, wanted, [])
        changed = {tp: v for tp, v in wanted.items() if self.held.get(tp) != v}
        forgotten = [tp for tp in self.held if tp not in wanted]
        return SessionFetchRequest(full, self, wanted, self.id, self.epoch, changed, forgotten)

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
    answer's partitions are checked against the positions they were fetched from."""

    def __init__(self, full: FetchRequest, session: Session, wanted: Wanted, session_id: int, epoch: int,
                 send: Wanted, forget: list[TopicPartition]):
        super().__init__(full._max_wait_ms, full._min_bytes, full._max_bytes,  # noqa: SLF001
                         full._isolation_level, full.topics, rack_id=full._rack_id)  # noqa: SLF001
        self.session = session
        self.wanted = wanted
        self.session_id = session_id
        self.session_epoch = epoch
        self.send = send
        self.forget = forget
        self.sessionless = False

    def build(self, request_struct_class):
        version = request_struct_class.API_VERSION
        if version < 7:  # a broker without sessions: the full fetch
            self.sessionless = True
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
        held = request.wanted
        for topic, partitions in response.topics:  # only what the fetch is checked against (always so)
            partitions[:] = [p for p in partitions if TopicPartition(topic, p[0]) in held]
        return response


def use_fetch_sessions(consumer: AIOKafkaConsumer) -> dict[int, Session]:
    """Fit a started consumer's fetcher with incremental fetch sessions; returns them, by broker."""
    fetcher = consumer._fetcher  # noqa: SLF001
    sessions: dict[int, Session] = defaultdict(Session)
    plan = fetcher._get_actions_per_node  # noqa: SLF001

    def actions_per_node(assignment):
        fetches, *rest = plan(assignment)
        return [(node_id, sessions[node_id].request(req)) for node_id, req in fetches], *rest

    fetcher._get_actions_per_node = actions_per_node  # noqa: SLF001
    fetcher._client = SessionClient(fetcher._client)  # noqa: SLF001
    return sessions
