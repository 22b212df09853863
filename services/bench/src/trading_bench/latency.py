"""Per-call latencies: collected raw in the timed loop, summarised with HdrHistogram after.

Recording into an HdrHistogram costs ~0.7 µs per value in Python, more than the calls
being measured, so the timed loops only store integer nanoseconds in a preallocated
``array`` and the histogram is filled once the loop is over. The histogram then gives
percentiles with 3 significant digits over any range, as HdrHistogram does everywhere.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

#: One nanosecond to one hour, 3 significant digits: any call we time fits.
_LOWEST_NS = 1
_HIGHEST_NS = 3_600 * 1_000_000_000
_DIGITS = 3

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True)
class Percentiles:
    """Latency summary in microseconds; ``count`` is how many values it covers."""

    count: int
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float

    def ordered(self) -> bool:
        return self.p50_us <= self.p90_us <= self.p99_us <= self.p999_us <= self.max_us


EMPTY = Percentiles(0, 0.0, 0.0, 0.0, 0.0, 0.0)


def new_samples(size: int) -> array[int]:
    """A zeroed buffer of ``size`` signed 64-bit slots for nanosecond samples."""
    return array("q", bytes(8 * size))


def summarize(samples_ns: Iterable[int]) -> Percentiles:
    """HdrHistogram percentiles of nanosecond samples, reported in microseconds."""
    histogram = HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _DIGITS)
    record = histogram.record_value
    for value in samples_ns:
        record(min(max(value, _LOWEST_NS), _HIGHEST_NS))
    count = int(histogram.get_total_count())
    if count == 0:
        return EMPTY
    p50, p90, p99, p999 = (histogram.get_value_at_percentile(p) / 1000.0 for p in PERCENTILES)
    return Percentiles(count, p50, p90, p99, p999, histogram.get_max_value() / 1000.0)
