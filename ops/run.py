"""`govbus run`: the whole bus on one machine, its processes supervised (restarted when they exit), and the demo
of ops/demo.py; Ctrl-C stops the demo, the processes in reverse order, then Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from ops.supervisor import ChildSpec, Supervisor
from topics import settings as config
from topics.settings import METRICS_PORTS, Settings

log = logging.getLogger("govbus.run")


class RunError(RuntimeError):
    """`govbus run` cannot start; the message says why and what to do."""


def metrics_port(process: str) -> int:
    try:
        return config.metrics_port(process)
    except ValueError as exc:
        raise RunError(str(exc)) from None


def child_specs(settings: Settings, *, prometheus: bool = True) -> list[ChildSpec]:
    """The supervised processes, in start order (they are stopped in the reverse one).

    The Prometheus server (ops/prometheus_server.py) belongs at the end of this list when `prometheus`
    is true: it scrapes the metrics addresses of the processes before it and of the supervisor."""
    govbus = str(Path(sys.executable).parent / "govbus")

    def spec(name: str, argv: list[str]) -> ChildSpec:
        var, _ = METRICS_PORTS[name]
        port = metrics_port(name)
        return ChildSpec(name, argv, {var: str(port), **credentials(settings, name)}, port)

    specs = [
        spec("worker", [sys.executable, "-m", "streams", "worker", "-l", "info"]),
        spec("ledger", [govbus, "ledger", "run"]),
        spec("deadlines", [govbus, "deadlines", "run"]),
    ]
    if prometheus:
        from ops.prometheus_server import PROMETHEUS, LocalPrometheus

        if not PROMETHEUS.exists():
            raise RunError(f"{PROMETHEUS} is missing: run `make install`, or start with --no-prometheus")
        server = LocalPrometheus(settings)
        server.write_config()
        specs.append(ChildSpec("prometheus", server.argv(), {}, server.port))
    return specs


def credentials(settings: Settings, process: str) -> dict[str, str]:
    """Each bus process as its own principal: the local stack's file for it (written by `stack.up`), or the one
    GOVBUS_<PROCESS>_KAFKA_CONFIG names on a production cluster; else it inherits the caller's credentials."""
    from ops.stack import process_credentials

    if settings.local_kafka:
        return {"GOVBUS_KAFKA_CONFIG": str(process_credentials(settings, process))}
    own = os.environ.get(f"GOVBUS_{process.upper()}_KAFKA_CONFIG")
    return {"GOVBUS_KAFKA_CONFIG": own} if own else {}


async def run_all(settings: Settings, *, demo: bool = True, prometheus: bool = True) -> None:
    """The stack, the supervised processes and (unless `demo` is false) the demo, until SIGINT or SIGTERM."""
    from ops import stack
    from ops.demo import run_demo
    from topics import metrics

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    specs = child_specs(settings, prometheus=prometheus)
    port = metrics_port("supervisor")
    try:
        metrics.serve(port, "supervisor")
    except OSError as exc:
        raise RunError(f"the supervisor cannot serve its metrics on 127.0.0.1:{port} ({exc.strerror}): is another "
                       "`govbus run` up? Stop it, or set GOVBUS_SUPERVISOR_METRICS_PORT") from None
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(specs, settings.state_dir, metrics_address=f"127.0.0.1:{port}" if port else None)
    supervisor.reap_stale()
    settings = await stack.up(settings)
    await supervisor.start()
    print(f"\ngovbus is running: kafka {settings.bootstrap}, postgres {settings.dsn_shown}")
    if settings.local_kafka:
        print(f"admin:    {settings.state_dir / 'admin.properties'} (kcat: admin.librdkafka.properties)")
    served = [(s.name, s.metrics) for s in specs if s.metrics]
    if port:
        served.append(("supervisor", f"127.0.0.1:{port}"))
    for i, (name, addr) in enumerate(served):
        print(f"{'metrics:' if i == 0 else '':9} {name:11} http://{addr}/metrics")
    if prometheus:
        from ops.prometheus_server import ALERTS_PAGE

        print(f"alerts:   http://127.0.0.1:{specs[-1].metrics_port}{ALERTS_PAGE}")
    print(f"logs:     {settings.state_dir}\nhealth:   govbus status")
    print("Ctrl-C stops everything.\n", flush=True)
    demo_task = asyncio.create_task(run_demo(settings, stop)) if demo else None
    if demo_task is not None:
        demo_task.add_done_callback(_demo_ended)
    try:
        await stop.wait()
    finally:
        print("\nstopping ...", flush=True)
        if demo_task is not None:
            demo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await demo_task
        await supervisor.stop()
        await stack.down(settings)
        print("stopped.", flush=True)


def _demo_ended(task: asyncio.Task) -> None:
    # the bus goes on without the demo; without this line its failure would only show at Ctrl-C
    if not task.cancelled() and task.exception() is not None:
        log.warning("the demo stopped: %s", task.exception())
