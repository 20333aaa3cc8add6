"""One `servo dev` per data directory: two stacks on one bucket would run each dispatch twice and race
each other's sweeps.

The lock is an ``flock`` on ``DATA/dev.lock``: the kernel drops it when the holder's last descriptor
closes, so a stack killed with ``kill -9`` never leaves a stale lock behind. The file only carries the
holder's pid, for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servo.core.errors import ServoError

LOCK_FILE = "dev.lock"


class DataDirInUse(ServoError):
    code = "CONFLICT"
    http_status = 409


@contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` for this process until the block ends; refuse if another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # Not inherited by children (PEP 446): the lock lives and dies with this process alone.
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise DataDirInUse(
                f"data directory {data_dir} is in use by another `servo dev` (pid {holder}); "
                "stop that one, or give this one its own directory with --data DIR",
                details={"data_dir": str(data_dir), "pid": holder},
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)
