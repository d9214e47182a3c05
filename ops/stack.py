"""The local stack: a real single-node Kafka (KRaft) and a real PostgreSQL, started on demand.

Both run from a project-local state directory on their own ports, secured (SASL/SCRAM and ACLs on the
broker, a password on the database's TCP port), and are reused when a previous run left them up.
A configured GOVBUS_KAFKA_BOOTSTRAP / GOVBUS_DATABASE_URL skips the corresponding local service.
"""

from __future__ import annotations

import asyncio
import base64
import glob
import hashlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path

from topics.acls import ADMIN
from topics.settings import REPO_ROOT, KafkaSecurity, Settings

log = logging.getLogger("govbus.stack")

KAFKA_DIR = REPO_ROOT / "ops" / "kafka"
KAFKA_LIBS = KAFKA_DIR / "libs"
# the broker's JVM as Kafka's own start script runs it: short collector pauses (G1 aims at 20 ms,
# not its default 200 ms), a fixed heap; its pauses are logged to gc.log beside kafka.log
JVM_OPTIONS = ("-server", "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-Djava.awt.headless=true")


class StackError(RuntimeError):
    """A local service could not be installed or started; the message says what to do."""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise StackError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
    return res


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise StackError(f"missing {', '.join(packages)}: run `sudo apt-get install {' '.join(packages)}`")
    log.info("installing %s from Debian's packages", ", ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-q"], env=env)
    _run(["apt-get", "install", "-y", "-q", *packages], env=env)


def write_secret(path: Path, text: str) -> None:
    """A file only its owner reads, written whole (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def java_properties(bootstrap: str, sec: KafkaSecurity) -> str:
    """A Java client's properties (kafka-*.sh --command-config, any JVM client) for these credentials."""
    lines = [f"bootstrap.servers={bootstrap}", f"security.protocol={sec.protocol}", f"sasl.mechanism={sec.mechanism}",
             "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
             f'username="{sec.username}" password="{sec.password}";']
    if sec.ca_file:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={sec.ca_file}"]
    return "\n".join(lines) + "\n"


def librdkafka_properties(bootstrap: str, sec: KafkaSecurity) -> str:
    """The same for librdkafka clients (kcat -F, confluent-kafka)."""
    lines = [f"bootstrap.servers={bootstrap}", f"security.protocol={sec.protocol}", f"sasl.mechanisms={sec.mechanism}",
             f"sasl.username={sec.username}", f"sasl.password={sec.password}",
             # keys to partitions as Java's and aiokafka's clients do: one subject, one partition (docs/architecture.md)
             "partitioner=murmur2_random"]
    if sec.ca_file:
        lines.append(f"ssl.ca.location={sec.ca_file}")
    return "\n".join(lines) + "\n"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); it is not running
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def start_ticks(pid: int) -> int | None:
    """When the process began, in clock ticks since boot (/proc/PID/stat field 22): with the pid it names one
    process for good, since a later process given the same pid starts later."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --------------------------------------------------------------------------- Kafka


class LocalKafka:
    """A combined broker+controller assembled from Maven Central jars, secured as a production cluster is:
    SASL/SCRAM-SHA-512 on the client listener, the KRaft StandardAuthorizer denying what no ACL allows, the admin
    the only super user (with the controller listener's own PLAIN principal, as KRaft cannot use SCRAM there)."""

    def __init__(self, settings: Settings):
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_port + 1
        self.state_dir = settings.state_dir
        self.home = settings.state_dir / "kafka"
        self.data = self.home / "data"
        self.props = self.home / "server.properties"
        self.pidfile = self.home / "kafka.pid"
        self.logfile = self.home / "kafka.log"
        self.secrets_file = self.home / "secrets.json"
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.tls = settings.kafka_tls
        self.tls_dir = self.home / "tls"
        self.ca_file = self.tls_dir / "ca.pem"  # what clients check the broker's certificate against
        self.server_pem = self.tls_dir / "broker.pem"  # the broker's key and certificate chain

    def secrets(self) -> dict[str, str]:
        """The admin's and the controller listener's passwords, made once per broker."""
        try:
            return json.loads(self.secrets_file.read_text())
        except (OSError, ValueError):
            made = {"admin": secrets.token_urlsafe(24), "controller": secrets.token_urlsafe(24)}
            write_secret(self.secrets_file, json.dumps(made))
            return made

    def admin_security(self) -> KafkaSecurity:
        if self.tls:
            return KafkaSecurity(protocol="SASL_SSL", username=ADMIN, password=self.secrets()["admin"],
                                 ca_file=str(self.ca_file))
        return KafkaSecurity(protocol="SASL_PLAINTEXT", username=ADMIN, password=self.secrets()["admin"])

    def client_options(self) -> dict:
        from topics.settings import ssl_context

        sec = self.admin_security()
        options = {"security_protocol": sec.protocol, "sasl_mechanism": sec.mechanism,
                   "sasl_plain_username": sec.username, "sasl_plain_password": sec.password}
        if self.tls:
            options["ssl_context"] = ssl_context(sec.ca_file)
        return options

    def ensure_certificates(self) -> None:
        """A CA of the stack's own and a broker certificate it signed for 127.0.0.1 and localhost, made once."""
        if self.ca_file.exists() and self.server_pem.exists():
            return
        from ops.tls import make_ca_and_server

        ca_pem, server_pem = make_ca_and_server(["127.0.0.1", "localhost"])
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        write_secret(self.server_pem, server_pem)
        self.ca_file.write_text(ca_pem)

    def write_admin_properties(self) -> None:
        """The admin's credentials for operators' tools: Java's (--command-config) and librdkafka's (kcat -F)."""
        sec = self.admin_security()
        write_secret(self.state_dir / "admin.properties", java_properties(self.bootstrap, sec))
        write_secret(self.state_dir / "admin.librdkafka.properties", librdkafka_properties(self.bootstrap, sec))

    def ensure_jars(self) -> None:
        if (KAFKA_LIBS / "kafka_2.13-3.9.1.jar").exists() and any(KAFKA_LIBS.glob("reload4j-*.jar")):
            return
        if shutil.which("java") is None or shutil.which("mvn") is None:
            _apt_install("default-jdk-headless", "maven")
        log.info("fetching the Kafka broker jars through Maven")
        _run(["mvn", "-B", "-q", "package"], cwd=KAFKA_DIR)

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        pw = self.secrets()
        client = "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        tls = []
        if self.tls:
            self.ensure_certificates()
            tls = ["ssl.keystore.type=PEM", f"ssl.keystore.location={self.server_pem}",
                   "ssl.truststore.type=PEM", f"ssl.truststore.location={self.ca_file}"]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        write_secret(self.props,
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=CLIENT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=CLIENT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:{client}",
                    *tls,
                    "inter.broker.listener.name=CLIENT",
                    "sasl.enabled.mechanisms=SCRAM-SHA-512",
                    "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                    f'listener.name.client.scram-sha-512.sasl.jaas.config={scram} username="{ADMIN}" '
                    f'password="{pw["admin"]}";',
                    # SCRAM credentials live in the metadata the controller serves, so the controller listener
                    # takes PLAIN with a static user (Kafka's KRaft documentation)
                    "sasl.mechanism.controller.protocol=PLAIN",
                    "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                    f'listener.name.controller.plain.sasl.jaas.config={plain} username="controller" '
                    f'password="{pw["controller"]}" user_controller="{pw["controller"]}";',
                    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    "allow.everyone.if.no.acl.found=false",
                    f"super.users=User:{ADMIN};User:controller",
                    f"log.dirs={self.data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=8",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # topics are declared in topics/ and created by `govbus topics apply`
                    "auto.create.topics.enable=false",
                    "log.retention.check.interval.ms=60000",
                    "",
                ]
            ))
        (self.home / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
            "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={self.home / 'server.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            *args,
        ]

    def _format_once(self) -> None:
        marker = self.home / "secured"
        if (self.data / "meta.properties").exists():
            if marker.exists():
                return
            # formatted before the broker required credentials: no admin could log in to it
            log.info("the local broker's data predates its credentials; formatting it anew")
            shutil.rmtree(self.data, ignore_errors=True)
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read a leading '-' as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # the admin's SCRAM credential is in the metadata log from the first record on; every other
        # principal is created through it
        scram = f"SCRAM-SHA-512=[name={ADMIN},password={self.secrets()['admin']}]"
        _run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.props),
                        "--add-scram", scram))
        marker.touch()

    async def reset(self) -> None:
        """Stop the broker and forget all its data (the test suite starts each session from nothing)."""
        await self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        (self.home / "secured").unlink(missing_ok=True)

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and "kafka.Kafka" in cmdline(pid):
            return pid
        return None

    async def answers(self, timeout: float = 3.0) -> bool:
        """True when the broker answers a metadata request (an open port is not enough)."""
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(timeout * 1000),
                                **self.client_options())
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            return bool(client.cluster.brokers())
        except Exception:
            return False
        finally:
            await client.close()

    async def start(self, timeout: float = 90.0) -> None:
        self.ensure_jars()
        if self.pid() and await self.answers():
            log.info("Kafka already running on %s", self.bootstrap)
            self.write_admin_properties()
            return
        await self.stop()  # a half-dead broker from a killed run
        self._write_config()
        self._format_once()
        with open(self.logfile, "ab") as out:
            proc = subprocess.Popen(
                ["java", *JVM_OPTIONS, f"-Xlog:gc:file={self.home / 'gc.log'}:time:filecount=3,filesize=10m",
                 *self._java("kafka.Kafka", str(self.props))[1:]],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(
                    f"Kafka exited with {proc.returncode}; see {self.logfile} and {self.home / 'server.log'}")
            if await self.answers():
                log.info("Kafka up on %s (pid %s)", self.bootstrap, proc.pid)
                self.write_admin_properties()
                return
            await asyncio.sleep(0.5)
        raise StackError(f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s; see {self.logfile}")

    async def stop(self, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        try:  # reap it when it was our own child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        self.pidfile.unlink(missing_ok=True)
        log.info("Kafka stopped")


# --------------------------------------------------------------------------- PostgreSQL


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class LocalPostgres:
    """A PostgreSQL cluster from Debian's package, in a project-local data directory."""

    def __init__(self, settings: Settings):
        self.port = settings.pg_port
        self.home = settings.state_dir / "postgres"
        self.password_file = settings.state_dir / "postgres.password"

    def _as_owner(self) -> list[str]:
        # PostgreSQL refuses to run as root; the package's `postgres` account runs it then.
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _layout(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.home)], check=True)
            except subprocess.CalledProcessError:
                pw = pwd.getpwnam("postgres")
                os.chown(self.home, pw.pw_uid, pw.pw_gid)
            if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.home)]).returncode:
                # the checkout sits where the postgres account cannot reach (e.g. under /root)
                digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:10]
                self.home = Path("/var/tmp") / f"govbus-pg-{digest}"
                self.home.mkdir(parents=True, exist_ok=True)
                pw = pwd.getpwnam("postgres")
                os.chown(self.home, pw.pw_uid, pw.pw_gid)
        self.data = self.home / "data"
        self.sock = self.home
        self.logfile = self.home / "postgres.log"

    def ensure_installed(self) -> Path:
        bindir = pg_bindir()
        if bindir is None:
            _apt_install("postgresql")
            bindir = pg_bindir()
        if bindir is None:
            raise StackError("PostgreSQL binaries not found after installing the `postgresql` package")
        return bindir

    def running(self, bindir: Path) -> bool:
        return (
            subprocess.run(
                [*self._as_owner(), str(bindir / "pg_ctl"), "-D", str(self.data), "status"],
                capture_output=True,
            ).returncode
            == 0
        )

    async def start(self) -> None:
        bindir = self.ensure_installed()
        self._layout()
        if not (self.data / "PG_VERSION").exists():
            _run([*self._as_owner(), str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        hba_changed = self._write_hba()
        if not self.running(bindir):
            # the socket, which trusts its local users, only for the cluster's own account
            opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0700 "
                    "-c fsync=on -c max_connections=200 -c shared_buffers=256MB")
            _run([*self._as_owner(), str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                  "-w", "-t", "60", "-o", opts, "start"])
        elif hba_changed:
            _run([*self._as_owner(), str(bindir / "pg_ctl"), "-D", str(self.data), "reload"])
        await self._create_database()
        log.info("PostgreSQL up on 127.0.0.1:%s", self.port)

    def _write_hba(self) -> bool:
        """Local socket connections trusted, TCP ones only with the password (scram-sha-256); True if changed."""
        hba = self.data / "pg_hba.conf"
        text = ("local all all trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
                "host all all ::1/128 scram-sha-256\n")
        if hba.exists() and hba.read_text() == text:
            return False
        hba.write_text(text)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(hba, pw.pw_uid, pw.pw_gid)
        return True

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except OSError:
            made = secrets.token_urlsafe(24)
            write_secret(self.password_file, made)
            return made

    async def _create_database(self) -> None:
        import asyncpg

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = await asyncpg.connect(host=str(self.sock), port=self.port, user="postgres", database="postgres")
                break
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        try:
            await conn.execute(f"ALTER ROLE postgres PASSWORD '{self.password()}'")  # url-safe: no quote in it
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'govbus'"):
                await conn.execute("CREATE DATABASE govbus")
        finally:
            await conn.close()

    async def stop(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            return
        self._layout()
        if self.running(bindir):
            _run([*self._as_owner(), str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
            log.info("PostgreSQL stopped")


# --------------------------------------------------------------------------- the stack


async def up(settings: Settings) -> Settings:
    """Start what is local (concurrently), then apply topics, ACLs and migrations and give the bus's processes
    their credentials; returns the settings as the stack's admin uses them."""
    from ops import db
    from topics.admin import apply_topics

    starts = []
    kafka = LocalKafka(settings) if settings.local_kafka else None
    if kafka:
        starts.append(kafka.start())
    if settings.local_postgres:
        starts.append(LocalPostgres(settings).start())
    await asyncio.gather(*starts)
    if kafka:
        settings = replace(settings, kafka_security=kafka.admin_security())
    await apply_topics(settings)
    await apply_access(settings)
    await db.migrate(settings.dsn)
    return settings


def process_credentials(settings: Settings, process: str) -> Path:
    """Where the local stack keeps a bus process's client properties (written by `up`)."""
    return settings.state_dir / "principals" / f"{process}.properties"


async def apply_access(settings: Settings) -> None:
    """The registry's ACLs on the broker, and, for the local stack, new passwords for the bus's processes in
    files only they (and whoever runs the stack) read."""
    from topics.access import apply_acls, issue_passwords
    from topics.acls import PROCESSES, process_principal

    await apply_acls(settings)
    if not settings.local_kafka:
        return  # a production cluster's operator hands out the processes' credentials (README)
    names = {p: process_principal(p, settings.topic_prefix) for p in PROCESSES}
    passwords = await issue_passwords(settings, list(names.values()))
    for process, name in names.items():
        sec = replace(settings.kafka_security, username=name, password=passwords[name])
        write_secret(process_credentials(settings, process), java_properties(settings.bootstrap, sec))


async def down(settings: Settings) -> None:
    if settings.local_kafka:
        await LocalKafka(settings).stop()
    if settings.local_postgres:
        await LocalPostgres(settings).stop()
