"""A real Prometheus with the shipped alert rules, scraping a real ledger process: the operator is told
when the ledger stops."""

import asyncio
import socket
import time
from contextlib import ExitStack

import pytest

from ops.prometheus_server import LocalPrometheus
from tests.helpers import LedgerProcess, chromium_dom

pytestmark = pytest.mark.integration


def free_ports(n: int) -> list[int]:
    with ExitStack() as held:  # all bound at once, so no two are the same
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@pytest.fixture
def ports():
    return free_ports(2)


@pytest.fixture
def scraped_ledger(bus, tmp_path, ports):
    ledger = LedgerProcess(bus, tmp_path / "ledger.log", port=ports[0])
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
async def test_ledger_down_fires_when_the_ledger_stops(scraped_ledger, prometheus, tmp_path):
    # the first scrape waits for Prometheus's target discovery (up to 5 s) and the ledger's start
    await eventually(lambda: prometheus.query('up{job="govbus-ledger"} == 1'), 120,
                     f"the ledger was not scraped; its log:\n{scraped_ledger.tail()}")
    assert scraped_ledger.proc.poll() is None, scraped_ledger.tail()
    await asyncio.sleep(3)  # a few evaluations with the ledger up
    assert await prometheus.alerts("LedgerDown") == []

    scraped_ledger.kill()
    stopped = time.monotonic()

    async def firing():
        return [a for a in await prometheus.alerts("LedgerDown") if a["state"] == "firing"]

    alerts = await eventually(firing, 90, "LedgerDown did not fire")
    # 20 s of `for:` after the first failed scrape, and no sooner
    assert 20 <= time.monotonic() - stopped < 90
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["labels"]["instance"] == f"127.0.0.1:{scraped_ledger.port}"
    assert "not being recorded" in alerts[0]["annotations"]["summary"]
    # and on the page `govbus run` names for the alerts, as an operator's browser shows it
    page = chromium_dom(prometheus.alerts_page, tmp_path)
    assert "404 page not found" not in page and "LedgerDown" in page, page[:2000]
