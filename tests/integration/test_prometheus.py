"""A real Prometheus with the shipped alert rules, scraping a real ledger process: the operator is told
when the ledger stops."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from ops.prometheus_server import LocalPrometheus
from topics.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def free_ports(n: int) -> list[int]:
    with ExitStack() as held:  # all bound at once, so no two are the same
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


class Ledger:
    """`govbus ledger run` as a child process, serving its metrics on `port`."""

    def __init__(self, bus, port: int, log: Path):
        self.port, self.log = port, log
        self.env = {**os.environ, "GOVBUS_LEDGER_METRICS_PORT": str(port), "GOVBUS_TOPIC_PREFIX": bus.prefix,
                    "GOVBUS_KAFKA_BOOTSTRAP": bus.settings.bootstrap, "GOVBUS_DATABASE_URL": bus.settings.dsn}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(Path(sys.executable).parent / "govbus"), "ledger", "run"],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=REPO_ROOT)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def ports():
    return free_ports(2)


@pytest.fixture
def ledger_process(bus, tmp_path, ports):
    ledger = Ledger(bus, ports[0], tmp_path / "ledger.log")
    ledger.start()
    yield ledger
    ledger.kill()


@pytest.fixture
async def prometheus(stack, tmp_path, ports):
    prom = LocalPrometheus(stack, port=ports[1], targets=[("govbus-ledger", ports[0])], scrape_interval=1,
                           evaluation_interval=1, home=tmp_path / "prometheus")
    await prom.start()
    yield prom
    await prom.stop()


async def eventually(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f}s")
        await asyncio.sleep(0.5)


@pytest.mark.rule("R-8.1")
async def test_ledger_down_fires_when_the_ledger_stops(ledger_process, prometheus):
    # the first scrape waits for Prometheus's target discovery (up to 5 s) and the ledger's start
    await eventually(lambda: prometheus.query('up{job="govbus-ledger"} == 1'), 120,
                     f"the ledger was not scraped; its log:\n{ledger_process.tail()}")
    assert ledger_process.proc.poll() is None, ledger_process.tail()
    await asyncio.sleep(3)  # a few evaluations with the ledger up
    assert await prometheus.alerts("LedgerDown") == []

    ledger_process.kill()
    stopped = time.monotonic()

    async def firing():
        return [a for a in await prometheus.alerts("LedgerDown") if a["state"] == "firing"]

    alerts = await eventually(firing, 90, "LedgerDown did not fire")
    # 20 s of `for:` after the first failed scrape, and no sooner
    assert 20 <= time.monotonic() - stopped < 90
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["labels"]["instance"] == f"127.0.0.1:{ledger_process.port}"
    assert "not being recorded" in alerts[0]["annotations"]["summary"]
