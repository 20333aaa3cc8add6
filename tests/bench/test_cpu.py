"""The bench's CPU meter: this process's CPU and its live children's, apart."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import _cpu


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_own_cpu_is_counted() -> None:
    before = _cpu.sample()
    _spin(0.2)
    used = _cpu.window(before)
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
        used = _cpu.window(before)
        assert used.children_s >= 0.1
        assert used.own_s < used.children_s
    finally:
        child.communicate(b"\n", timeout=10)


def test_the_meter_keeps_its_own_work_out_of_the_window() -> None:
    # An empty window costs far less than one scan of /proc (several ms of CPU).
    windows = []
    for _ in range(5):
        start = _cpu.sample()
        windows.append(_cpu.window(start).own_s)
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
    used = _cpu.window(before)
    assert used.client_s >= 0.15
    assert used.stack_s >= 0.15
    assert abs(used.stack_s + used.client_s - used.total_s) < 1e-9


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.01)


# Spins argv[2] s, says so (argv[1]/ready), waits for argv[1]/go, spins argv[3] s, says so (spun), waits
# for argv[1]/end when argv[4] is "stay", then exits.
_SPINNER = """
import os, sys, time
def spin(s):
    end = time.process_time() + s
    while time.process_time() < end: pass
def wait(name):
    while not os.path.exists(os.path.join(sys.argv[1], name)): time.sleep(0.01)
def say(name):
    open(os.path.join(sys.argv[1], name), "w").close()
spin(float(sys.argv[2])); say("ready"); wait("go"); spin(float(sys.argv[3])); say("spun")
if sys.argv[4] == "stay": wait("end")
"""


def test_a_child_that_exits_and_is_reaped_inside_the_window_keeps_its_cpu_in_the_childrens_figure(
    tmp_path: Path,
) -> None:
    # The child spins 0.3 s before the window and 0.3 s inside it, then exits and is reaped (here, by
    # this process) before the window closes: its 0.3 s inside the window are the children's, the
    # 0.3 s before it nobody's (a meter that summed the live children at both ends went negative).
    child = subprocess.Popen([sys.executable, "-c", _SPINNER, str(tmp_path), "0.3", "0.3", "exit"])
    _wait_for(tmp_path / "ready")
    before = _cpu.sample()
    (tmp_path / "go").touch()
    assert child.wait(timeout=30) == 0
    used = _cpu.window(before)
    assert 0.25 <= used.children_s < 0.5
    assert used.own_s < 0.2


def test_a_grandchild_its_parent_left_behind_inside_the_window_is_still_counted(tmp_path: Path) -> None:
    # The child starts a spinner and exits inside the window: the spinner, reparented, is no
    # descendant any more, yet what it spends inside the window is the stack's CPU.
    launcher = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', *sys.argv[1:]])\n"
        "sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", launcher, _SPINNER, str(tmp_path), "0", "0.4", "stay"], stdin=subprocess.PIPE
    )
    try:
        _wait_for(tmp_path / "ready")
        before = _cpu.sample()
        child.communicate(b"\n", timeout=30)  # the child exits and is reaped: the spinner is orphaned
        (tmp_path / "go").touch()
        _wait_for(tmp_path / "spun")
        used = _cpu.window(before)
        assert used.children_s >= 0.3
    finally:
        (tmp_path / "end").touch()


def test_several_windows_add_up_to_one_per_task_figure() -> None:
    # A short chain's CPU is every timed run's (bench.e2e.run_chains): one run of three tasks is a few
    # tens of milliseconds, which one stray pause of the process moves by a fifth.
    from bench.cost import cpu_results
    from bench.e2e import RunMeasure

    windows = [_cpu.CpuSample(0.030, 0.0, 0.003), _cpu.CpuSample(0.024, 0.0, 0.003)]
    total = _cpu.total(windows)
    assert (round(total.stack_s, 6), round(total.client_s, 6)) == (0.048, 0.006)
    m = RunMeasure(("r",), 3, 0.1, 0.1, (), cpu=total, cpu_tasks=6)
    assert cpu_results("embedded.chain3", m)["cpu.embedded.chain3.ms_per_task"] == 8.0
