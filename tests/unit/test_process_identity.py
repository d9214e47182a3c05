"""A pid names a process only together with its start time: status must not take the supervisor or a child
for dead because of how it was invoked, nor for alive because another process was given its pid."""

import subprocess
import sys

from ops.stack import start_ticks
from ops.supervisor import same_process


def test_a_running_process_is_itself_whatever_its_command_line():
    # `python -m pytest` with no arguments records sys.argv == [".../pytest/__main__.py"], which its
    # /proc cmdline ("python -m pytest") does not contain; identity must not depend on it
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = start_ticks(proc.pid)
        assert started is not None and started > 0
        assert same_process(proc.pid, started)
        # the same pid with another start time is another process
        assert not same_process(proc.pid, started + 1)
        assert not same_process(proc.pid, None)
    finally:
        proc.kill()
        proc.wait()
    assert not same_process(proc.pid, started)


def test_no_pid_is_no_process():
    assert not same_process(None, 1)
    assert not same_process(0, 1)
    assert start_ticks(2**22 + 12345) is None
