"""Per-call latencies: collected raw in the timed loop, summarised with numpy after.

Recording into a histogram costs ~0.7 µs per value in Python, more than the calls being
measured, so the timed loops only store integer nanoseconds in a preallocated ``array``
and the percentiles are computed once the loop is over, from every raw sample.

A percentile is the nearest rank: the sample of rank ceil(p/100 · n) in sorted order
(what ``numpy.percentile(..., method="inverted_cdf")`` means), so every number reported
is a latency that was actually measured, never an interpolation between two, as with
the HdrHistogram this replaced, and exact rather than rounded to 3 significant digits.
The rank is computed in integers (percentiles as parts per thousand): in floating point
99.9 / 100 · 1000 is 999.0000000000001, and numpy's own rank for p99.9 of 1000 samples
is then the 1000th, the max. ``numpy.partition`` finds the ranks in O(n).

Why numpy: it was already in the benchmark's environment (matplotlib needs it) and ships
wheels for linux amd64 and arm64; hdrhistogram has no linux/arm64 wheel, which made the
bench image the only one whose build needed a C compiler. Memory: ``numpy.frombuffer``
reads the timed ``array`` in place and the partition works on one int64 copy, 8 MB per
million samples.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: p50, p90, p99, p99.9 in parts per thousand, so each rank is exact (see the module doc).
PER_MILLE = (500, 900, 990, 999)


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
    """Nearest-rank percentiles of nanosecond samples, reported in microseconds."""
    if isinstance(samples_ns, array) and samples_ns.typecode == "q":
        values = np.frombuffer(samples_ns, dtype=np.int64)  # no copy of the timed buffer
    else:
        values = np.fromiter(samples_ns, dtype=np.int64)
    count = int(values.size)
    if count == 0:
        return EMPTY
    # 0-based positions of the nearest ranks ceil(q/1000 · count), and of the max.
    positions = [max(-(-q * count // 1000), 1) - 1 for q in PER_MILLE]
    ordered = np.partition(values, [*positions, count - 1])
    p50, p90, p99, p999 = (int(ordered[i]) / 1000.0 for i in positions)
    return Percentiles(count, p50, p90, p99, p999, int(ordered[count - 1]) / 1000.0)
