"""The CPU time the benches count for a process: all its threads, to well under the 10 ms clock tick of /proc, so
that a few hundred publications through the pass-through do not read as no CPU at all."""

import os
import subprocess
import sys
import time

from ops.bench.pipeline import cpu_seconds


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_process_cpu_is_counted_to_less_than_a_tick():
    before, own = cpu_seconds([os.getpid()]), time.process_time()
    burn(0.003)  # less than one clock tick of /proc/PID/stat
    spent, own = cpu_seconds([os.getpid()]) - before, time.process_time() - own
    assert spent >= 0.003 and abs(spent - own) < 0.001


def test_every_thread_of_another_process_is_counted():
    child = subprocess.Popen([sys.executable, "-c", "import sys, threading, time\n"
                              "def burn():\n  end = time.thread_time() + 0.05\n  while time.thread_time() < end: pass\n"
                              "ts = [threading.Thread(target=burn) for _ in range(2)]\n"
                              "[t.start() for t in ts]; [t.join() for t in ts]\n"
                              "print('done', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "done\n"
        assert cpu_seconds([child.pid]) >= 0.1  # the two threads' 50 ms each, though they have ended
        assert cpu_seconds([child.pid, os.getpid()]) > cpu_seconds([child.pid])
    finally:
        child.stdin.close()
        child.wait(10)
