"""LocalFileStore: the embedded-mode ObjectStore, safe across threads AND processes sharing one directory.

Layout: the object ``a/b/c`` is the plain file ``ROOT/a/b/c`` holding exactly its bytes, so the ledger reads
with ``jq`` and the projections with pyarrow or DuckDB. Everything else lives in one hidden side tree,
``ROOT/.servo%`` (no object name can reach it: names may not contain ``%``):

- ``locks/NNN%l``: writers of an object serialise on ``fcntl.flock`` of one of ``LOCK_STRIPES`` files,
  chosen by a hash of its name; the file also remembers the newest generation deleted under it, so
  generations keep increasing after delete + re-create (a live object's generation is its file's, and
  every write stamps one above both). Lock files are never removed: unlinking a lock file another
  process is waiting on would let two writers hold "the" lock at once. A process keeps the lock files
  it opened open (``_KeptLockFiles``), its threads taking turns on a thread lock.
- ``tmp/``: a replacing write goes to a fresh temp file there, then ``os.replace`` publishes it: a reader
  opens one inode and always sees a whole object, without taking any lock. A new object needs no temp
  name: it is written to an unnamed file in its folder (``O_TMPFILE``) and linked at its name once whole
  and synced, one change of one folder instead of three of two (30-35 % of a create's CPU with
  concurrent writers); where the system cannot, it goes through ``tmp/`` as well.
- ``shadow/a%o``: the rare object whose name is also a folder (``a`` next to ``a/b``, which GCS allows but a
  file system does not) lives here once ``ROOT/a`` has become a directory.

The generation is the published file's modification time in microseconds (GCS's generations are microsecond
timestamps too): the writer stamps the temp file before renaming it, so an inode's bytes and generation never
part, and an edit by hand is a new generation, as an upload would be.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import secrets
import stat
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from servo.core.errors import InvalidId, PreconditionFailed, ServoError
from servo.store._names import (
    check_data,
    check_generation,
    check_limit,
    normalize_offset,
    validate_name,
    validate_prefix,
)
from servo.store._port import DEFAULT_CONTENT_TYPE, ObjectMeta, StoredObject

SIDE_TREE = ".servo%"
_GEN = struct.Struct(">Q")
_DATA, _LOCK = "%o", "%l"
# Writers of an object serialise on one of this many lock files, chosen by a hash of its name. A
# lock file per object cost a file creation per object written (as much CPU as writing the object),
# and a tree of lock folders beside the data.
LOCK_STRIPES = 256
# Filesystems cap one path component at 255 bytes; leave room for the side tree's suffixes.
_MAX_SEGMENT_BYTES = 230
_NS_PER_GENERATION = 1000


@dataclass(frozen=True, slots=True)
class _Range:
    prefix: str
    start: str | None
    end: str | None

    def may_contain(self, dir_key: str) -> bool:
        """Whether a directory whose names all start with ``dir_key`` can hold a match."""
        if not (dir_key.startswith(self.prefix) or self.prefix.startswith(dir_key)):
            return False
        return self.start is None or dir_key >= self.start or self.start.startswith(dir_key)

    def matches(self, name: str) -> bool:
        return (
            name.startswith(self.prefix)
            and (self.start is None or name >= self.start)
            and (self.end is None or name < self.end)
        )


class LocalFileStore:
    """An ObjectStore on a local directory.

    Args:
        root: the data directory (created on first write).
        durable: fsync each object before publishing it; turn off only for throwaway test data.
        unnamed_temp_files: write a new object to an unnamed file linked at its name (Linux); False
            takes the named temp file and rename every write takes elsewhere.
    """

    def __init__(self, root: Path, *, durable: bool = True, unnamed_temp_files: bool = True) -> None:
        self._root = Path(root)
        # Paths are built as strings: pathlib's parsing cost more CPU than the system calls of a
        # write or a read, and every ledger event is one of each.
        self._root_str = os.fspath(self._root)
        self._side = os.path.join(self._root_str, SIDE_TREE)
        self._durable = durable
        self._fine_times = False  # the file system keeps microsecond modification times (seen once)
        self._unnamed = unnamed_temp_files and hasattr(os, "O_TMPFILE")

    @property
    def root(self) -> Path:
        return self._root

    # ------------------------------------------------------------------------------------------ paths

    def _segments(self, name: str) -> builtins.list[str]:
        validate_name(name)
        segments = name.split("/")
        if any(len(s.encode("utf-8")) > _MAX_SEGMENT_BYTES for s in segments):
            raise InvalidId(
                f"invalid object name {name[:200]!r}: the local file store allows at most "
                f"{_MAX_SEGMENT_BYTES} bytes between two '/'",
                details={"name": name[:200]},
            )
        return segments

    def _plain(self, segments: builtins.list[str]) -> str:
        return os.path.join(self._root_str, *segments)

    def _aside(self, tree: str, segments: builtins.list[str], suffix: str) -> str:
        return os.path.join(self._side, tree, *segments[:-1], segments[-1] + suffix)

    def _homes(self, segments: builtins.list[str]) -> Iterator[str]:
        """Where an object may live: its plain path, else (a folder stands there) the shadow tree."""
        yield self._plain(segments)
        yield self._aside("shadow", segments, _DATA)

    # ------------------------------------------------------------------------------------------ reads

    def get(self, name: str) -> StoredObject | None:
        segments = self._segments(name)
        for path in self._homes(segments):
            # A descriptor, not a file object: a buffered file asked the kernel for an isatty, a seek,
            # a second stat and a second read besides, and every ledger event read is a get.
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, NotADirectoryError):
                continue  # absent
            try:
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    continue  # a folder: its same-named object (if any) is in the shadow tree
                return StoredObject(name, _read_whole(fd, st.st_size), _generation(st))
            finally:
                os.close(fd)
        return None

    def list(
        self,
        prefix: str,
        *,
        start_offset: str | None = None,
        end_offset: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ObjectMeta]:
        validate_prefix(prefix)
        rng = _Range(
            prefix, normalize_offset(start_offset, "start_offset"), normalize_offset(end_offset, "end_offset")
        )
        max_items = check_limit(limit)
        dir_part = prefix[: prefix.rfind("/") + 1]
        out: builtins.list[ObjectMeta] = []
        for name in self._walk(self._root.joinpath(*dir_part.split("/")[:-1]), dir_part, rng):
            meta = self._meta(name)
            if meta is None:  # deleted between the directory scan and the read
                continue
            out.append(meta)
            if max_items is not None and len(out) >= max_items:
                break
        return out

    def _meta(self, name: str) -> ObjectMeta | None:
        segments = name.split("/")
        for path in self._homes(segments):
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(st.st_mode):
                return ObjectMeta(name, _generation(st), st.st_size)
        return None

    def _walk(self, directory: Path, dir_key: str, rng: _Range) -> Iterator[str]:
        """Yield the names of matching objects under ``directory`` in name order.

        Sorting a directory by "segment" for files and "segment/" for subdirectories and recursing in that
        order yields whole names in code-point order, which is UTF-8 byte order, GCS's listing order.
        """
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        keyed: builtins.list[tuple[str, str, bool]] = []
        for entry in entries:
            if "%" in entry.name:
                continue  # the side tree; never an object (names may not contain '%')
            if entry.is_dir(follow_symlinks=False):
                keyed.append((dir_key + entry.name + "/", entry.path, True))
                if os.path.exists(self._aside("shadow", (dir_key + entry.name).split("/"), _DATA)):
                    keyed.append((dir_key + entry.name, entry.path, False))
            elif entry.is_file():
                keyed.append((dir_key + entry.name, entry.path, False))
        keyed.sort()
        for key, path, is_dir in keyed:
            if rng.end is not None and key >= rng.end:
                return  # every later key, and every name below a later directory, is >= end as well
            if is_dir:
                if rng.may_contain(key):
                    yield from self._walk(Path(path), key, rng)
            elif rng.matches(key):
                yield key

    # ----------------------------------------------------------------------------------------- writes

    def create(self, name: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> int:
        return self._write(name, data, 0)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_generation_match: int | None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> int:
        return self._write(name, data, check_generation(if_generation_match))

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        segments = self._segments(name)
        expected = check_generation(if_generation_match)
        if not os.path.isdir(os.path.dirname(self._plain(segments))):
            return False
        with self._locked(segments) as lock_fd:
            path, current = self._home(segments)
            if current is None:
                return False
            _check(name, expected, current)
            _remember(lock_fd, current)
            os.unlink(path)
            return True

    def _write(self, name: str, data: bytes, expected: int | None) -> int:
        segments = self._segments(name)
        check_data(data)
        while True:
            with self._locked(segments) as lock_fd:
                generation = self._write_locked(lock_fd, name, segments, data, expected)
            if generation is not None:
                return generation
            # The folder is missing, or an object stands where it goes: make it, then look again
            # (folders are never removed, so this happens at most once a level). Made outside the
            # lock: holding one lock while taking another could deadlock two writers on shared stripes.
            self._make_folder(segments[:-1])

    def _write_locked(
        self, lock_fd: int, name: str, segments: builtins.list[str], data: bytes, expected: int | None
    ) -> int | None:
        """The write, under the object's lock; None when its folder must be made first."""
        unnamed = self._unnamed
        # A new object (expected 0) is linked at its plain path without a look first: the link fails
        # on a name already taken (a file, a folder whose object is in the shadow tree), and only then
        # is the name looked at. A stat first was a system call for nothing on nearly every create.
        look = not (unnamed and expected == 0)
        while True:
            path, current = self._home(segments) if look else (self._plain(segments), None)
            look = True
            _check(name, expected, current)
            remembered = _remembered(lock_fd)
            if current is None and unnamed:
                try:
                    generation = self._link_new(path, data, remembered)
                except FileExistsError:
                    # A folder (or a file written by hand) stands there now: look again, and if it is
                    # something a look does not see (a dangling link), replace it as a rename would.
                    unnamed = False
                    continue
                except (FileNotFoundError, NotADirectoryError):
                    return None
                if generation is not None:
                    return generation
                unnamed = False  # this system cannot: look (a replace must not pass a taken name)
                continue
            tmp, generation = self._write_temp(data, max(remembered, current or 0))
            try:
                os.replace(tmp, path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                os.unlink(tmp)
                if isinstance(exc, IsADirectoryError):
                    continue  # a folder made since _home looked: the object's home is the shadow tree
                return None
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            return generation

    def _link_new(self, path: str, data: bytes, floor: int) -> int | None:
        """Write a new object as an unnamed file in its folder, then link it at ``path``; None when
        this system cannot (the caller takes a named temp file, and so does every later write).

        Raises:
            FileExistsError: something stands at ``path``.
            FileNotFoundError, NotADirectoryError: its folder is missing.
        """
        try:
            fd = os.open(os.path.dirname(path), os.O_TMPFILE | os.O_WRONLY, 0o644)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | NotADirectoryError):
                raise
            self._unnamed = False  # no O_TMPFILE on this file system (EOPNOTSUPP, EISDIR, EINVAL)
            return None
        try:
            generation = self._fill(fd, data, floor)
            # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N gives the unnamed file its name; os.link
            # passes that flag only with a directory descriptor, so the link is made relative to one.
            proc = _proc_fds()
            if proc is None:
                self._unnamed = False
                return None
            os.link(str(fd), path, src_dir_fd=proc)
        finally:
            os.close(fd)
        return generation

    def _write_temp(self, data: bytes, floor: int) -> tuple[str, int]:
        """A fresh temp file holding ``data``, stamped with a generation above ``floor``."""
        tmp = os.path.join(self._side, "tmp", secrets.token_hex(8))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(tmp), exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            generation = self._fill(fd, data, floor)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp, generation

    def _fill(self, fd: int, data: bytes, floor: int) -> int:
        """Write ``data`` to a new file, stamp it with a generation above ``floor``, sync it."""
        os.write(fd, data)
        generation = max(time.time_ns() // _NS_PER_GENERATION, floor + 1)
        os.utime(fd, ns=(generation * _NS_PER_GENERATION, generation * _NS_PER_GENERATION))
        # One file system holds the data directory: its time precision is checked on the first
        # write only (a system call less on every later one).
        if not self._fine_times and _generation(os.fstat(fd)) != generation:
            # No path in the message: it may reach an API answer (issue 15, item 16).
            raise ServoError(
                "the data directory's file system keeps modification times coarser than a "
                "microsecond; the local store keeps generations in them "
                "(use ext4, xfs, btrfs, tmpfs or APFS)"
            )
        self._fine_times = True
        if self._durable:
            os.fsync(fd)
        return generation

    def _home(self, segments: builtins.list[str]) -> tuple[str, int | None]:
        """Where the object lives now, and its generation (None: absent). That is its plain path, or the
        shadow tree once the plain path is a folder."""
        plain = self._plain(segments)
        try:
            st = os.stat(plain)
        except (FileNotFoundError, NotADirectoryError):
            return plain, None
        if not stat.S_ISDIR(st.st_mode):
            return plain, _generation(st)
        shadow = self._aside("shadow", segments, _DATA)
        os.makedirs(os.path.dirname(shadow), exist_ok=True)
        return shadow, _current_generation(shadow)

    def _make_folder(self, segments: builtins.list[str]) -> None:
        """Make ``ROOT/segments`` a directory, moving any object in the way to the shadow tree."""
        folder = Path(self._plain(segments))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except (FileExistsError, NotADirectoryError):
            pass
        for depth in range(1, len(segments) + 1):
            path = Path(self._plain(segments[:depth]))
            if path.is_dir():
                continue
            with self._locked(segments[:depth]):
                if path.is_file():
                    # Link first, unlink second: a reader finds the object in one place or the other at
                    # every instant (get() looks at the plain path, then the shadow).
                    shadow = self._aside("shadow", segments[:depth], _DATA)
                    os.makedirs(os.path.dirname(shadow), exist_ok=True)
                    tmp = os.path.join(self._side, "tmp", secrets.token_hex(8))
                    os.makedirs(os.path.dirname(tmp), exist_ok=True)
                    os.link(path, tmp)
                    os.replace(tmp, shadow)
                    path.unlink()
                with contextlib.suppress(FileExistsError):
                    path.mkdir()

    @contextlib.contextmanager
    def _locked(self, segments: builtins.list[str]) -> Iterator[int]:
        """Hold the lock of an object's stripe (never more than one at a time: see _write)."""
        stripe = zlib.crc32("/".join(segments).encode("utf-8")) % LOCK_STRIPES
        lock_file = _LOCK_FILES.take(self._side, stripe)
        # flock belongs to the open file description this process's threads share: it keeps
        # other processes out, the thread lock keeps this process's other threads out.
        try:
            with lock_file.threads:
                fcntl.flock(lock_file.fd, fcntl.LOCK_EX)
                try:
                    yield lock_file.fd
                finally:
                    fcntl.flock(lock_file.fd, fcntl.LOCK_UN)
        finally:
            _LOCK_FILES.give_back(lock_file)


@dataclass(eq=False, slots=True)
class _LockFile:
    fd: int
    threads: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # threads between take and give_back


class _KeptLockFiles:
    """This process's open stripe lock files, shared by its stores, each with a thread lock.

    Opening and closing the lock file were two of a write's twelve system calls, so a descriptor is
    kept once opened; at most LOCK_STRIPES of them while unused (one data directory's worth), since
    stores left to the garbage collector must not each keep theirs. A forked child must not lock
    through its parent's descriptors (the same open file descriptions: their flocks would not keep
    the two apart), nor wait on a lock some parent thread held at the fork: ``forget`` them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, int], _LockFile] = {}

    def take(self, side: str, stripe: int) -> _LockFile:
        """The lock file of ``stripe`` under the side tree ``side``, open; ``give_back`` it after."""
        with self._lock:
            lock_file = self._open.get((side, stripe))
            if lock_file is None:
                lock_file = self._open[(side, stripe)] = _LockFile(_open_lock_file(side, stripe))
                lock_file.users = 1
                self._close_unused()
            else:
                lock_file.users += 1
            return lock_file

    def give_back(self, lock_file: _LockFile) -> None:
        with self._lock:
            lock_file.users -= 1

    def _close_unused(self) -> None:
        """Close unused descriptors, the longest kept first, down to LOCK_STRIPES if it can."""
        excess = len(self._open) - LOCK_STRIPES
        for key, lock_file in list(self._open.items()):
            if excess <= 0:
                return
            if lock_file.users == 0:
                del self._open[key]
                os.close(lock_file.fd)
                excess -= 1

    def forget(self) -> None:
        """Close every descriptor, in a child after a fork (the parent's stay open, its flocks held)."""
        kept, self._open, self._lock = self._open, {}, threading.Lock()
        for lock_file in kept.values():
            with contextlib.suppress(OSError):
                os.close(lock_file.fd)


def _open_lock_file(side: str, stripe: int) -> int:
    path = os.path.join(side, "locks", f"{stripe:03x}{_LOCK}")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


_LOCK_FILES = _KeptLockFiles()
_PROC_FDS: int | None = None  # a descriptor of /proc/self/fd, opened by this process
_PROC_FDS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """Forget what the parent opened (its /proc/self/fd names the parent's files) and its locks.

    A hook at each fork, rather than asking os.getpid() on every write: one system call each time.
    """
    global _PROC_FDS, _PROC_FDS_LOCK
    _LOCK_FILES.forget()
    if _PROC_FDS is not None:
        with contextlib.suppress(OSError):
            os.close(_PROC_FDS)
    _PROC_FDS, _PROC_FDS_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _proc_fds() -> int | None:
    """A descriptor of this process's ``/proc/self/fd``; None without /proc."""
    global _PROC_FDS
    if _PROC_FDS is not None:
        return _PROC_FDS
    with _PROC_FDS_LOCK:
        if _PROC_FDS is None:
            try:
                _PROC_FDS = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return None
        return _PROC_FDS


def _read_whole(fd: int, size: int) -> bytes:
    """The bytes of a file whose stat gave ``size``: one read, unless it has changed since."""
    data = os.read(fd, size + 1)  # asking one byte more than there is: fewer back means the end
    if len(data) == size:
        return data
    parts = [data]
    while chunk := os.read(fd, max(size, 1 << 16)):
        parts.append(chunk)
    return b"".join(parts)


def _check(name: str, expected: int | None, current: int | None) -> None:
    if expected is None:
        return
    if (current or 0) != expected:
        raise PreconditionFailed(
            f"precondition failed for {name!r}: expected generation {expected}, found {current or 0}",
            details={"name": name, "expected": expected, "actual": current or 0},
        )


def _remembered(lock_fd: int) -> int:
    raw = os.pread(lock_fd, _GEN.size, 0)
    return _GEN.unpack(raw)[0] if len(raw) == _GEN.size else 0


def _remember(lock_fd: int, generation: int) -> None:
    if generation > _remembered(lock_fd):
        os.pwrite(lock_fd, _GEN.pack(generation), 0)


def _generation(st: os.stat_result) -> int:
    return st.st_mtime_ns // _NS_PER_GENERATION


def _current_generation(path: str) -> int | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _generation(st) if stat.S_ISREG(st.st_mode) else None


_LEGACY_HEADER = struct.Struct(">4sQ")
_LEGACY_MAGIC = b"SVO1"


def upgrade_legacy_layout(root: Path) -> int:
    """Rewrite the objects of the first layout (``name%o`` files behind a 12-byte header) as plain files.

    Data written by an earlier Servo stays readable instead of looking lost. Run it only while no other
    process uses ``root`` (``servo dev`` holds its data-directory lock). A crash midway is harmless: the
    legacy file goes only after its plain copy is written, and copying it again gives the same bytes.

    Returns:
        How many objects were upgraded.
    """
    store = LocalFileStore(root)
    upgraded = 0
    for path in sorted(root.rglob("*%*")):
        relative = path.relative_to(root)
        if relative.parts[0] == SIDE_TREE or not path.is_file():
            continue
        stem, _, suffix = path.name.rpartition("%")
        if suffix == "o":
            raw = path.read_bytes()
            if len(raw) < _LEGACY_HEADER.size or raw[:4] != _LEGACY_MAGIC:
                continue  # not a file of ours: leave it alone
            name = "/".join((*relative.parts[:-1], stem))
            # The new generation (now, in µs) is above every counter of the first layout.
            store.put(name, raw[_LEGACY_HEADER.size :], if_generation_match=None)
            upgraded += 1
        elif suffix != "l" and not suffix.startswith("t"):
            continue
        path.unlink()  # the upgraded object, or a lock or temp file of the first layout
    return upgraded
