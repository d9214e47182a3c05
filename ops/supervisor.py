"""Child processes of `govbus run`, kept running: each is restarted when it exits, with a growing
delay, reported on the console and in the `govbus_process_*` metrics, and recorded in a state file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ops.stack import pid_alive, start_ticks
from topics import metrics
from topics.settings import REPO_ROOT

log = logging.getLogger("govbus.supervisor")

STATE_FILE = "processes.json"
TAIL_LINES = 10
# written into a child's log before each start, so the lines shown for a crash are that run's own
START_MARK = "---- govbus run starts "


@dataclass(frozen=True)
class ChildSpec:
    """What to run: `argv` with `env` added to the supervisor's environment; `metrics_port` is where
    the child serves its metrics (0: nowhere), recorded for `govbus status` and Prometheus."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int = 0

    @property
    def metrics(self) -> str | None:
        return f"127.0.0.1:{self.metrics_port}" if self.metrics_port else None


@dataclass(frozen=True)
class Backoff:
    """Delay before each restart: `initial`, doubled on every exit up to `maximum`; back to `initial` once
    a child has stayed up `reset_after` seconds. `crash_exits` exits within `crash_window` seconds make a
    child crash-looping: it is named on the console and retried every `maximum` seconds."""

    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 60.0
    crash_exits: int = 5
    crash_window: float = 120.0


def signal_name(returncode: int | None) -> str | None:
    """The signal that ended a process (a negative return code), by name."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_exit(returncode: int) -> str:
    sig = signal_name(returncode)
    return f"was killed by {sig}" if sig else f"exited with code {returncode}"


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last lines a child wrote since it was last started."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    mark = text.rfind(START_MARK)
    if mark >= 0:
        text = text[mark:].split("\n", 1)[1] if "\n" in text[mark:] else ""
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


def same_process(pid: int | None, started: int | None) -> bool:
    """True when `pid` is alive and is still the process that began at `started` (its start_ticks), not a
    later one that was given the same pid."""
    return bool(pid) and pid_alive(pid) and started is not None and start_ticks(pid) == started


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


@dataclass
class Child:
    spec: ChildSpec
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    state: str = "starting"  # running | restarting | stopped
    started_at: float | None = None
    restarts: int = 0
    delay: float = 0.0
    next_start_at: float | None = None
    crash_looping: bool = False
    exits: deque = field(default_factory=deque)
    last_exit: dict | None = None
    pid_start: int | None = None
    task: asyncio.Task | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    def as_json(self) -> dict:
        return {"name": self.spec.name, "pid": self.pid, "state": self.state, "started_at": _iso(self.started_at),
                "restarts": self.restarts, "metrics": self.spec.metrics, "log": str(self.log_path),
                "argv": list(self.spec.argv), "pid_start": self.pid_start, "crash_looping": self.crash_looping,
                "next_start_at": _iso(self.next_start_at), "last_exit": self.last_exit}


class Supervisor:
    """Starts the children in order, restarts each one that exits until `stop()`, which ends them in
    reverse order. Pid files under `state_dir/pids` let the next run clean up after a killed one."""

    def __init__(self, specs: Sequence[ChildSpec], state_dir: Path, *, backoff: Backoff | None = None,
                 metrics_address: str | None = None, stop_timeout: float = 20.0):
        self.state_dir = state_dir
        self.pid_dir = state_dir / "pids"
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = state_dir / STATE_FILE
        self.backoff = backoff or Backoff()
        self.metrics_address = metrics_address
        self.stop_timeout = stop_timeout
        self.started_at = time.time()
        self.children = [Child(spec, state_dir / f"{spec.name}.log") for spec in specs]
        self._stopping = asyncio.Event()
        self._stopped_at: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def reap_stale(self) -> None:
        """End children a killed run left behind (their pid files say which), so ports and groups are free."""
        for pidfile in self.pid_dir.glob("*.pid"):
            try:
                pid, started = (int(x) for x in pidfile.read_text().split())
            except ValueError:
                pid, started = 0, None
            if same_process(pid, started):
                log.info("stopping %s (pid %s) left over from an earlier run", pidfile.stem, pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            pidfile.unlink(missing_ok=True)

    async def start(self) -> None:
        """Start every child, in order, and watch them."""
        for child in self.children:
            metrics.PROCESS_RESTARTS.labels(child.spec.name)  # the series exists before the first restart
            metrics.PROCESS_UP.labels(child.spec.name).set(0)
            async with child.lock:
                await self._spawn(child)
            child.task = asyncio.create_task(self._watch(child), name=f"supervise-{child.spec.name}")
        self.write_state()

    async def stop(self) -> None:
        """No more restarts; end the children in reverse start order (SIGTERM, then SIGKILL after a while)."""
        self._stopping.set()
        for child in reversed(self.children):
            async with child.lock:
                await self._terminate(child)
                child.state = "stopped"
                child.next_start_at = None
            if child.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await child.task
            (self.pid_dir / f"{child.spec.name}.pid").unlink(missing_ok=True)
            metrics.PROCESS_UP.labels(child.spec.name).set(0)
            log.info("stopped %s", child.spec.name)
        self._stopped_at = time.time()
        self.write_state()

    async def _spawn(self, child: Child) -> bool:
        spec = child.spec
        now = time.time()
        with open(child.log_path, "ab") as out:
            out.write(f"{START_MARK}{spec.name} at {_iso(now)}: {' '.join(spec.argv)}\n".encode())
            out.flush()
            try:
                child.proc = await asyncio.create_subprocess_exec(
                    *spec.argv, stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                    env={**os.environ, **spec.env}, start_new_session=True, cwd=REPO_ROOT)
            except OSError as exc:
                # a program that cannot be started is a crash like any other: retried, with its cause shown
                out.write(f"cannot start {spec.argv[0]}: {exc}\n".encode())
                child.proc = None
                return False
        child.started_at = now
        child.pid_start = start_ticks(child.proc.pid)
        child.state = "running"
        child.next_start_at = None
        (self.pid_dir / f"{spec.name}.pid").write_text(f"{child.proc.pid} {child.pid_start}")
        metrics.PROCESS_UP.labels(spec.name).set(1)
        metrics.PROCESS_STARTED.labels(spec.name).set(now)
        if child.restarts:
            log.info("restarted %s (pid %s), restart %d, log in %s", spec.name, child.proc.pid, child.restarts,
                     child.log_path)
        else:
            log.info("started %s (pid %s), log in %s", spec.name, child.proc.pid, child.log_path)
        return True

    async def _terminate(self, child: Child) -> None:
        proc = child.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_timeout)
        except TimeoutError:
            log.warning("%s did not stop within %.0fs of SIGTERM; killing it", child.spec.name, self.stop_timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    # ------------------------------------------------------------------ restarts

    async def _watch(self, child: Child) -> None:
        while not self._stopping.is_set():
            if child.proc is not None:
                await self._wait_exit(child)
                if self._stopping.is_set():
                    return
                returncode = child.proc.returncode
                uptime = time.time() - (child.started_at or time.time())
            else:
                returncode, uptime = None, 0.0
            self._exited(child, returncode, uptime)
            try:
                await asyncio.wait_for(self._stopping.wait(), child.delay)
                return  # stopped while waiting: not restarted
            except TimeoutError:
                pass
            async with child.lock:
                if self._stopping.is_set():
                    return
                child.restarts += 1
                metrics.PROCESS_RESTARTS.labels(child.spec.name).inc()
                await self._spawn(child)
            self.write_state()

    async def _wait_exit(self, child: Child) -> None:
        """Until the child exits; once it has stayed up long enough its backoff starts over."""
        assert child.proc is not None
        try:
            await asyncio.wait_for(asyncio.shield(child.proc.wait()), self.backoff.reset_after)
            return
        except TimeoutError:
            pass
        if child.crash_looping:
            log.info("%s has stayed up %gs: no longer crash-looping", child.spec.name, self.backoff.reset_after)
        child.delay = 0.0
        child.crash_looping = False
        child.exits.clear()
        self.write_state()
        await child.proc.wait()

    def _exited(self, child: Child, returncode: int | None, uptime: float) -> None:
        b = self.backoff
        name = child.spec.name
        now = time.time()
        pid = child.proc.pid if child.proc is not None else None
        how = describe_exit(returncode) if returncode is not None else "could not be started"
        tail = log_tail(child.log_path)
        child.exits.append(now)
        while child.exits and now - child.exits[0] > b.crash_window:
            child.exits.popleft()
        child.delay = min(b.maximum, child.delay * 2 if child.delay else b.initial)
        was_looping = child.crash_looping
        if len(child.exits) >= b.crash_exits:
            child.crash_looping = True
            child.delay = b.maximum
        child.state = "restarting"
        child.next_start_at = now + child.delay
        child.last_exit = {"at": _iso(now), "pid": pid, "returncode": returncode, "signal": signal_name(returncode),
                           "description": how, "uptime_seconds": round(uptime, 1), "log_tail": tail}
        (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
        metrics.PROCESS_UP.labels(name).set(0)
        lines = "".join(f"\n    | {line}" for line in tail) or "\n    | (nothing)"
        if child.crash_looping and not was_looping:
            log.error("%s is crash-looping: %d exits within %gs, the last one %s; retrying every %gs. "
                      "Cause, the last lines of %s:%s", name, len(child.exits), b.crash_window, how, b.maximum,
                      child.log_path, lines)
        else:
            log.warning("%s (pid %s) %s after %.1fs up%s; restarting it in %gs. Last lines of %s:%s",
                        name, pid, how, uptime, " (crash-looping)" if child.crash_looping else "", child.delay,
                        child.log_path, lines)
        self.write_state()

    # ------------------------------------------------------------------ state file

    def write_state(self) -> None:
        """`state_dir/processes.json`, replaced whole so a reader never sees half of it."""
        state = {
            "supervisor": {"pid": os.getpid(), "pid_start": start_ticks(os.getpid()), "argv": sys.argv,
                           "started_at": _iso(self.started_at),
                           "metrics": self.metrics_address, "state": "stopped" if self._stopped_at else "running",
                           "stopped_at": _iso(self._stopped_at)},
            "processes": [c.as_json() for c in self.children],
            "updated_at": _iso(time.time()),
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=2))
        tmp.replace(self.state_path)


def read_state(state_dir: Path) -> dict | None:
    """The supervisor's state file, or None when no `govbus run` has written one here."""
    try:
        return json.loads((state_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateUnreadable(f"{state_dir / STATE_FILE} cannot be read: {exc}") from None


class StateUnreadable(RuntimeError):
    """The state file is there but not what `govbus run` writes."""
