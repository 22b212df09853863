"""trading_bench.latency: nearest-rank percentiles of raw nanosecond samples, in µs."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from trading_bench.latency import EMPTY, Percentiles, new_samples, summarize


def test_percentiles_are_nearest_rank_over_every_sample() -> None:
    values = list(range(1, 1001))  # 1..1000 ns
    random.Random(7).shuffle(values)
    samples = new_samples(len(values))
    for index, value in enumerate(values):
        samples[index] = value
    # p99.9 of 1000 samples is the 999th: numpy's float rank (999.0000000000001) says 1000th.
    assert summarize(samples) == Percentiles(1000, 0.5, 0.9, 0.99, 0.999, 1.0)


def test_a_percentile_is_a_measured_sample_never_an_interpolation() -> None:
    # Linear interpolation would say p50 = 2 µs, a latency nobody measured.
    assert summarize([1_000, 3_000]).p50_us == 1.0
    result = summarize([5_000] * 998 + [40_000, 900_000])
    assert (result.p50_us, result.p99_us, result.p999_us) == (5.0, 5.0, 40.0)
    assert result.max_us == 900.0 and result.ordered()


def test_the_timed_buffer_and_any_iterable_agree() -> None:
    rng = random.Random(11)
    values = [rng.randrange(50, 5_000_000) for _ in range(20_000)]
    buffer = new_samples(len(values))
    for index, value in enumerate(values):
        buffer[index] = value
    from_buffer = summarize(buffer)
    assert from_buffer == summarize(values) == summarize(iter(values))
    assert from_buffer.count == len(values) and from_buffer.ordered()
    assert from_buffer.max_us == max(values) / 1000.0


def test_no_samples_is_the_empty_summary() -> None:
    assert summarize(new_samples(0)) is EMPTY
    assert summarize([]) is EMPTY


@pytest.mark.parametrize("size", [1, 2, 3, 999, 1001, 12_345])
def test_every_size_gives_the_textbook_nearest_rank(size: int) -> None:
    rng = random.Random(size)
    values = [rng.randrange(1, 10**9) for _ in range(size)]
    result = summarize(values)
    ranked = sorted(values)

    def nearest_rank(p: Fraction) -> float:
        return ranked[max(math.ceil(p * size), 1) - 1] / 1000.0

    expected = [nearest_rank(Fraction(p)) for p in ("0.5", "0.9", "0.99", "0.999")]
    assert [result.p50_us, result.p90_us, result.p99_us, result.p999_us] == expected
    assert result.count == size and result.max_us == ranked[-1] / 1000.0 and result.ordered()
