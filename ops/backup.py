"""`govbus backup` and `govbus restore`: a consistent snapshot of what the bus cannot rebuild from its logs (the
database, the compacted state topics, the bus's consumer positions), and a fresh stack rebuilt from one (R-42.1)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from consumers.anchors import heads
from ops.stack import pg_bindir
from topics import registry
from topics.settings import Settings, all_delivered, kafka_options, start_client
from topics.views import partitions_of, read_to_end

log = logging.getLogger("govbus.backup")

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
# the bus's own consumer groups (under the deployment's prefix); departments' feed groups are theirs to keep
BUS_GROUPS = ("govbus", "govbus-deliveries", "govbus-ledger", "govbus-deadlines")


class BackupError(RuntimeError):
    """A backup that cannot be taken or restored, with what to do."""


def state_topics(prefix: str = "") -> list[str]:
    """The compacted topics: the state the agents, the delivery stream and the deadline service keep."""
    return [registry.name_of(s, prefix) for s in registry.FIXED if s.cleanup_policy == "compact"]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pg_tool(name: str) -> str:
    found = pg_bindir()
    path = str(found / name) if found and (found / name).exists() else shutil.which(name)
    if not path:
        raise BackupError(f"{name} not found: install Debian's postgresql-client")
    return path


def _split_dsn(dsn: str) -> tuple[str, dict]:
    """The DSN without its password, and the environment that carries it (never on a command line)."""
    parts = urlsplit(dsn)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = parts.password
        netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
        dsn = urlunsplit(parts._replace(netloc=netloc))
    return dsn, env


async def _tool(*argv: str, env: dict) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode:
        raise BackupError(f"{Path(argv[0]).name} failed ({proc.returncode}): {err.decode(errors='replace').strip()}")


# --------------------------------------------------------------------------- positions


async def group_offsets(s: Settings, groups: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Each group's committed offsets: {group: {topic: {partition: offset}}}; a group that never committed is left
    out."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, **kafka_options(s))
    await start_client(admin)
    try:
        out: dict = {}
        for g in groups:
            committed = await admin.list_consumer_group_offsets(g)
            for tp, meta in committed.items():
                if meta.offset >= 0:
                    out.setdefault(g, {}).setdefault(tp.topic, {})[str(tp.partition)] = meta.offset
        return out
    finally:
        await admin.close()


async def active_members(s: Settings, groups: list[str]) -> dict[str, int]:
    """Groups with members right now: a restore under a running bus would be overtaken by it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, **kafka_options(s))
    await start_client(admin)
    try:
        # one group per request: aiokafka 0.14 fails to decode a DescribeGroups answer about several (ops/status.py)
        described = [resp for g in groups for resp in await admin.describe_consumer_groups([g])]
    finally:
        await admin.close()
    out = {}
    for resp in described:
        for g in resp.groups:
            error, group, _state, _ptype, _proto, members = g[:6]
            if members:
                out[group] = len(members)
    return out


async def put_offsets(s: Settings, group: str, offsets: dict[str, dict[str, int]]) -> int:
    """Commit `offsets` for `group` (which must have no members); the partitions set."""
    tps = {TopicPartition(t, int(p)): OffsetAndMetadata(o, "restored") for t, parts in offsets.items()
           for p, o in parts.items()}
    if not tps:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, **kafka_options(s), group_id=group,
                                enable_auto_commit=False)
    await start_client(consumer)
    try:
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()
    return len(tps)


# --------------------------------------------------------------------------- topics


def _record(r) -> dict:
    return {"p": r.partition, "o": r.offset, "ts": r.timestamp,
            "k": None if r.key is None else base64.b64encode(r.key).decode(),
            "v": None if r.value is None else base64.b64encode(r.value).decode(),
            "h": [[k, base64.b64encode(v or b"").decode()] for k, v in (r.headers or ())]}


async def dump_topic(s: Settings, topic: str, path: Path) -> dict:
    """Every record of a compacted topic, to its end offsets at the time of asking, one JSON line each."""
    n, ends = 0, {}
    with open(path, "w", encoding="utf-8") as out:
        async for batch in read_to_end(s.bootstrap, topic, timeout=30):
            for r in batch:
                out.write(json.dumps(_record(r)) + "\n")
                n += 1
                ends[str(r.partition)] = r.offset + 1
    return {"file": path.name, "records": n, "ends": ends}


async def topic_is_empty(s: Settings, topic: str) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, **kafka_options(s), group_id=None,
                                enable_auto_commit=False)
    await start_client(consumer)
    try:
        tps = await partitions_of(consumer, topic)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        return all(v == 0 for v in ends.values())
    finally:
        await consumer.stop()


async def load_topic(s: Settings, topic: str, path: Path) -> int:
    """Write a dumped topic back, each record to its own partition with its key, headers and timestamp."""
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **kafka_options(s), acks="all",
                                enable_idempotence=True)
    await start_client(producer)
    sends = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                sends.append(await producer.send(
                    topic, partition=r["p"], timestamp_ms=r["ts"],
                    key=None if r["k"] is None else base64.b64decode(r["k"]),
                    value=None if r["v"] is None else base64.b64decode(r["v"]),
                    headers=[(k, base64.b64decode(v)) for k, v in r["h"]] or None))
        await all_delivered(sends)
        n = len(sends)
    finally:
        await producer.stop()
    return n


# --------------------------------------------------------------------------- backup


@dataclass
class Backup:
    backup_id: str
    directory: Path
    manifest_sha256: str
    manifest: dict = field(repr=False)


async def backup(s: Settings, directory: Path) -> Backup:
    """Positions first, then the state topics, then the database in one snapshot: what the log holds after the
    positions is replayed on restore, so nothing between them is lost (the ledger and the feeds' readers drop
    what they already have by its event id)."""
    directory = directory.resolve()
    if (directory / MANIFEST).exists():
        raise BackupError(f"{directory} already holds a backup; give an empty or new directory")
    # names and identity numbers: readable by whoever takes the backup only, as the credentials files are
    (directory / "topics").mkdir(parents=True, exist_ok=True)
    for d in (directory, directory / "topics"):
        d.chmod(0o700)
    mask = os.umask(0o077)  # the files written below, pg_dump's too
    try:
        return await _backup(s, directory)
    finally:
        os.umask(mask)


async def _backup(s: Settings, directory: Path) -> Backup:
    backup_id = f"backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    taken_at = datetime.now(UTC)

    groups = await group_offsets(s, [s.topic_prefix + g for g in BUS_GROUPS])
    topics = {}
    for topic in state_topics(s.topic_prefix):
        topics[topic] = await dump_topic(s, topic, directory / "topics" / f"{topic}.jsonl")

    dsn, env = _split_dsn(s.dsn)
    conn = await asyncpg.connect(s.dsn)
    try:
        # the dump and the chain heads recorded with it see the same snapshot of the database
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            chain = {t: [seq, h.hex()] for t, (seq, h) in (await heads(conn)).items()}
            await _tool(_pg_tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}", "--no-owner",
                        f"--file={directory / DUMP}", f"--dbname={dsn}", env=env)
    finally:
        await conn.close()

    files = {str(p.relative_to(directory)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": FORMAT, "backup_id": backup_id, "taken_at": taken_at.isoformat(),
                "topic_prefix": s.topic_prefix, "groups": groups, "topics": topics,
                "database": {"file": DUMP, "chain_heads": chain}, "files": files}
    text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True)
    (directory / MANIFEST).write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()

    conn = await asyncpg.connect(s.dsn)
    try:
        await conn.execute("INSERT INTO ledger_backups (backup_id, taken_at, location, manifest_sha256, chain_heads)"
                           " VALUES ($1, $2, $3, $4, $5::jsonb)", backup_id, taken_at, str(directory), digest,
                           json.dumps(chain))
    finally:
        await conn.close()
    log.info("backup %s in %s", backup_id, directory)
    return Backup(backup_id, directory, digest, manifest)


# --------------------------------------------------------------------------- restore


def read_manifest(directory: Path) -> tuple[dict, str]:
    """The manifest, every file it lists checked against its checksum; the manifest's own checksum."""
    try:
        text = (directory / MANIFEST).read_text(encoding="utf-8")
        manifest = json.loads(text)
    except FileNotFoundError:
        raise BackupError(f"{directory} holds no {MANIFEST}: not a govbus backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{directory / MANIFEST} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{directory / MANIFEST} is of format {manifest.get('format')!r}, not {FORMAT}")
    for name, want in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise BackupError(f"{path} is missing from the backup")
        got = sha256_file(path)
        if got != want["sha256"]:
            raise BackupError(f"{path} does not match its checksum in the manifest (sha256 {got}, not "
                              f"{want['sha256']}): the backup was changed or damaged")
    return manifest, hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Restored:
    backup_id: str
    topics_loaded: dict[str, int]
    topics_kept: list[str]
    groups: dict[str, int]
    chain_heads: dict


async def ledger_rows(dsn: str) -> int:
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return 0  # the database itself is gone
    try:
        exists = await conn.fetchval("SELECT to_regclass('ledger_deliveries') IS NOT NULL")
        if not exists:
            return 0
        return await conn.fetchval("SELECT (SELECT count(*) FROM ledger_deliveries)"
                                   " + (SELECT count(*) FROM ledger_feed_deliveries)"
                                   " + (SELECT count(*) FROM ledger_rejects)")
    finally:
        await conn.close()


async def fresh_database(dsn: str) -> None:
    """The database of `dsn` made anew and empty (it holds no ledger row: checked before)."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise BackupError(f"database name {name!r}: letters, digits and _ only")
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def restore(s: Settings, directory: Path) -> Restored:
    """Rebuild a fresh stack's database and lost state topics from a backup and put the bus's consumer positions
    back to the snapshot's, so that the log since the snapshot is replayed when the bus starts."""
    from ops import db
    from topics.admin import apply_topics

    directory = directory.resolve()
    manifest, digest = read_manifest(directory)
    if manifest["topic_prefix"] != s.topic_prefix:
        raise BackupError(f"the backup is of the deployment with prefix {manifest['topic_prefix']!r}, not "
                          f"{s.topic_prefix!r}: set GOVBUS_TOPIC_PREFIX to restore it")
    busy = await active_members(s, [s.topic_prefix + g for g in BUS_GROUPS])
    if busy:
        raise BackupError(f"the bus is running ({', '.join(busy)} have members): stop `govbus run` first")
    rows = await ledger_rows(s.dsn)
    if rows:
        raise BackupError(f"the database already holds {rows} ledger rows: a restore goes into a fresh database "
                          "(the ledger is never overwritten)")

    await fresh_database(s.dsn)
    dsn, env = _split_dsn(s.dsn)
    await _tool(_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={dsn}",
                str(directory / manifest["database"]["file"]), env=env)
    await db.migrate(s.dsn)  # migrations newer than the snapshot

    await apply_topics(s)
    loaded, kept = {}, []
    for topic, info in manifest["topics"].items():
        if not info["records"]:
            continue
        if await topic_is_empty(s, topic):
            loaded[topic] = await load_topic(s, topic, directory / "topics" / info["file"])
        else:
            kept.append(topic)  # still there, and newer than the snapshot: left as it is

    groups = {g: await put_offsets(s, g, offsets) for g, offsets in manifest["groups"].items()}

    chain = manifest["database"]["chain_heads"]
    conn = await asyncpg.connect(s.dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO ledger_backups (backup_id, taken_at, location, manifest_sha256, chain_heads)"
                " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (backup_id) DO NOTHING", manifest["backup_id"],
                datetime.fromisoformat(manifest["taken_at"]), str(directory), digest, json.dumps(chain))
            await conn.execute("INSERT INTO ledger_restores (backup_id, taken_at, chain_heads, source)"
                               " VALUES ($1, $2, $3::jsonb, $4)", manifest["backup_id"],
                               datetime.fromisoformat(manifest["taken_at"]), json.dumps(chain), str(directory))
    finally:
        await conn.close()
    log.info("restored %s from %s", manifest["backup_id"], directory)
    return Restored(manifest["backup_id"], loaded, kept, groups, chain)
