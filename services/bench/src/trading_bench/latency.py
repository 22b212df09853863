"""Per-call latencies: collected raw in the timed loop, summarised with numpy after.

Recording into a histogram inside the loop would cost more than the calls measured, so
the timed loops store integer nanoseconds in a preallocated ``array`` and percentiles are
computed once the loop is over, from every sample. A percentile is the nearest rank (the
sample of rank ceil(p/100 · n), ``numpy.percentile(..., method="inverted_cdf")``), so every
number reported was actually measured; the rank is computed in integers (parts per
thousand) because in floating point p99.9 of 1000 samples would land on the max.

numpy rather than hdrhistogram: it is already in the benchmark's environment and ships
wheels for amd64 and arm64, where hdrhistogram would need a compiler in the bench image.
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
