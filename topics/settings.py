"""Where govbus finds its broker (and the credentials it shows it), its database and its local state, from the
environment; the defaults run the local stack."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


class SettingsError(ValueError):
    """A setting that cannot be used as given; the message names it."""


@dataclass(frozen=True)
class KafkaSecurity:
    """How a client proves who it is to the broker: a SASL/SCRAM principal, optionally over TLS."""

    protocol: str = "PLAINTEXT"  # PLAINTEXT | SASL_PLAINTEXT | SASL_SSL | SSL
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # PEM bundle the broker's certificate is checked against (TLS only)

    def __repr__(self) -> str:  # never print a password into a log
        return f"KafkaSecurity({self.protocol}, {self.mechanism}, user={self.username!r})"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str | None
    database_url: str | None
    state_dir: Path
    kafka_port: int
    pg_port: int
    topic_prefix: str
    kafka_security: KafkaSecurity = KafkaSecurity()
    kafka_tls: bool = False  # the local broker's client listener takes SASL_SSL, with a CA the stack makes
    # the local stack's brokers (GOVBUS_KAFKA_BROKERS, `govbus up --brokers`): node i takes client port
    # kafka_port + 2(i-1) and the next one for its controller
    kafka_brokers: int = 1

    @property
    def local_kafka(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def local_postgres(self) -> bool:
        return self.database_url is None

    @property
    def bootstrap(self) -> str:
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        return ",".join(f"127.0.0.1:{self.kafka_port + 2 * i}" for i in range(self.kafka_brokers))

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        password = local_pg_password(self.state_dir)
        return f"postgresql://postgres{':' + password if password else ''}@127.0.0.1:{self.pg_port}/govbus"


    @property
    def dsn_shown(self) -> str:
        """The DSN with its password masked, for a console or a log."""
        parts = urlsplit(self.dsn)
        if parts.password is None:
            return self.dsn
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def local_kafka_brokers(state_dir: Path) -> int:
    """How many brokers the local stack in `state_dir` was formatted with (1 before its first start)."""
    try:
        return max(1, int((state_dir / "kafka" / "brokers").read_text()))
    except (OSError, ValueError):
        return 1


def local_pg_password(state_dir: Path) -> str | None:
    """The password the local stack gave its PostgreSQL (None before its first start)."""
    try:
        return (state_dir / "postgres.password").read_text().strip() or None
    except OSError:
        return None


def read_properties(path: Path) -> dict[str, str]:
    """A Java or librdkafka client properties file: `key=value` lines, `#` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"GOVBUS_KAFKA_CONFIG={path}: {exc.strerror}") from None
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def security_from_properties(props: dict[str, str]) -> KafkaSecurity:
    """The credentials of a client properties file, in either style (Java's sasl.jaas.config or librdkafka's
    sasl.username / sasl.password)."""
    username, password = props.get("sasl.username"), props.get("sasl.password")
    jaas = props.get("sasl.jaas.config", "")
    for field in ("username", "password"):
        marker = f'{field}="'
        if marker in jaas:
            value = jaas.split(marker, 1)[1].split('"', 1)[0]
            username, password = (value, password) if field == "username" else (username, value)
    return KafkaSecurity(
        protocol=props.get("security.protocol", "SASL_PLAINTEXT" if username else "PLAINTEXT").upper(),
        mechanism=props.get("sasl.mechanism") or props.get("sasl.mechanisms") or "SCRAM-SHA-512",
        username=username, password=password,
        ca_file=props.get("ssl.ca.location") or props.get("ssl.truststore.location"),
    )


def kafka_security(env=os.environ, state_dir: Path | None = None) -> KafkaSecurity:
    """GOVBUS_KAFKA_CONFIG (a client properties file) or GOVBUS_KAFKA_USERNAME / _PASSWORD
    (/ _SECURITY_PROTOCOL / _SASL_MECHANISM / _CA_FILE); with neither, the local stack's admin.properties."""
    path = env.get("GOVBUS_KAFKA_CONFIG")
    if path:
        sec = security_from_properties(read_properties(Path(path)))
    elif env.get("GOVBUS_KAFKA_USERNAME"):
        sec = KafkaSecurity(protocol="SASL_PLAINTEXT", username=env["GOVBUS_KAFKA_USERNAME"],
                            password=env.get("GOVBUS_KAFKA_PASSWORD"))
    elif not env.get("GOVBUS_KAFKA_BOOTSTRAP") and state_dir is not None and (state_dir / "admin.properties").exists():
        sec = security_from_properties(read_properties(state_dir / "admin.properties"))
    else:
        sec = KafkaSecurity()
    return KafkaSecurity(
        protocol=(env.get("GOVBUS_KAFKA_SECURITY_PROTOCOL") or sec.protocol).upper(),
        mechanism=env.get("GOVBUS_KAFKA_SASL_MECHANISM") or sec.mechanism,
        username=sec.username, password=sec.password,
        ca_file=env.get("GOVBUS_KAFKA_CA_FILE") or sec.ca_file,
    )


def kafka_options(s: Settings | None = None) -> dict:
    """The keyword arguments every aiokafka client of govbus is built with: who it is and how it talks."""
    sec = (s or settings()).kafka_security
    if sec.protocol == "PLAINTEXT":
        return {}
    options: dict = {"security_protocol": sec.protocol}
    if sec.protocol.startswith("SASL"):
        if not sec.username or not sec.password:
            raise SettingsError(f"security protocol {sec.protocol} needs a username and a password: set "
                                "GOVBUS_KAFKA_CONFIG to a client properties file, or GOVBUS_KAFKA_USERNAME and "
                                "GOVBUS_KAFKA_PASSWORD")
        options.update(sasl_mechanism=sec.mechanism, sasl_plain_username=sec.username,
                       sasl_plain_password=sec.password)
    if sec.protocol.endswith("SSL"):
        options["ssl_context"] = ssl_context(sec.ca_file)
    return options


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"the CA file {ca_file} cannot be read: {exc}") from None


def settings() -> Settings:
    env = os.environ
    state_dir = Path(env.get("GOVBUS_STATE_DIR") or REPO_ROOT / ".govbus" / "run")
    return Settings(
        kafka_bootstrap=env.get("GOVBUS_KAFKA_BOOTSTRAP") or None,
        database_url=env.get("GOVBUS_DATABASE_URL") or None,
        state_dir=state_dir,
        kafka_port=int(env.get("GOVBUS_KAFKA_PORT", "19092")),
        pg_port=int(env.get("GOVBUS_PG_PORT", "15432")),
        topic_prefix=env.get("GOVBUS_TOPIC_PREFIX", ""),
        kafka_security=kafka_security(env, state_dir),
        kafka_tls=env.get("GOVBUS_KAFKA_TLS", "").lower() in ("1", "true", "yes", "on"),
        kafka_brokers=brokers_setting(env, state_dir),
    )


def brokers_setting(env, state_dir: Path) -> int:
    value = env.get("GOVBUS_KAFKA_BROKERS")
    if not value:
        return local_kafka_brokers(state_dir)
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise SettingsError(f"GOVBUS_KAFKA_BROKERS={value!r} is not a number of brokers (1 or more)")
    return count


async def delivered(sends) -> list[BaseException | None]:
    """The broker's answer to each send (the futures `producer.send` returned): None for a record written, else why
    it was not. A producer's `flush()` waits for them too, but says nothing of a record the broker refused."""
    import asyncio

    return [r if isinstance(r, BaseException) else None for r in await asyncio.gather(*sends, return_exceptions=True)]


async def all_delivered(sends) -> None:
    """Wait until the broker has every record of `sends` (as `delivered`), and raise the first refusal."""
    for error in await delivered(sends):
        if error is not None:
            raise error


async def start_client(client):
    """`await client.start()` for an aiokafka client; when the start fails (no broker, credentials refused), what it
    opened is stopped before the error goes on, so that nothing is left connected, nor reported unclosed later."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    return client
