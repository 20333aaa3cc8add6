"""CPU seconds spent by the stack under test: this process (the embedded stack and the timed worker run
in it) plus every live descendant process (the emulator stack's functions and emulators).

CPU time, unlike wall time, hardly moves when other work shares the machine, so the CPU a task costs
is the figure that shows whether the stack got cheaper on a machine whose speed wanders.

The thread that opens and closes a window is the bench's client (it triggers over HTTP and waits): in
real use that is the user's CLI, a process of its own, so its CPU is kept apart (``client_s``) and the
stack's figure (``stack_s``) leaves it out.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class CpuSample:
    own_s: float  # this process, user + system, plus children it has reaped
    children_s: float  # live descendants, user + system (+ what they reaped)
    client_s: float = 0.0  # of own_s, the thread that took the sample (the bench's client)

    @property
    def total_s(self) -> float:
        return self.own_s + self.children_s

    @property
    def stack_s(self) -> float:
        """Everything but the client's thread."""
        return self.total_s - self.client_s

    def __sub__(self, other: CpuSample) -> CpuSample:
        return CpuSample(
            self.own_s - other.own_s, self.children_s - other.children_s, self.client_s - other.client_s
        )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        kids = parents.get(todo.pop(), [])
        out.extend(kids)
        todo.extend(kids)
    return out


def _own_s() -> float:
    # getrusage counts in microseconds (os.times in clock ticks, 10 ms here).
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def _children_s() -> float:
    children = 0.0
    for pid in _descendants(os.getpid()):
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime are fields 14-17 of /proc/<pid>/stat (11-14 after the name).
            children += sum(int(v) for v in fields[11:15]) * _TICK_S
    return children


# Finding the descendants reads all of /proc (about 10 ms of CPU here): this process's own clock is
# read after that scan when a window opens and before it when the window closes, so the meter's own
# work stays outside every window it measures.


def sample() -> CpuSample:
    """CPU used so far by this process and its live descendants (opening a window)."""
    children = _children_s()
    client = time.thread_time()
    return CpuSample(_own_s(), children, client)


def sample_end() -> CpuSample:
    """The same, closing a window."""
    own = _own_s()
    client = time.thread_time()
    return CpuSample(own, _children_s(), client)
