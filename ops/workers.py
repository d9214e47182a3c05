"""A stream worker as a child process, for tests and benchmarks: started on a deployment's topic
prefix, ready once its views are loaded, stopped politely or killed. `start` and `stop` wait in place;
`started` and `stopped` wait without holding up the caller's event loop (clients and sinks running beside it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from topics.settings import REPO_ROOT


def terminate(proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """SIGTERM, and SIGKILL when the process has not ended within `timeout` seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class WorkerProcess:
    def __init__(self, prefix: str, workdir: Path, name: str = "worker", env: dict[str, str] | None = None):
        self.prefix = prefix
        self.ready = workdir / f"{name}.ready"
        self.log = workdir / f"{name}.log"
        self.datadir = workdir / f"{name}-data"
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        deadline = self._spawn(timeout)
        while not self._up(deadline):
            time.sleep(0.1)

    async def started(self, timeout: float = 120.0) -> None:
        deadline = self._spawn(timeout)
        while not self._up(deadline):
            await asyncio.sleep(0.1)

    def _spawn(self, timeout: float) -> float:
        self.ready.unlink(missing_ok=True)
        env = {**os.environ, "GOVBUS_TOPIC_PREFIX": self.prefix, "GOVBUS_READY_FILE": str(self.ready),
               "GOVBUS_WORKER_DATADIR": str(self.datadir), **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams", "worker", "-l", "info"],
                                         stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        return time.monotonic() + timeout

    def _up(self, deadline: float) -> bool:
        if self.ready.exists():
            return True
        if self.proc.poll() is not None or time.monotonic() > deadline:
            self.kill()  # never leave a half-started worker behind
            raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
        return False

    def stop(self) -> None:
        terminate(self.proc)

    async def stopped(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            self.kill()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
