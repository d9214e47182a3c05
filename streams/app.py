"""The faust app of a deployment (its topic prefix) and the views every worker reads: subscriptions, calendar,
catalog, grants and the flags of data under verification or objection."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import faust

from schemas.codec import default_codec
from streams.rules.exchange import Subscriptions, item_sources
from streams.rules.workcalendar import WorkCalendar, publish_event
from topics import metrics, registry
from topics.departments import load as load_departments
from topics.settings import Settings, kafka_options, settings
from topics.views import CompactedView, ViewFollower

SETTINGS = settings()
PREFIX = SETTINGS.topic_prefix
CODEC = default_codec()
DEPARTMENTS = load_departments()


def broker_credentials(s: Settings) -> faust.types.auth.CredentialsT | None:
    """The worker's credentials in faust's terms: the same principal its own aiokafka clients use."""
    options = kafka_options(s)
    protocol = options.get("security_protocol")
    if protocol is None:
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return faust.SASLCredentials(username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                                 mechanism=options["sasl_mechanism"], ssl_context=options.get("ssl_context"))


app = faust.App(
    f"{PREFIX}govbus",
    broker=f"kafka://{SETTINGS.bootstrap}",
    broker_credentials=broker_credentials(SETTINGS),
    key_serializer="raw",
    value_serializer="raw",
    processing_guarantee="at_least_once",
    consumer_auto_offset_reset="earliest",
    topic_disable_leader=True,
    topic_allow_declare=False,
    # faust declares no topic here (its changelogs are in topics/registry.py, created by `govbus topics apply`);
    # were it to, it would replicate as they are
    topic_replication_factor=registry.CATALOG_STATE.replication(SETTINGS.kafka_brokers).factor,
    web_enabled=False,
    producer_acks=-1,
    producer_linger=0.005,
    producer_max_batch_size=256 * 1024,
    broker_commit_every=1000,
    # a worker killed -9 is noticed after this long, and its partitions go to the others
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=8192,
    datadir=os.environ.get("GOVBUS_WORKER_DATADIR", str(SETTINGS.state_dir / "worker")),
)


def topic(spec: registry.TopicSpec) -> faust.TopicT:
    return app.topic(registry.name_of(spec, PREFIX), key_type=bytes, value_type=bytes,
                     key_serializer="raw", value_serializer="raw")


rejects_topic = topic(registry.REJECTS)
FEED_NAMES = {code: registry.feed_name(code, PREFIX) for code in DEPARTMENTS}


subscriptions = Subscriptions()


class Changes:
    """How many times the views the router reads (subscriptions, catalog, grants) have changed:
    what is cached from them is kept only while this count stays the same."""

    count = 0

    @classmethod
    def bump(cls) -> None:
        cls.count += 1


def _apply_subscription(key: bytes | None, value: bytes | None) -> None:
    Changes.bump()
    if value is None:  # tombstone: key is resource|subscriber
        if key:
            resource, _, subscriber = key.decode().partition("|")
            subscriptions.apply(subscriber, resource, False)
        return
    rec = CODEC.decode(value, "govbus.exchange.Subscription").record
    if rec["subscriber"] not in DEPARTMENTS:  # it has no feed topic to deliver to
        logging.getLogger("govbus").warning("ignored subscription of unknown department %s", rec["subscriber"])
        return
    subscriptions.apply(rec["subscriber"], rec["resource_code"], rec["active"])


subscription_view = CompactedView(
    SETTINGS.bootstrap, registry.name_of(registry.SUBSCRIPTIONS, PREFIX), _apply_subscription
)


calendar = WorkCalendar()


def _apply_calendar(key: bytes | None, value: bytes | None) -> None:
    if value is not None:
        publish_event(calendar, CODEC, value)


calendar_view = CompactedView(SETTINGS.bootstrap, registry.name_of(registry.CALENDAR, PREFIX), _apply_calendar)


class CatalogView:
    """The approved catalog as every worker sees it, with the registered source of each data item."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}
        self._sources: dict[str, tuple[str, str]] | None = None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        Changes.bump()
        if value is None:
            if key:
                self.entries.pop(key.decode(), None)
        else:
            rec = CODEC.decode(value, "govbus.catalog.CatalogEntry").record
            self.entries[rec["resource_code"]] = rec
        self._sources = None

    def sources(self) -> dict[str, tuple[str, str]]:
        if self._sources is None:
            self._sources = item_sources(self.entries.values())
        return self._sources


class GrantsView:
    """Directed authorizations by resource."""

    def __init__(self) -> None:
        self.by_resource: dict[str, dict[str, dict]] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        Changes.bump()
        if value is None:
            return
        g = CODEC.decode(value, "govbus.sharing.Grant").record
        self.by_resource.setdefault(g["resource_code"], {})[g["grant_id"]] = g

    def of(self, resource_code: str) -> list[dict]:
        return list(self.by_resource.get(resource_code, {}).values())

    def receives(self, department: str, resource_code: str) -> bool:
        return any(g["grantee"] == department for g in self.of(resource_code))


class CaseFlagsView:
    """Per datum (resource, subject), its open verification and objection cases and the corrections owed on it."""

    def __init__(self) -> None:
        self.by_datum: dict[tuple[str, str], dict] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key:
                resource, _, subject = key.decode().partition("|")
                self.by_datum.pop((resource, subject), None)
            return
        rec = CODEC.decode(value, "govbus.cases.DatumFlags").record
        self.by_datum[(rec["resource_code"], rec["subject_id"])] = rec


class OpenGrantsView:
    """Approved conditional open requests by resource: the parties whose open feed receives it."""

    def __init__(self) -> None:
        self.by_resource: dict[str, dict[str, dict]] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        g = CODEC.decode(value, "govbus.open.OpenGrant").record
        self.by_resource.setdefault(g["resource_code"], {})[g["grant_id"]] = g

    def of(self, resource_code: str) -> list[dict]:
        return [g for g in self.by_resource.get(resource_code, {}).values() if not g["revoked"]]


catalog = CatalogView()
grants = GrantsView()
case_flags = CaseFlagsView()
open_grants = OpenGrantsView()
catalog_view = CompactedView(SETTINGS.bootstrap, registry.name_of(registry.CATALOG, PREFIX), catalog.apply)
grants_view = CompactedView(SETTINGS.bootstrap, registry.name_of(registry.GRANTS, PREFIX), grants.apply)
case_flags_view = CompactedView(SETTINGS.bootstrap, registry.name_of(registry.CASE_FLAGS, PREFIX), case_flags.apply)
open_grants_view = CompactedView(SETTINGS.bootstrap, registry.name_of(registry.OPEN_GRANTS, PREFIX), open_grants.apply)
VIEWS = (subscription_view, calendar_view, catalog_view, grants_view, case_flags_view, open_grants_view)
VIEW_FOLLOWER = ViewFollower(SETTINGS.bootstrap, VIEWS)  # one consumer follows them all


@app.task
async def start_views() -> None:
    await VIEW_FOLLOWER.start()
    await VIEW_FOLLOWER.wait_ready()
    ready = os.environ.get("GOVBUS_READY_FILE")
    if ready:
        Path(ready).write_text("ready\n")


@app.on_before_shutdown.connect
async def stop_views(app, **kwargs) -> None:  # noqa: ARG001
    await VIEW_FOLLOWER.stop()


metrics_port = int(os.environ.get("GOVBUS_METRICS_PORT", "0"))
if metrics_port:
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from prometheus_client import REGISTRY

    # faust's own sensor, served beside the domain metrics: what the agents received, processed,
    # sent and committed, their tables' operations, rebalances. It sees only what goes through
    # faust; the delivery stream has its own consumer and producer, so the hot path pays nothing.
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(REGISTRY, metrics.FAUST_PREFIX))

    @app.task
    async def serve_metrics() -> None:
        metrics.serve(metrics_port, "worker")
