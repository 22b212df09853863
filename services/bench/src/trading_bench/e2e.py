"""End-to-end latency from the sidecar's own histogram (publish ``ts`` → counted).

The sidecar observes ``receive time - ts`` for every trade into fixed buckets; the
difference of two scrapes is the histogram of exactly the events in between. The
fraction at or under a bucket bound is exact; percentiles between bounds are linear
interpolations, as PromQL's ``histogram_quantile`` does, so they are estimates whose
resolution is the bucket layout (see metric_names.E2E_LATENCY_BUCKETS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """``histogram_quantile(q)`` over cumulative (upper bound, count) buckets, +Inf last."""
    if not buckets:
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bound: report that bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def fraction_within(limit_s: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Exact share of events at or under ``limit_s`` (which must be a bucket bound)."""
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if math.isclose(bound, limit_s):
            return count / total if total else math.nan
    raise ValueError(f"{limit_s} is not a bucket bound of the e2e histogram")
