"""``e2e``: end-to-end latency quantiles read from the sidecar's histogram buckets."""

from __future__ import annotations

import math

import pytest
from trading_bench import e2e


def test_e2e_quantiles_are_bucket_upper_bounds() -> None:
    """Never a value between bounds: the histogram cannot tell where in a bucket it is."""
    buckets = [(0.0001, 50.0), (0.00025, 99.0), (0.0005, 100.0), (0.001, 100.0),
               (math.inf, 100.0)]  # fmt: skip
    assert e2e.upper_bound(0.5, buckets) == e2e.Bound(0.0001)
    assert e2e.upper_bound(0.25, buckets) == e2e.Bound(0.0001)
    assert e2e.upper_bound(0.51, buckets) == e2e.Bound(0.00025)
    assert e2e.upper_bound(0.99, buckets) == e2e.Bound(0.00025)
    assert e2e.upper_bound(0.999, buckets) == e2e.Bound(0.0005)
    # The max: the highest non-empty bucket's bound, not the last bound.
    assert e2e.upper_bound(1.0, buckets) == e2e.Bound(0.0005)
    assert e2e.fraction_within(0.00025, buckets) == pytest.approx(0.99)
    assert e2e.upper_bound(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None
    with pytest.raises(ValueError):
        e2e.fraction_within(0.0003, buckets)
    beyond = [(0.0005, 5.0), (0.001, 5.0), (math.inf, 10.0)]
    assert e2e.upper_bound(0.5, beyond) == e2e.Bound(0.0005)
    assert e2e.upper_bound(0.99, beyond) == e2e.Bound(0.001, overflow=True)
