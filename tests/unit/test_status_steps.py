"""`govbus status` names a process that runs while every step it tries fails, from the process's own metrics."""

import asyncio
import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from ops.status import failing_steps, problems, steps_of


def served(failing: int, failures: int) -> int:
    """A metrics page as a process serves it, on a free port of this machine."""
    registry = CollectorRegistry()
    Gauge("govbus_step_failing", "", ["process"], registry=registry).labels("deadlines").set(failing)
    Counter("govbus_step_failures", "", ["process"], registry=registry).labels("deadlines").inc(failures)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start_http_server(port, addr="127.0.0.1", registry=registry)
    return port


def report_with(procs: list[dict]) -> dict:
    return {"broker": {"reachable": True, "bootstrap": "b"}, "database": {"reachable": True, "dsn": "d"},
            "supervisor": {"state": "running", "running": True}, "processes": procs, "consumer_groups": [],
            "max_lag": 1000, "quarantine": None}


def test_a_process_whose_last_step_failed_is_named_one_that_recovered_is_not():
    failing = {"name": "deadlines", "running": True, "crash_looping": False, "state": "running",
               "metrics": f"127.0.0.1:{served(1, 7)}"}
    recovered = {"name": "deadlines", "running": True, "crash_looping": False, "state": "running",
                 "metrics": f"127.0.0.1:{served(0, 7)}"}
    asyncio.run(failing_steps([failing, recovered]))
    assert (failing["step_failing"], failing["step_failures"]) == (True, 7)
    assert recovered["step_failing"] is False
    (said,) = problems(report_with([failing]))
    assert said.startswith("deadlines runs, but its last step failed (7 failed since it started)")
    assert problems(report_with([recovered])) == []


def test_the_page_of_another_process_says_nothing_of_this_one():
    text = 'govbus_step_failing{process="worker"} 1.0\ngovbus_step_failures_total{process="worker"} 3.0\n'
    assert steps_of(text, "deadlines") == (False, 0)
    assert steps_of(text, "worker") == (True, 3)
