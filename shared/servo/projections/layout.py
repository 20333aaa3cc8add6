"""Where the published orchestration state lives under ``state/orchestration/``, and why.

    manifest.pointer.json                      the only mutable object: CAS on its generation publishes;
                                               holds the manifest of the state version it publishes
                                               (every file of that version, and the live runs: run
                                               row + segment chain of each active run, and of ended
                                               runs not yet in their bucket)
    manifests/{20-digit id}.json               immutable manifests of heads published before the
                                               pointer held its manifest (still read, never written)
    index/{bucket}.{hex12}.parquet             runs rows + segment chains of ended runs: a bucket's
                                               immutable files (see BucketRef)
    segments/{sha256[:32]}.parquet             immutable run segments: one file per compaction for
                                               the runs it touched (see partitions.py)

Cost independent of history: every event belongs to one run, so a batch reads only the segments of
the runs it touches and writes one segment file (one more per big segment) and one head. An
active run's entry lives in the manifest, which is rewritten by every publish anyway, so a publish
that only moves running work writes segments + pointer and no index file. Ended runs are
bucketed by the UTC day of their run ULID. An ended run waits in the manifest until a batch of runs
has ended, and the batch joins each bucket as one new file (merged only with files no bigger than
it): a busy day's index writes are linear in its runs, never a rewrite of the day per batch. The
manifest lists buckets and their files, not ended runs, so it grows by one entry per day (a few
files each), one per active run and at most one batch of ended runs. Every immutable file is named
by the hash of its bytes and written create-if-absent: a compactor that crashed, or lost a race,
leaves orphans that cost nothing, and a retry that produces identical bytes finds the file already
there.

Readers follow pointer (its manifest) -> live entry, else index bucket -> segments; they never list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from servo.core.canonical_json import canonical_bytes, loads_strict
from servo.core.errors import CanonicalJsonError, InvalidInput
from servo.core.ids import is_ulid, manifest_id, parse_manifest_id, ulid_time_ms
from servo.core.rows import RunRow
from servo.core.states import is_terminal_public
from servo.projections import schemas
from servo.projections.codec import arrow_to_rows, read_parquet, write_parquet

ROOT = "state/orchestration"
POINTER_PATH = f"{ROOT}/manifest.pointer.json"
DAY_MS = 86_400_000
# An index file of a bucket takes no more merges once merging would pass this many runs (BucketRef).
MAX_BUCKET_FILE_RUNS = 1024


def manifest_path(number: int) -> str:
    return f"{ROOT}/manifests/{manifest_id(number)}.json"


def bucket_of(run_id: str) -> str:
    """The index bucket of a run: the UTC day of its ULID, or a hash bucket for non-ULID run ids."""
    if is_ulid(run_id):
        return f"d{ulid_time_ms(run_id) // DAY_MS:06d}"
    return "h" + hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:2]


def segments_path(data: bytes) -> str:
    """Where a segment file goes: named by the hash of its bytes, with enough digits to be unique in
    the whole workspace (one folder holds every compaction's file)."""
    return f"{ROOT}/segments/{hashlib.sha256(data).hexdigest()[:32]}.parquet"


def index_path(bucket: str, hex12: str) -> str:
    return f"{ROOT}/index/{bucket}.{hex12}.parquet"


def _compact_json(doc: dict[str, Any]) -> bytes:
    # Compact: every publish writes one and readers parse it, and pretty printing takes Python's
    # pure-Python encoder path (several times slower than the C one on a manifest of live runs).
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _strict(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = loads_strict(data)
    except CanonicalJsonError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class Pointer:
    """The head: which manifest is published. Replaced only by a CAS on its generation.

    A publish puts the manifest inside the pointer object (``encode_head``; issue 21: one object
    fewer a publish), and then ``manifest_path`` names the pointer itself. A head written before that
    names a manifest object of its own; readers take both.
    """

    manifest_id: int
    manifest_path: str
    epoch: int
    parent_pointer_hash: str | None
    updated_at: int

    @property
    def holds_manifest(self) -> bool:
        return self.manifest_path == POINTER_PATH

    def document(self) -> dict[str, Any]:
        return {
            "manifest_id": manifest_id(self.manifest_id),
            "manifest_path": self.manifest_path,
            "epoch": self.epoch,
            "parent_pointer_hash": self.parent_pointer_hash,
            "updated_at": self.updated_at,
        }

    def encode(self) -> bytes:
        return canonical_bytes(self.document())

    @classmethod
    def decode(cls, data: bytes) -> Pointer:
        return cls.from_document(_strict(data, "state pointer"))

    @classmethod
    def from_document(cls, raw: dict[str, Any]) -> Pointer:
        try:
            return cls(
                parse_manifest_id(raw["manifest_id"]),
                str(raw["manifest_path"]),
                int(raw["epoch"]),
                raw.get("parent_pointer_hash"),
                int(raw["updated_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"state pointer is malformed: {exc!r}") from exc


def encode_head(pointer: Pointer, manifest: Manifest) -> bytes:
    """The head object of a publish: the manifest's fields and the pointer's in one JSON object.

    They share ``manifest_id`` and ``epoch`` (equal by construction) and no other name, so the same
    bytes decode as either; ``manifest_path`` names the pointer itself, so a reader that follows it
    reads this object again and finds the manifest there.
    """
    if not pointer.holds_manifest or pointer.manifest_id != manifest.manifest_id:
        raise ValueError("a head holding its manifest names itself and that manifest's id")
    doc = manifest.document()
    doc.update(pointer.document())
    return _compact_json(doc)


def decode_head(data: bytes) -> tuple[Pointer, Manifest | None]:
    """The pointer of a head object, and its manifest when it holds one (parsed once)."""
    raw = _strict(data, "state pointer")
    pointer = Pointer.from_document(raw)
    return pointer, Manifest.from_document(raw) if pointer.holds_manifest else None


def pointer_hash(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class FileRef:
    path: str
    checksum_sha256: str
    byte_size: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "checksum_sha256": self.checksum_sha256, "byte_size": self.byte_size}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FileRef:
        return cls(str(raw["path"]), str(raw["checksum_sha256"]), int(raw["byte_size"]))


@dataclass(frozen=True, slots=True)
class BucketFile:
    """One immutable file of an index bucket and how many run entries it holds."""

    file: FileRef
    run_count: int


@dataclass(frozen=True, slots=True)
class BucketRef:
    """An index bucket in the manifest: its files, oldest first (a run's entry in a later file replaces
    one in an earlier file); ``max_triggered_at`` lets ListRuns skip buckets it cannot need.

    Runs that end are appended as a new file, never by rewriting the day: a busy day would otherwise
    cost writes quadratic in its runs. The new file first absorbs the trailing files no bigger than it
    (a binary counter), so a bucket holds a few files per MAX_BUCKET_FILE_RUNS runs, and a run is
    written once plus at most one merge per doubling of its file up to MAX_BUCKET_FILE_RUNS.
    """

    files: tuple[BucketFile, ...]
    max_triggered_at: int | None

    @property
    def run_count(self) -> int:
        """Entries over all files (a run moved twice counts twice)."""
        return sum(f.run_count for f in self.files)


def _bucket_json(ref: BucketRef) -> dict[str, Any]:
    files = [{**f.file.to_json(), "run_count": f.run_count} for f in ref.files]
    return {"files": files, "max_triggered_at": ref.max_triggered_at}


def _bucket_from_json(raw: Mapping[str, Any]) -> BucketRef:
    # A manifest written before buckets had several files names one file inline.
    files = raw.get("files", [raw])
    return BucketRef(
        tuple(BucketFile(FileRef.from_json(f), int(f["run_count"])) for f in files),
        raw.get("max_triggered_at"),
    )


@dataclass(frozen=True, slots=True)
class Manifest:
    """One immutable version of the published state."""

    manifest_id: int
    epoch: int
    previous_manifest_path: str | None
    published_at: int
    # Max event id applied; new ledger objects are looked for from a little before it.
    events_processed_through: str
    # Event ids applied whose ULID time falls inside the look-back window: lets a compactor skip them
    # without reading them again.
    recent_event_ids: tuple[str, ...]
    buckets: dict[str, BucketRef] = field(default_factory=dict)
    # Runs not yet in an index bucket, by id: every active run, and the ended runs waiting to move to
    # their buckets together. Readers look here before the buckets.
    live: dict[str, IndexEntry] = field(default_factory=dict)
    # Unique to one publish attempt (contracts §9's revision_ulid): the head's bytes then tell a CAS
    # whose answer was lost (this attempt's bytes are there) from a racer's identical fold.
    revision_ulid: str | None = None

    @property
    def active_run_ids(self) -> tuple[str, ...]:
        """Runs that may still change (not in a terminal API state): what the sweep visits."""
        return tuple(sorted(r for r, e in self.live.items() if not is_terminal_public(e.public_state)))

    def document(self) -> dict[str, Any]:
        return {
            "manifest_id": manifest_id(self.manifest_id),
            "epoch": self.epoch,
            "previous_manifest_path": self.previous_manifest_path,
            "schema_version": schemas.SCHEMA_VERSION,
            "published_at": self.published_at,
            "watermarks": {
                "events_processed_through": self.events_processed_through,
                "last_processed_at": self.published_at,
                "recent_event_ids": list(self.recent_event_ids),
            },
            "buckets": {k: _bucket_json(b) for k, b in sorted(self.buckets.items())},
            "live_runs": {run_id: _entry_json(e) for run_id, e in sorted(self.live.items())},
        } | ({"revision_ulid": self.revision_ulid} if self.revision_ulid is not None else {})

    def encode(self) -> bytes:
        return _compact_json(self.document())

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        return cls.from_document(_strict(data, "state manifest"))

    @classmethod
    def from_document(cls, raw: dict[str, Any]) -> Manifest:
        try:
            marks = raw["watermarks"]
            return cls(
                manifest_id=parse_manifest_id(raw["manifest_id"]),
                epoch=int(raw["epoch"]),
                previous_manifest_path=raw.get("previous_manifest_path"),
                published_at=int(raw["published_at"]),
                events_processed_through=str(marks["events_processed_through"]),
                recent_event_ids=tuple(marks["recent_event_ids"]),
                buckets={k: _bucket_from_json(b) for k, b in raw["buckets"].items()},
                live={run_id: _entry_from_json(run_id, e) for run_id, e in raw["live_runs"].items()},
                revision_ulid=raw.get("revision_ulid"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"state manifest is malformed: {exc!r}") from exc


EMPTY_MANIFEST = Manifest(0, 1, None, 0, "", ())


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """A run in an index bucket: its row (None until RunTriggered folds) and its segment chain."""

    run_id: str
    run: RunRow | None
    segments: tuple[str, ...]
    # The API's run state (it depends on task rows), computed when the run was compacted so ListRuns
    # can filter and show it without opening every run's segments.
    public_state: str | None = None


# RunRow's fields are all scalars: a shallow dict is its JSON, without asdict's deep copy of each one.
_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunRow))


def _entry_json(entry: IndexEntry) -> dict[str, Any]:
    run = entry.run
    return {
        "run": None if run is None else {name: getattr(run, name) for name in _RUN_FIELDS},
        "segments": list(entry.segments),
        "public_state": entry.public_state,
    }


def _entry_from_json(run_id: str, raw: Mapping[str, Any]) -> IndexEntry:
    run = raw["run"]
    return IndexEntry(
        run_id,
        None if run is None else RunRow(**run),
        tuple(str(s) for s in raw["segments"]),
        raw.get("public_state"),
    )


_RUN_STRUCT = pa.struct(list(schemas.RUNS.schema))
INDEX_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("segments", pa.list_(pa.field("item", pa.string(), nullable=False)), nullable=False),
        pa.field("run", _RUN_STRUCT, nullable=True),
        pa.field("public_state", pa.string(), nullable=True),
    ]
)


_PLACEHOLDER = {pa.string(): "", pa.bool_(): False}


def _run_column(entries: Sequence[IndexEntry]) -> pa.Array:
    # A null struct still stores child values, and Parquet refuses nulls in a non-null child even
    # under a null parent, so absent rows carry placeholders masked out by the struct's validity.
    arrays = []
    for f in schemas.RUNS.schema:
        fill = None if f.nullable else _PLACEHOLDER.get(f.type, 0)
        arrays.append(pa.array([fill if e.run is None else getattr(e.run, f.name) for e in entries], f.type))
    # The validity bitmap is a boolean array's value bitmap (the same bit layout). A ``mask`` would
    # import pyarrow.compute to invert it: tens of milliseconds the first time an index is written.
    valid = pa.array([e.run is not None for e in entries], pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(_RUN_STRUCT, len(entries), [valid], children=arrays)


def encode_index(entries: Sequence[IndexEntry]) -> bytes:
    """Parquet bytes of an index bucket (entries sorted by run id, so equal buckets give equal bytes)."""
    ordered = sorted(entries, key=lambda e: e.run_id)
    table = pa.Table.from_arrays(
        [
            pa.array([e.run_id for e in ordered], pa.string()),
            pa.array([list(e.segments) for e in ordered], INDEX_SCHEMA.field("segments").type),
            _run_column(ordered),
            pa.array([e.public_state for e in ordered], pa.string()),
        ],
        schema=INDEX_SCHEMA,
    )
    return write_parquet(table)


def _validity(column: pa.Array) -> list[bool]:
    """Which positions of ``column`` are not null, read off its validity bitmap."""
    bitmap = column.buffers()[0]
    if bitmap is None or column.null_count == 0:
        return [True] * len(column)
    return pa.Array.from_buffers(pa.bool_(), len(column), [None, bitmap], offset=column.offset).to_pylist()


def decode_index(data: bytes, what: str = "index") -> list[IndexEntry]:
    table = read_parquet(data, what)
    if not {"run_id", "segments", "run"} <= set(table.column_names):
        raise InvalidInput(f"projection file {what} is not a run index")
    run_ids = table.column("run_id").to_pylist()
    segments = table.column("segments").to_pylist()
    run_column = table.column("run").combine_chunks()
    valid = _validity(run_column)
    # Every position's row is built and the null ones dropped: is_valid()/filter() would import
    # pyarrow.compute (tens of milliseconds once per process) for a handful of rows.
    rows = iter([row for row, ok in zip(arrow_to_rows(schemas.RUNS, run_column), valid, strict=True) if ok])
    public = (
        table.column("public_state").to_pylist()
        if "public_state" in table.column_names
        else [None] * len(run_ids)
    )
    return [
        IndexEntry(rid, next(rows) if ok else None, tuple(segs), ps)
        for rid, segs, ok, ps in zip(run_ids, segments, valid, public, strict=True)
    ]
