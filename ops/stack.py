"""The local stack: a real single-node Kafka (KRaft) and a real PostgreSQL, started on demand.

Both run from a project-local state directory on their own ports, so they never fight a
system service, and both are reused when a previous run left them up (or restarted when
it was killed half-way). A configured GOVBUS_KAFKA_BOOTSTRAP / GOVBUS_DATABASE_URL skips
the corresponding local service entirely.
"""

from __future__ import annotations

import asyncio
import base64
import glob
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from topics.settings import REPO_ROOT, Settings

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
    """A combined broker+controller assembled from Maven Central jars."""

    def __init__(self, settings: Settings):
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_port + 1
        self.home = settings.state_dir / "kafka"
        self.data = self.home / "data"
        self.props = self.home / "server.properties"
        self.pidfile = self.home / "kafka.pid"
        self.logfile = self.home / "kafka.log"
        self.bootstrap = f"127.0.0.1:{self.port}"

    def ensure_jars(self) -> None:
        if (KAFKA_LIBS / "kafka_2.13-3.9.1.jar").exists() and any(KAFKA_LIBS.glob("reload4j-*.jar")):
            return
        if shutil.which("java") is None or shutil.which("mvn") is None:
            _apt_install("default-jdk-headless", "maven")
        log.info("fetching the Kafka broker jars through Maven")
        _run(["mvn", "-B", "-q", "package"], cwd=KAFKA_DIR)

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
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
            )
        )
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
        if (self.data / "meta.properties").exists():
            return
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read a leading '-' as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        _run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.props)))

    async def reset(self) -> None:
        """Stop the broker and forget all its data (the test suite starts each session from nothing)."""
        await self.stop()
        shutil.rmtree(self.data, ignore_errors=True)

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

        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(timeout * 1000))
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


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class LocalPostgres:
    """A PostgreSQL cluster from Debian's package, in a project-local data directory."""

    def __init__(self, settings: Settings):
        self.port = settings.pg_port
        self.home = settings.state_dir / "postgres"
        self.dsn = settings.dsn

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
        bindir = _pg_bindir()
        if bindir is None:
            _apt_install("postgresql")
            bindir = _pg_bindir()
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
        if not self.running(bindir):
            opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                    "-c fsync=on -c max_connections=200 -c shared_buffers=256MB")
            _run([*self._as_owner(), str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                  "-w", "-t", "60", "-o", opts, "start"])
        await self._create_database()
        log.info("PostgreSQL up on 127.0.0.1:%s", self.port)

    async def _create_database(self) -> None:
        import asyncpg

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
                break
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'govbus'"):
                await conn.execute("CREATE DATABASE govbus")
        finally:
            await conn.close()

    async def stop(self) -> None:
        bindir = _pg_bindir()
        if bindir is None:
            return
        self._layout()
        if self.running(bindir):
            _run([*self._as_owner(), str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
            log.info("PostgreSQL stopped")


# --------------------------------------------------------------------------- the stack


async def up(settings: Settings) -> None:
    """Start what is local (concurrently), then apply topics and migrations."""
    from ops import db
    from topics.admin import apply_topics

    starts = []
    if settings.local_kafka:
        starts.append(LocalKafka(settings).start())
    if settings.local_postgres:
        starts.append(LocalPostgres(settings).start())
    await asyncio.gather(*starts)
    await apply_topics(settings)
    await db.migrate(settings.dsn)


async def down(settings: Settings) -> None:
    if settings.local_kafka:
        await LocalKafka(settings).stop()
    if settings.local_postgres:
        await LocalPostgres(settings).stop()
