"""The local stack: a real Kafka (KRaft; one node, or a cluster of three) and a real PostgreSQL, started on demand.

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
import socket
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path

from topics.acls import ADMIN
from topics.registry import replication
from topics.settings import REPO_ROOT, KafkaSecurity, Settings, SettingsError, read_properties, security_from_properties

log = logging.getLogger("govbus.stack")

KAFKA_DIR = REPO_ROOT / "ops" / "kafka"
KAFKA_LIBS = KAFKA_DIR / "libs"
SINGLE_HEAP = "1g"
CLUSTER_HEAP = "512m"  # each node of a local cluster: three fit a small machine beside the bus


def jvm_options(heap: str) -> tuple[str, ...]:
    """The broker's JVM as Kafka's own start script runs it: short collector pauses (G1 aims at 20 ms, not its
    default 200 ms), a fixed heap; its pauses are logged to gc.log beside kafka.log."""
    return ("-server", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true")


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


class KafkaNode:
    """One combined broker+controller of the local stack: node i listens for clients on kafka_port + 2(i-1) and for
    the controller quorum on the next port; node 1 keeps its files in <state>/kafka, node i in <state>/kafka-i."""

    def __init__(self, settings: Settings, node_id: int):
        self.node_id = node_id
        self.port = settings.kafka_port + 2 * (node_id - 1)
        self.controller_port = self.port + 1
        self.home = settings.state_dir / ("kafka" if node_id == 1 else f"kafka-{node_id}")
        self.data = self.home / "data"
        self.props = self.home / "server.properties"
        self.pidfile = self.home / "kafka.pid"
        self.logfile = self.home / "kafka.log"
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def java(self, *args: str) -> list[str]:
        return ["java", f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}", "-cp", f"{KAFKA_LIBS}/*",
                *args]

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and "kafka.Kafka" in cmdline(pid):
            return pid
        return None

    def spawn(self, heap: str) -> subprocess.Popen:
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                ["java", *jvm_options(heap), f"-Xlog:gc:file={self.home / 'gc.log'}:time:filecount=3,filesize=10m",
                 *self.java("kafka.Kafka", str(self.props))[1:]],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(str(self.proc.pid))
        return self.proc

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
        _reap(pid)
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a lost machine: nothing flushed, no controlled shutdown."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.05)
            _reap(pid)
        self.pidfile.unlink(missing_ok=True)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def _reap(pid: int) -> None:
    try:  # reap it when it was our own child
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class LocalKafka:
    """The local stack's Kafka: one combined broker+controller (the default), or a cluster of `kafka_brokers` of
    them with a quorum of as many controllers, assembled from Maven Central jars and secured as a production cluster
    is: SASL/SCRAM-SHA-512 on the client listeners (between the brokers too), the KRaft StandardAuthorizer denying
    what no ACL allows, the admin the only super user (with the controller listeners' own PLAIN principal, as KRaft
    cannot use SCRAM there)."""

    def __init__(self, settings: Settings):
        self.brokers = settings.kafka_brokers
        self.nodes = [KafkaNode(settings, i) for i in range(1, self.brokers + 1)]
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_port + 1
        self.state_dir = settings.state_dir
        self.home = settings.state_dir / "kafka"
        self.secrets_file = self.home / "secrets.json"
        self.layout_file = self.home / "brokers"  # how many nodes the data was formatted for
        self.bootstrap = ",".join(n.bootstrap for n in self.nodes)
        self.replication = replication(self.brokers)
        self.tls = settings.kafka_tls
        self.tls_dir = self.home / "tls"
        self.ca_file = self.tls_dir / "ca.pem"  # what clients check the brokers' certificates against
        self.server_pem = self.tls_dir / "broker.pem"  # the brokers' key and certificate chain

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def secrets(self) -> dict[str, str]:
        """The admin's and the controller listener's passwords, made once per stack (every node takes the same)."""
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

    def admin_properties(self) -> Path:
        return self.state_dir / "admin.properties"

    def write_admin_properties(self) -> None:
        """The admin's credentials for operators' tools: Java's (--command-config) and librdkafka's (kcat -F)."""
        sec = self.admin_security()
        write_secret(self.admin_properties(), java_properties(self.bootstrap, sec))
        write_secret(self.state_dir / "admin.librdkafka.properties", librdkafka_properties(self.bootstrap, sec))

    def ensure_jars(self) -> None:
        if (KAFKA_LIBS / "kafka_2.13-3.9.1.jar").exists() and any(KAFKA_LIBS.glob("reload4j-*.jar")):
            return
        if shutil.which("java") is None or shutil.which("mvn") is None:
            _apt_install("default-jdk-headless", "maven")
        log.info("fetching the Kafka broker jars through Maven")
        _run(["mvn", "-B", "-q", "package"], cwd=KAFKA_DIR)

    def _write_config(self, node: KafkaNode) -> None:
        node.home.mkdir(parents=True, exist_ok=True)
        pw = self.secrets()
        client = "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        tls = []
        if self.tls:
            self.ensure_certificates()
            tls = ["ssl.keystore.type=PEM", f"ssl.keystore.location={self.server_pem}",
                   "ssl.truststore.type=PEM", f"ssl.truststore.location={self.ca_file}"]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        rep = self.replication
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        write_secret(node.props,
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={node.node_id}",
                    f"controller.quorum.voters={voters}",
                    f"listeners=CLIENT://127.0.0.1:{node.port},"
                    f"CONTROLLER://127.0.0.1:{node.controller_port}",
                    f"advertised.listeners=CLIENT://127.0.0.1:{node.port}",
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
                    f"log.dirs={node.data}",
                    "num.partitions=1",
                    # the replication the bus relies on (topics.registry.replication), for the broker's own topics
                    # and any topic not declared in topics/ alike; a replica out of sync never becomes leader
                    f"default.replication.factor={rep.factor}",
                    f"min.insync.replicas={rep.min_insync}",
                    "unclean.leader.election.enable=false",
                    f"offsets.topic.replication.factor={rep.factor}",
                    "offsets.topic.num.partitions=8",
                    f"transaction.state.log.replication.factor={rep.factor}",
                    f"transaction.state.log.min.isr={rep.min_insync}",
                    "group.initial.rebalance.delay.ms=0",
                    # topics are declared in topics/ and created by `govbus topics apply`
                    "auto.create.topics.enable=false",
                    "log.retention.check.interval.ms=60000",
                    "",
                ]
            ))
        (node.home / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
            "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={node.home / 'server.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )

    def check_layout(self) -> None:
        """Refuse to start N nodes on data formatted for another number of them: the quorum is in the data."""
        formatted = [n for n in self.nodes if (n.data / "meta.properties").exists()]
        if not formatted:
            return
        try:
            had = int(self.layout_file.read_text())
        except (OSError, ValueError):
            had = 1  # formatted before the stack could run more than one broker
        if had != self.brokers:
            homes = ", ".join(str(self.state_dir / ("kafka" if i == 1 else f"kafka-{i}")) for i in range(1, had + 1))
            raise StackError(f"the local Kafka in {self.state_dir} was formatted for {had} broker(s), not "
                             f"{self.brokers}: run `govbus down`, remove {homes} (its topics are lost) and start "
                             f"again, or start it with --brokers {had}")

    def _format_once(self) -> None:
        marker = self.home / "secured"
        formatted = [n.node_id for n in self.nodes if (n.data / "meta.properties").exists()]
        if len(formatted) == len(self.nodes) and marker.exists():
            self.layout_file.write_text(f"{self.brokers}\n")
            return
        if formatted and not marker.exists():
            # formatted before the broker required credentials: no admin could log in to it
            log.info("the local broker's data predates its credentials; formatting it anew")
        elif formatted:
            log.info("nodes %s of the local cluster have no data; formatting all of them anew",
                     sorted(set(range(1, self.brokers + 1)) - set(formatted)))
        for n in self.nodes:
            shutil.rmtree(n.data, ignore_errors=True)
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read a leading '-' as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # the admin's SCRAM credential is in the metadata log from the first record on, on every node; every other
        # principal is created through it
        scram = f"SCRAM-SHA-512=[name={ADMIN},password={self.secrets()['admin']}]"
        for n in self.nodes:
            _run(n.java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(n.props),
                        "--add-scram", scram))
        self.layout_file.write_text(f"{self.brokers}\n")
        marker.touch()

    async def reset(self) -> None:
        """Stop the brokers and forget all their data (the test suite starts each session from nothing)."""
        await self.stop()
        for n in self.nodes:
            shutil.rmtree(n.data, ignore_errors=True)
        (self.home / "secured").unlink(missing_ok=True)
        self.layout_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        """The first node's process (the only one of a single broker)."""
        return self.nodes[0].pid()

    async def answers(self, timeout: float = 3.0, bootstrap: str | None = None, brokers: int = 1) -> bool:
        """True when the cluster answers a metadata request naming at least `brokers` brokers (an open port is not
        enough)."""
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(bootstrap_servers=bootstrap or self.bootstrap,
                                request_timeout_ms=int(timeout * 1000), **self.client_options())
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            return len(client.cluster.brokers()) >= brokers
        except Exception:
            return False
        finally:
            await client.close()

    async def start(self, timeout: float = 90.0) -> None:
        """Start every node not running (a running cluster is reused) and wait until each is a broker of it."""
        self.ensure_jars()
        self.check_layout()
        running = [n for n in self.nodes if n.pid()]
        if len(running) == len(self.nodes) and await self.answers(brokers=self.brokers):
            log.info("Kafka already running on %s", self.bootstrap)
            self.write_admin_properties()
            return
        if len(running) == len(self.nodes):
            await self.stop()  # half-dead brokers from a killed run
        for n in self.nodes:
            self._write_config(n)
        if not running:
            self._format_once()
        await asyncio.gather(*(self.start_node(n.node_id, timeout) for n in self.nodes if not n.pid()))
        deadline = time.monotonic() + timeout
        while not await self.answers(brokers=self.brokers):
            if time.monotonic() > deadline:
                raise StackError(f"Kafka on {self.bootstrap} has not all its {self.brokers} brokers after "
                                 f"{timeout:.0f}s; see {self.home / 'server.log'}")
            await asyncio.sleep(0.5)
        self.write_admin_properties()

    async def start_node(self, node_id: int, timeout: float = 90.0) -> None:
        """Start one node (again, after a stop or a kill) and wait until it answers as a broker."""
        node = self.node(node_id)
        await node.stop()  # a half-dead node from a killed run
        self._write_config(node)
        proc = node.spawn(SINGLE_HEAP if self.brokers == 1 else CLUSTER_HEAP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"Kafka node {node_id} exited with {proc.returncode}; see {node.logfile} and "
                                 f"{node.home / 'server.log'}")
            # the port first: a client's failed connections would fill the log while the JVM starts
            if port_open(node.port) and await self.answers(bootstrap=node.bootstrap):
                log.info("Kafka up on %s (node %s, pid %s)", node.bootstrap, node_id, proc.pid)
                return
            await asyncio.sleep(0.5)
        raise StackError(f"Kafka did not answer on {node.bootstrap} within {timeout:.0f}s; see {node.logfile}")

    async def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node; False when none was running."""
        if not any(n.pid() for n in self.nodes):
            for n in self.nodes:
                n.pidfile.unlink(missing_ok=True)
            return False
        await asyncio.gather(*(n.stop(timeout) for n in self.nodes))
        log.info("Kafka stopped")
        return True

    async def quorum(self, timeout: float = 60.0) -> dict:
        """The metadata quorum as the cluster describes it: {"leader": node id, "epoch": n, "voters": [ids]}."""
        proc = await asyncio.create_subprocess_exec(
            "java", "-Xmx128m", "-cp", f"{KAFKA_LIBS}/*", str(KAFKA_DIR / "MetadataQuorum.java"),
            str(self.admin_properties()), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise StackError(f"the metadata quorum was not described within {timeout:.0f}s") from None
        if proc.returncode != 0:
            raise StackError(f"describing the metadata quorum failed ({proc.returncode}): {err.decode()[-2000:]}")
        return json.loads(out.decode().strip().splitlines()[-1])


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

    async def stop(self) -> bool:
        """Stop the cluster; False when it was not running."""
        bindir = pg_bindir()
        if bindir is None:
            return False
        self._layout()
        if not self.running(bindir):
            return False
        _run([*self._as_owner(), str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        log.info("PostgreSQL stopped")
        return True


# --------------------------------------------------------------------------- the stack


async def up(settings: Settings) -> Settings:
    """Start what is local (concurrently), then apply topics, ACLs and migrations and give the bus's processes
    their credentials; returns the settings as the stack's admin uses them."""
    from ops import db
    from topics.admin import apply_topics

    starts = []
    kafka = LocalKafka(settings) if settings.local_kafka else None
    if kafka:
        kafka.check_layout()  # a refusal before anything starts: nothing is left running for it
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
    """The registry's ACLs on the broker, and, for the local stack, the bus's processes' credentials in files only
    they (and whoever runs the stack) read: the password a file already holds is set again, so that `up` on a
    running stack leaves its processes connected; a process without a file gets a new one."""
    from topics.access import apply_acls, issue_passwords
    from topics.acls import PROCESSES, process_principal

    await apply_acls(settings)
    if not settings.local_kafka:
        return  # a production cluster's operator hands out the processes' credentials (README)
    names = {p: process_principal(p, settings.topic_prefix) for p in PROCESSES}
    passwords = await issue_passwords(settings, list(names.values()), keep={
        name: sec.password for process, name in names.items()
        if (sec := _written(process_credentials(settings, process))) is not None and sec.username == name})
    for process, name in names.items():
        sec = replace(settings.kafka_security, username=name, password=passwords[name])
        write_secret(process_credentials(settings, process), java_properties(settings.bootstrap, sec))


def _written(path: Path) -> KafkaSecurity | None:
    """The credentials a properties file of the stack holds, or None when there is none to read."""
    try:
        return security_from_properties(read_properties(path)) if path.exists() else None
    except SettingsError:
        return None


async def down(settings: Settings) -> list[str]:
    """Stop the local Kafka and PostgreSQL; what was running and is stopped now."""
    stopped = []
    if settings.local_kafka and await LocalKafka(settings).stop():
        stopped.append("Kafka")
    if settings.local_postgres and await LocalPostgres(settings).stop():
        stopped.append("PostgreSQL")
    return stopped
