"""One compaction of a workspace at a time in this instance; the others ride along (design §5.3).

Finalize events of one workspace reach an instance in bursts (a fan-out's callbacks, a dispatch and its
acknowledgement). Compacting each on its own makes every one of them list the ledger, fold and race
for the head pointer, and on GCS sleep out the 1-s publish interval first: all but one lose the race
and retry. Instead the first becomes the leader and the others wait for its publish. A follower stops
when that publish holds its objects, and otherwise (it arrived after the leader had listed) takes or
joins the next flight. Nothing is coordinated across instances: that is still the head pointer's CAS.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

T = TypeVar("T")


@dataclass(slots=True)
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    followers: int = 0
    result: object = None  # the leader's, for its followers to check without a read
    # What the followers were handed (their objects' names), for the leader to fold too: an object
    # older than the leader's listing window (a big batch of requests takes seconds to write, and
    # its ids are from its start) would otherwise wait for a flight of its own.
    handed: list[str] = field(default_factory=list)


class Flights:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[Hashable, _Flight] = {}

    def run(
        self,
        key: Hashable,
        work: Callable[[Callable[[], list[str]]], T],
        covered: Callable[[T | None], bool],
        handed: Sequence[str] = (),
    ) -> T | None:
        """``work(more)`` as the leader of ``key``'s flight, or None once a flight's work covered ours.

        ``more()`` gives what the followers were handed so far (``handed``): the leader calls it just
        before it looks for work. ``covered`` gets the leader's result (None if the leader failed).
        """
        while True:
            with self._lock:
                flight = self._current.get(key)
                if flight is None:
                    flight = self._current[key] = _Flight()
                    leader = True
                else:
                    flight.followers += 1
                    flight.handed.extend(handed)
                    leader = False
            if leader:
                try:
                    result = work(functools.partial(self._handed, flight))
                    flight.result = result
                    return result
                finally:
                    with self._lock:
                        del self._current[key]
                    flight.done.set()
            flight.done.wait()
            if covered(cast("T | None", flight.result)):
                return None

    def _handed(self, flight: _Flight) -> list[str]:
        with self._lock:
            return list(flight.handed)

    def followers(self, key: Hashable) -> int:
        """How many are waiting on ``key``'s flight now (for tests and metrics)."""
        with self._lock:
            flight = self._current.get(key)
            return 0 if flight is None else flight.followers
