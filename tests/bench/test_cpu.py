"""The bench's CPU meter: this process's CPU and its live children's, apart."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from bench import _cpu


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_own_cpu_is_counted() -> None:
    before = _cpu.sample()
    _spin(0.2)
    used = _cpu.sample_end() - before
    assert used.own_s >= 0.15
    assert used.total_s >= used.own_s


def test_a_live_child_process_cpu_is_counted_apart() -> None:
    spin = (
        "import time\nend = time.process_time() + 0.5\n"
        "while time.process_time() < end: pass\nprint(1, flush=True)\ninput()"
    )
    child = subprocess.Popen([sys.executable, "-c", spin], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        before = _cpu.sample()
        assert child.stdout is not None
        child.stdout.readline()  # the child has spun and waits, still alive
        used = _cpu.sample_end() - before
        assert used.children_s >= 0.1
        assert used.own_s < used.children_s
    finally:
        child.communicate(b"\n", timeout=10)


def test_the_meter_keeps_its_own_work_out_of_the_window() -> None:
    # An empty window costs far less than one scan of /proc (several ms of CPU).
    windows = []
    for _ in range(5):
        start = _cpu.sample()
        windows.append((_cpu.sample_end() - start).own_s)
    assert min(windows) < 0.002


def test_the_thread_that_opens_the_window_is_the_client_and_counted_apart_from_the_stack() -> None:
    # The bench drives the embedded stack from its own thread (trigger over HTTP, waits): that is the
    # user's client, a process of its own in real use, not the stack's CPU.
    def spin_thread(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    before = _cpu.sample()
    spin_thread(0.2)  # the client
    stack = threading.Thread(target=spin_thread, args=(0.2,))
    stack.start()
    stack.join()
    used = _cpu.sample_end() - before
    assert used.client_s >= 0.15
    assert used.stack_s >= 0.15
    assert abs(used.stack_s + used.client_s - used.total_s) < 1e-9
