"""End-to-end latency (publish ``ts`` → counted) from the sidecar's benchmark histogram.

The sidecar observes ``receive time - ts`` for every benchmark trade into fixed buckets
(``metric_names.E2E_LATENCY_BUCKETS``); the difference of two scrapes is the histogram
of exactly the benchmark events in between. That is all the resolution there is: the
only honest statements are "at most this bucket bound" and "this exact share at or
under a bound". So every e2e percentile here is the *upper bound of the bucket it falls
in* (``p99 ≤ 250 µs``), never a value interpolated between bounds, and the max is the
bound of the highest non-empty bucket. The share at or under 250 µs (a bound) is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Quantiles reported, with the max as 1.0.
QUANTILES = (0.5, 0.9, 0.99, 0.999, 1.0)


@dataclass(frozen=True)
class Bound:
    """A quantile as the bucket bound it lies under, in seconds."""

    seconds: float
    #: True when it lies beyond the last finite bound (``seconds`` is then that bound).
    overflow: bool = False


def upper_bound(q: float, buckets: Sequence[tuple[float, float]]) -> Bound | None:
    """The smallest bucket bound with at least ``q`` of the events at or under it.

    ``buckets`` are cumulative (upper bound, count), +Inf last. ``None`` when the
    histogram is empty. Quantile 1 gives the bound of the highest non-empty bucket.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    last_finite = 0.0
    for bound, count in buckets:
        if math.isinf(bound):
            return Bound(last_finite, overflow=True)
        if count >= rank:
            return Bound(bound)
        last_finite = bound
    return Bound(last_finite, overflow=True)


def fraction_within(limit_s: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Exact share of events at or under ``limit_s`` (which must be a bucket bound)."""
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if math.isclose(bound, limit_s):
            return count / total if total else math.nan
    raise ValueError(f"{limit_s} is not a bucket bound of the e2e histogram")
