"""Where govbus finds its broker, its database and its local state, from the environment; the defaults run the
local stack."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# where each process serves its metrics on 127.0.0.1 unless its variable says otherwise
METRICS_PORTS = {"worker": ("GOVBUS_METRICS_PORT", 9464), "ledger": ("GOVBUS_LEDGER_METRICS_PORT", 9465),
                 "deadlines": ("GOVBUS_DEADLINES_METRICS_PORT", 9466),
                 "supervisor": ("GOVBUS_SUPERVISOR_METRICS_PORT", 9467)}
PROMETHEUS_PORT = ("GOVBUS_PROMETHEUS_PORT", 9090)


def port_setting(var: str, default: int) -> int:
    value = os.environ.get(var) or str(default)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{var}={value!r} is not a port number") from None


def metrics_port(process: str) -> int:
    """The port a process serves its metrics on (0: none)."""
    return port_setting(*METRICS_PORTS[process])


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str | None
    database_url: str | None
    state_dir: Path
    kafka_port: int
    pg_port: int
    topic_prefix: str

    @property
    def local_kafka(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def local_postgres(self) -> bool:
        return self.database_url is None

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def dsn(self) -> str:
        return self.database_url or f"postgresql://postgres@127.0.0.1:{self.pg_port}/govbus"


def settings() -> Settings:
    env = os.environ
    return Settings(
        kafka_bootstrap=env.get("GOVBUS_KAFKA_BOOTSTRAP") or None,
        database_url=env.get("GOVBUS_DATABASE_URL") or None,
        state_dir=Path(env.get("GOVBUS_STATE_DIR") or REPO_ROOT / ".govbus" / "run"),
        kafka_port=int(env.get("GOVBUS_KAFKA_PORT", "19092")),
        pg_port=int(env.get("GOVBUS_PG_PORT", "15432")),
        topic_prefix=env.get("GOVBUS_TOPIC_PREFIX", ""),
    )
