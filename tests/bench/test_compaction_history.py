"""The compaction bench's history: built fast, but byte for byte what the compactor would write."""

from __future__ import annotations

from servo.core.fold import fold_run
from servo.core.ids import UlidFactory
from servo.projections.partitions import decode_segments, encode_segments, full_segment

from bench import compaction


def test_a_cloned_run_segment_is_the_encoders_own_bytes() -> None:
    ids = UlidFactory(lambda n: bytes(n))
    target = ids.new(compaction.T0)
    template = fold_run(None, target, compaction._plan_events(ids, target, compaction.T0, 40))
    cloner = compaction.SegmentCloner(template)
    for ms in (1, 2):
        run_id = ids.new(compaction.T0 + ms)
        expected = encode_segments([full_segment(compaction._clone(template, run_id), compaction._body)])
        data = cloner.segment(run_id)
        assert data == expected
        assert set(decode_segments(data)) == {run_id}


def test_the_heartbeat_history_lives_in_memory_when_the_machine_has_a_tmpfs(tmp_path) -> None:
    # A fresh ext4 directory makes its first few thousand file creations dearer in kernel time
    # (measured: openat ~10x slower per call in the young history's window), which is the disk's
    # state, not the compactor's work; the row compares the compactor's work.
    shm = tmp_path / "shm"
    shm.mkdir()
    assert compaction.memory_backed_dir(candidates=(str(shm),)) == str(shm)
    assert compaction.memory_backed_dir(candidates=(str(tmp_path / "absent"),)) is None
