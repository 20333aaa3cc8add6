"""CPU seconds spent by the stack under test: this process (the embedded stack and the timed worker run
in it) plus its descendant processes (the emulator stack's functions and emulators).

CPU time, unlike wall time, hardly moves when other work shares the machine, so the CPU a task costs
is the figure that shows whether the stack got cheaper on a machine whose speed wanders.

The thread that opens and closes a window is the bench's client (it triggers over HTTP and waits): in
real use that is the user's CLI, a process of its own, so its CPU is kept apart (``client_s``) and the
stack's figure (``stack_s``) leaves it out.

The descendants are counted process by process (a pid and its start time), from the CPU each had when
the window opened: summing the live ones at each end took a process that ended inside the window out of
the figure with all the CPU it had ever used (once −225 ms a task). A process that ended is counted
through whoever reaped it: the reaper's reaped-children CPU grew by the whole life of it, of which the
part before the window is taken off again. One that left the tree alive (its parent exited first) is
still read by its pid; one that then ended too is counted up to the window's opening, no further.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU used over one window."""

    own_s: float  # this process, user + system
    children_s: float  # its descendants, user + system, those that ended inside the window included
    client_s: float = 0.0  # of own_s, the thread that opened and closed the window (the bench's client)

    @property
    def total_s(self) -> float:
        return self.own_s + self.children_s

    @property
    def stack_s(self) -> float:
        """Everything but the client's thread."""
        return self.total_s - self.client_s


@dataclass(frozen=True, slots=True)
class _Proc:
    ppid: int
    used_s: float  # utime + stime
    reaped_s: float  # cutime + cstime: the whole lives of the children it reaped


# A process is its pid and its start time (a pid is reused once its process is gone).
_Key = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a window opened."""

    own_s: float
    reaped_s: float  # this process's reaped children
    client_s: float
    procs: Mapping[_Key, _Proc] = field(default_factory=dict)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def _proc(fields: list[str]) -> tuple[int, _Proc]:
    # ppid, utime, stime, cutime, cstime and starttime are fields 4, 14-17 and 22 of /proc/<pid>/stat
    # (1, 11-14 and 19 after the name).
    used = (int(fields[11]) + int(fields[12])) * _TICK_S
    reaped = (int(fields[13]) + int(fields[14])) * _TICK_S
    return int(fields[19]), _Proc(int(fields[1]), used, reaped)


def _descendants(root: int, also: Mapping[_Key, _Proc] | None = None) -> dict[_Key, _Proc]:
    """``root``'s descendants, and of ``also`` those still running elsewhere in the process tree."""
    stats: dict[int, list[str]] = {}
    parents: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            stats[int(entry.name)] = fields
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out: dict[_Key, _Proc] = {}
    todo = [root]
    while todo:
        for pid in parents.get(todo.pop(), []):
            started, proc = _proc(stats[pid])
            out[(pid, started)] = proc
            todo.append(pid)
    for pid, started in also or {}:
        if (pid, started) not in out and pid in stats:
            still, proc = _proc(stats[pid])
            if still == started:
                out[(pid, started)] = proc
    return out


def _own() -> tuple[float, float]:
    # getrusage counts in microseconds (os.times in clock ticks, 10 ms here).
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, reaped.ru_utime + reaped.ru_stime


def _children_s(mark: Mark, now: Mapping[_Key, _Proc], reaped_s: float) -> float:
    me = os.getpid()
    # What each reaper (this process: pid 0 here) reaped inside the window, from which the CPU its
    # reaped children had used before the window is taken off.
    reaped: dict[int, float] = {0: reaped_s - mark.reaped_s}
    used = 0.0
    alive = {pid for pid, _ in now}
    for key, proc in now.items():
        before = mark.procs.get(key)
        used += proc.used_s - (before.used_s if before else 0.0)
        reaped[key[0]] = proc.reaped_s - (before.reaped_s if before else 0.0)
    ppids = {pid: proc.ppid for (pid, _), proc in mark.procs.items()}
    for key, proc in mark.procs.items():
        if key in now:
            continue
        # It ended: its reaper is its nearest ancestor still running (this process at the top). One
        # reparented out of the tree was reaped by none of them: clamped below, it counts as nothing.
        reaper = proc.ppid
        while reaper != me and reaper not in alive and reaper in ppids:
            reaper = ppids[reaper]
        if reaper == me or reaper in alive:
            reaper = 0 if reaper == me else reaper
            reaped[reaper] -= proc.used_s + proc.reaped_s
    return used + sum(max(0.0, s) for s in reaped.values())


# Finding the descendants reads all of /proc (about 10 ms of CPU here): this process's own clock is
# read after that scan when a window opens and before it when the window closes, so the meter's own
# work stays outside every window it measures.


def total(samples: Sequence[CpuSample]) -> CpuSample:
    """Several windows' CPU as one."""
    return CpuSample(
        sum(s.own_s for s in samples), sum(s.children_s for s in samples), sum(s.client_s for s in samples)
    )


def sample() -> Mark:
    """Open a window: the CPU used so far by this process and each of its descendants."""
    procs = _descendants(os.getpid())
    client = time.thread_time()
    own, reaped = _own()
    return Mark(own, reaped, client, procs)


def window(mark: Mark) -> CpuSample:
    """Close the window ``mark`` opened: the CPU used since."""
    own, _ = _own()
    client = time.thread_time()
    now = _descendants(os.getpid(), mark.procs)
    _, reaped = _own()  # after the scan: a child reaped during it is counted here, not lost
    return CpuSample(own - mark.own_s, _children_s(mark, now, reaped), client - mark.client_s)
