"""A real Prometheus server (Debian's `prometheus` package) as a child process on its own port and data
directory, scraping govbus's processes and evaluating ops/prometheus/alerts.yml."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from ops.stack import StackError
from topics.settings import METRICS_PORTS, PROMETHEUS_PORT, REPO_ROOT, Settings, metrics_port, port_setting

PROMETHEUS = Path("/usr/bin/prometheus")
RULES = REPO_ROOT / "ops" / "prometheus" / "alerts.yml"

def default_targets() -> list[tuple[str, int]]:
    """The govbus jobs on the ports their processes serve (from the environment, as they read them)."""
    return [(f"govbus-{process}", metrics_port(process)) for process in METRICS_PORTS]


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration, which takes no fractions ("1s", "500ms")."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def config(targets: Iterable[tuple[str, int]], scrape_interval: float = 5.0,
           evaluation_interval: float | None = None, rule_files: Sequence[Path] = (RULES,)) -> dict:
    """A Prometheus configuration scraping each (job, port) on 127.0.0.1."""
    return {
        "global": {
            "scrape_interval": duration(scrape_interval),
            # Prometheus refuses a timeout longer than the interval
            "scrape_timeout": duration(min(scrape_interval, 10.0)),
            "evaluation_interval": duration(evaluation_interval or scrape_interval),
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                           for job, port in targets],
    }


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# the alerts page people read: Debian's Prometheus serves the server-rendered pages only (none at /alerts)
ALERTS_PAGE = "/classic/alerts"


class LocalPrometheus:
    """Prometheus on 127.0.0.1:port with its configuration, data and log in `home` (by default
    <state dir>/prometheus). A server left over from a killed run is stopped and started afresh,
    since its configuration may differ."""

    def __init__(self, settings: Settings, *, port: int | None = None,
                 targets: Iterable[tuple[str, int]] | None = None, scrape_interval: float = 5.0,
                 evaluation_interval: float | None = None, rule_files: Sequence[Path] = (RULES,),
                 home: Path | None = None):
        self.port = port or port_setting(*PROMETHEUS_PORT)
        self.targets = list(targets if targets is not None else default_targets())
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_files = tuple(rule_files)
        self.home = home or settings.state_dir / "prometheus"
        self.data = self.home / "data"
        self.config_file = self.home / "prometheus.yml"
        self.logfile = self.home / "prometheus.log"
        self.pidfile = self.home / "prometheus.pid"
        self.url = f"http://127.0.0.1:{self.port}"
        self.alerts_page = self.url + ALERTS_PAGE
        self.proc: subprocess.Popen | None = None

    def write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        conf = config(self.targets, self.scrape_interval, self.evaluation_interval, self.rule_files)
        self.config_file.write_text(yaml.safe_dump(conf, sort_keys=False))
        return self.config_file

    def argv(self) -> list[str]:
        """The server's command line (with its configuration written by `write_config`)."""
        self.data.mkdir(parents=True, exist_ok=True)
        return [str(PROMETHEUS), f"--config.file={self.config_file}", f"--storage.tsdb.path={self.data}",
                f"--web.listen-address=127.0.0.1:{self.port}"]

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        # a recycled pid belongs to someone else; a zombie of ours is no longer running
        if str(self.config_file).encode() not in cmdline:
            return None
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z":
                return None
        except OSError:
            return None
        return pid

    async def start(self, timeout: float = 60.0) -> None:
        if not PROMETHEUS.exists():
            raise StackError(f"{PROMETHEUS} is missing: run `make install` (or `sudo apt-get install prometheus`)")
        await self.stop()
        if _port_taken(self.port):
            raise StackError(f"port {self.port} is taken; set GOVBUS_PROMETHEUS_PORT to another")
        self.write_config()
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.home,
                start_new_session=True,
            )
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while not await self.ready():
            if self.proc.poll() is not None:
                raise StackError(f"Prometheus exited with {self.proc.returncode}:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                await self.stop()
                raise StackError(f"Prometheus not ready on {self.url} within {timeout:.0f}s; see {self.logfile}")
            await asyncio.sleep(0.2)

    async def stop(self, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):  # it may exit between the look and the signal
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while self.pid() is not None and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                if self.pid() is not None:
                    os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
            self.proc = None
        self.pidfile.unlink(missing_ok=True)

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _get(self, path: str, **params: str):
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:  # the API explains a refused query in its JSON body
            return exc.code, exc.read()

    async def ready(self) -> bool:
        try:
            status, _ = await asyncio.to_thread(self._get, "/-/ready")
        except (OSError, urllib.error.URLError):
            return False
        return status == 200

    async def _api(self, path: str, **params: str):
        _, body = await asyncio.to_thread(self._get, path, **params)
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise StackError(f"Prometheus {path}: {answer.get('error', answer)}")
        return answer["data"]

    async def alerts(self, name: str | None = None) -> list[dict]:
        """Active alerts (pending or firing) from /api/v1/alerts, only those named `name` if given."""
        found = (await self._api("/api/v1/alerts"))["alerts"]
        return [a for a in found if name is None or a["labels"].get("alertname") == name]

    async def query(self, expr: str) -> list[dict]:
        """An instant query's result vector."""
        return (await self._api("/api/v1/query", query=expr))["result"]
