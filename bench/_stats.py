"""Small statistics for the bench table: nearest-rank percentiles in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (pct in 0..100); raises on an empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    """Seconds → milliseconds, rounded to 0.1 ms for the results file."""
    return round(seconds * 1000, 1)


def summary(prefix: str, seconds: Sequence[float], pcts: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """``{prefix}_p50_ms: …, {prefix}_n: …}`` for a sample of durations in seconds."""
    out: dict[str, float] = {f"{prefix}_n": len(seconds)}
    if seconds:
        for pct in pcts:
            out[f"{prefix}_p{pct}_ms"] = ms(percentile(seconds, pct))
        out[f"{prefix}_max_ms"] = ms(max(seconds))
    return out
