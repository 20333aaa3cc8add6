"""Store wrappers for tests that count what a service reads."""

from __future__ import annotations

from typing import Any

from servo.store import CountingStore


class PointerReads(CountingStore):
    """Counts every operation, and the head-pointer reads on their own."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.pointer_reads = 0

    def get(self, name: str) -> Any:
        if name.endswith("state/orchestration/manifest.pointer.json"):
            self.pointer_reads += 1
        return super().get(name)
