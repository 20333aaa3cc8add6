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
