"""LocalFileStore: the embedded-mode ObjectStore, safe across threads AND processes sharing one directory.

Layout: the name ``a/b/c`` lives at ``ROOT/a/b/c%o``. Directory names never contain ``%`` (names may not),
so an object ``a`` (``a%o``) and the directory of ``a/b`` (``a/``) never collide, and lock (``%l``) and temp
(``%t...``) files can never be mistaken for objects.

Each data file is a 12-byte header (magic + generation) followed by the bytes, replaced atomically with
``os.replace``: a reader opens one inode and always sees a whole object with its own generation, without
taking any lock. Writers serialise per object on ``fcntl.flock`` of the ``%l`` file, which also remembers the
last generation so generations keep increasing after delete + re-create. Lock files are never removed:
unlinking a lock file another process is waiting on would let two writers hold "the" lock at once.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import logging
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from servo.core.errors import CorruptObject, InvalidId, PreconditionFailed
from servo.store._names import (
    check_data,
    check_generation,
    check_limit,
    normalize_offset,
    validate_name,
    validate_prefix,
)
from servo.store._port import DEFAULT_CONTENT_TYPE, ObjectMeta, StoredObject

logger = logging.getLogger("servo.store")

_HEADER = struct.Struct(">4sQ")
_MAGIC = b"SVO1"
_GEN = struct.Struct(">Q")
_DATA, _LOCK, _TEMP = "%o", "%l", "%t"
# Filesystems cap one path component at 255 bytes; leave room for the temp suffix.
_MAX_SEGMENT_BYTES = 230


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
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self._root = Path(root)
        self._durable = durable
        # Corrupt files listings skipped (each also logged): the counter a health check or test reads.
        self.corrupt_objects_skipped = 0

    @property
    def root(self) -> Path:
        return self._root

    # ------------------------------------------------------------------------------------------ paths

    def _base(self, name: str) -> Path:
        """The object's path without suffix: ``ROOT/a/b/c`` for ``a/b/c``."""
        validate_name(name)
        segments = name.split("/")
        if any(len(s.encode("utf-8")) > _MAX_SEGMENT_BYTES for s in segments):
            raise InvalidId(
                f"invalid object name {name[:200]!r}: the local file store allows at most "
                f"{_MAX_SEGMENT_BYTES} bytes between two '/'",
                details={"name": name[:200]},
            )
        return self._root.joinpath(*segments)

    @staticmethod
    def _with(base: Path, suffix: str) -> Path:
        return base.with_name(base.name + suffix)

    # ------------------------------------------------------------------------------------------ reads

    def get(self, name: str) -> StoredObject | None:
        path = self._with(self._base(name), _DATA)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        return StoredObject(name, raw[_HEADER.size :], _parse_header(raw, name))

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
        for name, path in _walk(self._root.joinpath(*dir_part.split("/")[:-1]), dir_part, rng):
            try:
                meta = _read_meta(name, path)
            except CorruptObject as exc:
                # One unreadable file (a truncation, a crash leftover) must not fail every listing
                # of its prefix, which would wedge the compaction and the sweep for good.
                self.corrupt_objects_skipped += 1
                logger.error(
                    f"listing skipped a corrupt object: {exc.message}",
                    extra={"servo": {"category": "CORRUPT_OBJECT", "object": name}},
                )
                continue
            if meta is None:  # deleted between the directory scan and the read
                continue
            out.append(meta)
            if max_items is not None and len(out) >= max_items:
                break
        return out

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
        base = self._base(name)
        expected = check_generation(if_generation_match)
        path = self._with(base, _DATA)
        if not path.parent.is_dir():
            return False
        with self._locked(base) as lock_fd:
            current = _current_generation(path, name)
            if current is None:
                return False
            _check(name, expected, current)
            _remember(lock_fd, current)
            path.unlink()
            return True

    def _write(self, name: str, data: bytes, expected: int | None) -> int:
        base = self._base(name)
        check_data(data)
        path = self._with(base, _DATA)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(base) as lock_fd:
            current = _current_generation(path, name)
            _check(name, expected, current)
            generation = max(_remembered(lock_fd), current or 0) + 1
            tmp = self._with(base, _TEMP + secrets.token_hex(8))
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, _HEADER.pack(_MAGIC, generation) + data)
                    if self._durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            # Recorded after the replace: if we crash in between, max(remembered, current) still advances.
            _remember(lock_fd, generation)
            return generation

    @contextlib.contextmanager
    def _locked(self, base: Path) -> Iterator[int]:
        fd = os.open(self._with(base, _LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases the flock


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


def _parse_header(raw: bytes, name: str) -> int:
    # Errors name the object, not its file: messages reach callers, and a path tells them nothing.
    if len(raw) < _HEADER.size:
        raise CorruptObject(
            f"stored object {name!r} is corrupt (shorter than its header)", details={"name": name}
        )
    magic, generation = _HEADER.unpack_from(raw)
    if magic != _MAGIC:
        raise CorruptObject(f"stored object {name!r} is corrupt (bad header)", details={"name": name})
    return int(generation)


def _current_generation(path: Path, name: str) -> int | None:
    try:
        with open(path, "rb") as f:
            return _parse_header(f.read(_HEADER.size), name)
    except FileNotFoundError:
        return None


def _read_meta(name: str, path: str) -> ObjectMeta | None:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            generation = _parse_header(f.read(_HEADER.size), name)
    except FileNotFoundError:
        return None
    return ObjectMeta(name, generation, size - _HEADER.size)


def _walk(directory: Path, dir_key: str, rng: _Range) -> Iterator[tuple[str, str]]:
    """Yield (name, path) of matching objects under ``directory`` in name order.

    Sorting a directory by "segment" for files and "segment/" for subdirectories and recursing in that
    order yields whole names in code-point order, which is UTF-8 byte order, GCS's listing order.
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    keyed: builtins.list[tuple[str, str, bool]] = []
    for entry in entries:
        if "%" not in entry.name:
            if entry.is_dir(follow_symlinks=False):
                keyed.append((dir_key + entry.name + "/", entry.path, True))
        elif entry.name.endswith(_DATA) and "%" not in entry.name[: -len(_DATA)]:
            keyed.append((dir_key + entry.name[: -len(_DATA)], entry.path, False))
    keyed.sort()
    for key, path, is_dir in keyed:
        if rng.end is not None and key >= rng.end:
            return  # every later key, and every name below a later directory, is >= end as well
        if is_dir:
            if rng.may_contain(key):
                yield from _walk(Path(path), key, rng)
        elif rng.matches(key):
            yield key, path
