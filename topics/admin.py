"""`govbus topics apply`: create the declared topics that are missing and report drift, never changing a live topic."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from topics.registry import TopicSpec, all_topics, name_of
from topics.settings import Settings, kafka_options

log = logging.getLogger("govbus.topics")


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


async def apply_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> ApplyReport:
    if specs is None:
        from topics.departments import load

        specs = all_topics(load())
    wanted = {name_of(s, settings.topic_prefix): s for s in specs}
    report = ApplyReport()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_options(settings),
                                client_id="govbus-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            resp = await admin.create_topics(
                [NewTopic(n, wanted[n].partitions, 1, topic_configs=wanted[n].configs()) for n in missing]
            )
            for name, code, *_ in resp.topic_errors:
                if code == 0:
                    report.created.append(name)
                elif code == 36:  # TOPIC_ALREADY_EXISTS: created meanwhile, e.g. by another starter
                    existing.add(name)
                else:
                    raise RuntimeError(f"could not create topic {name}: Kafka error code {code}")
            report.created.sort()
            await _visible(admin, report.created)
        present = sorted(n for n in wanted if n in existing)
        if present:
            report.drift = await _drift(admin, {n: wanted[n] for n in present})
            drifted = {d.split(":", 1)[0] for d in report.drift}
            report.unchanged = [n for n in present if n not in drifted]
    finally:
        await admin.close()
    for name in report.created:
        log.info("created topic %s", name)
    for line in report.drift:
        log.warning("drift: %s", line)
    return report


async def _visible(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Wait until new topics show in metadata with leaders, so the next client finds them."""
    deadline = asyncio.get_running_loop().time() + timeout
    pending = set(names)
    while pending:
        for meta in await admin.describe_topics(sorted(pending)):
            if meta["error_code"] == 0 and meta["partitions"] and all(
                p["leader"] >= 0 for p in meta["partitions"]
            ):
                pending.discard(meta["topic"])
        if pending:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"topics created but not yet visible: {sorted(pending)}")
            await asyncio.sleep(0.1)


async def _drift(admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec]) -> list[str]:
    lines = []
    for meta in await admin.describe_topics(list(specs)):
        spec = specs[meta["topic"]]
        if len(meta["partitions"]) != spec.partitions:
            lines.append(
                f"{meta['topic']}: {len(meta['partitions'])} partitions, declared {spec.partitions}"
            )
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, {k: None for k in s.configs()}) for n, s in specs.items()]
    )
    for resp in responses:
        for _code, _msg, _type, name, entries in resp.resources:
            actual = {e[0]: e[1] for e in entries}
            for key, want in specs[name].configs().items():
                if key in actual and actual[key] != want:
                    lines.append(f"{name}: {key}={actual[key]}, declared {want}")
    return lines
