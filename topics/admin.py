"""`govbus topics apply`: create the declared topics that are missing, replicated for the cluster they are on, and
report drift (partitions, configs, replication), never changing a live topic."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest

from topics.registry import TopicSpec, all_topics, name_of
from topics.settings import Settings, kafka_options, start_client

log = logging.getLogger("govbus.topics")
LATEST = -1  # ListOffsets' timestamp for the end of a partition


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    brokers: int = 0  # the cluster's size, as the replication was scaled to


async def apply_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> ApplyReport:
    if specs is None:
        from topics.departments import load

        specs = all_topics(load())
    wanted = {name_of(s, settings.topic_prefix): s for s in specs}
    report = ApplyReport()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_options(settings),
                                client_id="govbus-topics")
    await start_client(admin)
    try:
        existing = set(await admin.list_topics())
        present = sorted(n for n in wanted if n in existing)
        described = await _described(admin, present)
        report.brokers = cluster_size(await admin.describe_cluster(), described)
        missing = [n for n in wanted if n not in existing]
        if missing:
            resp = await admin.create_topics([new_topic(n, wanted[n], report.brokers) for n in missing])
            raced = []
            for name, code, *message in resp.topic_errors:
                if code == 0:
                    report.created.append(name)
                elif code == 36:  # TOPIC_ALREADY_EXISTS: created meanwhile, e.g. by another starter
                    raced.append(name)
                else:
                    said = f": {message[0]}" if message and message[0] else ""
                    raise RuntimeError(f"could not create topic {name}: Kafka error code {code}{said}")
            report.created.sort()
            await writable(admin, [*report.created, *raced])
            if raced:
                present = sorted([*present, *raced])
                described += await _described(admin, raced)
        if present:
            report.drift = await _drift(admin, {n: wanted[n] for n in present}, described, report.brokers)
            drifted = {d.split(":", 1)[0] for d in report.drift}
            report.unchanged = [n for n in present if n not in drifted]
    finally:
        await admin.close()
    for name in report.created:
        log.info("created topic %s", name)
    for line in report.drift:
        log.warning("drift: %s", line)
    return report


def cluster_size(cluster: dict, described: list[dict]) -> int:
    """The brokers of the cluster: those that answer now, and those the topics' replicas name (a broker that is down
    for the moment still counts, so its absence does not scale a topic's replication down)."""
    ids = {b["node_id"] for b in cluster.get("brokers", [])}
    for meta in described:
        for part in meta.get("partitions", []):
            ids.update(part["replicas"])
    return max(1, len(ids))


def new_topic(name: str, spec: TopicSpec, brokers: int) -> NewTopic:
    rep = spec.replication(brokers)
    return NewTopic(name, spec.partitions, rep.factor,
                    topic_configs={**spec.configs(), "min.insync.replicas": str(rep.min_insync)})


def wanted_configs(spec: TopicSpec, brokers: int) -> dict[str, str]:
    """The configs a live topic should have on a cluster of `brokers`."""
    return {**spec.configs(), "min.insync.replicas": str(spec.replication(brokers).min_insync)}


async def _described(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> list[dict]:
    """The metadata of existing topics, once one answer knows the partitions of every one of them.

    Each request goes to a broker picked at random, and a broker of a cluster can answer for a topic just created
    elsewhere (by hand, or by another starter) before it has learnt its partitions; such an answer is asked again
    rather than reported as a topic of 0 partitions. After `timeout` the last answer stands, and the drift says
    what it lacked."""
    if not names:
        return []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(sorted(names))
        if all(map(_known, described)) or asyncio.get_running_loop().time() > deadline:
            return described
        await asyncio.sleep(0.1)


async def writable(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Wait until new topics can be written, whichever broker a client asks: every broker that answers knows them,
    with leaders (a broker learns of a topic created by another a little later), and each partition's leader has
    taken it on. A broker names a new partition's leader in its metadata a moment before that leader takes
    requests for it (0.2-0.4 s on one node here): a producer that writes meanwhile is refused with
    NOT_LEADER_OR_FOLLOWER and logs a warning at each retry. A leader that answers ListOffsets for a partition
    without an error takes writes to it."""
    if not names:
        return
    deadline = asyncio.get_running_loop().time() + timeout

    async def answer(node: int) -> list[dict] | None:
        try:
            return await metadata_from(admin, node, names)
        except KafkaError:  # a broker that does not answer now: neither does it to the next client
            return None

    while True:
        answers = [a for a in await asyncio.gather(*(answer(node) for node in await brokers(admin))) if a is not None]
        pending = sorted({meta["topic"] for topics in answers for meta in topics if not led(meta)})
        if answers and not pending:
            pending = await not_leading(admin, answers[0])
            if not pending:
                return
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topics created but not yet writable on every broker: {pending or sorted(names)}")
        await asyncio.sleep(0.05)


async def not_leading(admin: AIOKafkaAdminClient, metadata: list[dict]) -> list[str]:
    """The partitions, of these topics' metadata, whose named leader does not yet answer for them (each leader asked
    with one ListOffsets for its partitions)."""
    by_leader: dict[int, dict[str, list[tuple[int, int]]]] = {}
    for meta in metadata:
        for p in meta["partitions"]:
            by_leader.setdefault(p["leader"], {}).setdefault(meta["topic"], []).append((p["partition"], LATEST))

    async def refused(leader: int, topics: dict[str, list[tuple[int, int]]]) -> list[str]:
        everything = [f"{t}[{p}]" for t, parts in topics.items() for p, _ in parts]
        try:
            resp = await admin._send_request(OffsetRequest(-1, 0, list(topics.items())), leader)  # noqa: SLF001
        except KafkaError:
            return everything
        answered = {f"{t['topic']}[{p['partition']}]": p["error_code"]
                    for t in resp.to_object()["topics"] for p in t["partitions"]}
        return [tp for tp in everything if answered.get(tp, -1) != 0]

    found = await asyncio.gather(*(refused(leader, topics) for leader, topics in by_leader.items()))
    return sorted(tp for tps in found for tp in tps)


async def brokers(admin: AIOKafkaAdminClient) -> list[int]:
    """The ids of the cluster's brokers as the admin client's own metadata has them, refreshed first: the brokers it
    can send a request to (one the cluster lists but its metadata lacks yet would be refused as stale)."""
    client = admin._client  # noqa: SLF001
    await client.force_metadata_update()
    return sorted(b.nodeId for b in client.cluster.brokers())


async def metadata_from(admin: AIOKafkaAdminClient, node: int, names: list[str]) -> list[dict]:
    """These topics' metadata as broker `node` itself answers (KafkaError when it does not)."""
    return (await _metadata_answer(admin, node, names))["topics"]


async def _metadata_answer(admin: AIOKafkaAdminClient, node: int, names: list[str]) -> dict:
    return (await admin._send_request(MetadataRequest(sorted(names)), node)).to_object()  # noqa: SLF001


async def one_image(admin: AIOKafkaAdminClient, names: list[str]) -> dict:
    """The brokers and these topics' partitions (replicas, in-sync replicas) in one answer of one broker: one image
    of the cluster's metadata. Two requests may straddle a change, or go to two brokers of which one has applied it
    and the other not yet: a lost broker already gone from the brokers listed, its partitions still fully in sync."""
    # every broker asked at once, the first answer taken: a lost one is not waited for
    asked = [asyncio.ensure_future(_metadata_answer(admin, node, names)) for node in await brokers(admin)]
    refused: KafkaError | None = None
    try:
        for answer in asyncio.as_completed(asked):
            try:
                return await answer
            except KafkaError as exc:
                refused = exc
    finally:
        for request in asked:
            request.cancel()
    raise refused or KafkaError("no broker answered a metadata request")


def _known(meta: dict) -> bool:
    """A topic's metadata, as one broker answered, names its partitions."""
    return meta["error_code"] == 0 and bool(meta["partitions"])


def led(meta: dict) -> bool:
    """A topic's metadata names its partitions, each with a leader."""
    return _known(meta) and all(p["leader"] >= 0 for p in meta["partitions"])


async def _drift(admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec], described: list[dict],
                 brokers: int) -> list[str]:
    lines = []
    cluster = f"{brokers} broker{'s' if brokers != 1 else ''}"
    for meta in described:
        spec = specs[meta["topic"]]
        if meta["error_code"]:
            lines.append(f"{meta['topic']}: not described by the cluster, Kafka error code {meta['error_code']}")
        elif len(meta["partitions"]) != spec.partitions:
            lines.append(
                f"{meta['topic']}: {len(meta['partitions'])} partitions, declared {spec.partitions}"
            )
        want = spec.replication(brokers).factor
        factors = sorted({len(p["replicas"]) for p in meta["partitions"]})
        if factors and factors != [want]:
            lines.append(
                f"{meta['topic']}: replication factor {'/'.join(map(str, factors))}, declared {want} for a cluster of "
                f"{cluster}; apply does not move replicas: reassign the partitions (kafka-reassign-partitions.sh "
                "--reassignment-json-file with a replica list of that length per partition)"
            )
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, {k: None for k in wanted_configs(s, brokers)})
         for n, s in specs.items()]
    )
    for resp in responses:
        for _code, _msg, _type, name, entries in resp.resources:
            actual = {e[0]: e[1] for e in entries}
            for key, want in wanted_configs(specs[name], brokers).items():
                if key in actual and actual[key] != want:
                    line = f"{name}: {key}={actual[key]}, declared {want}"
                    if key == "min.insync.replicas":
                        line += (f" for a cluster of {cluster}; set it with kafka-configs.sh --alter --entity-type "
                                 f"topics --entity-name {name} --add-config min.insync.replicas={want}")
                    lines.append(line)
    return lines
