"""The benchmark's own arithmetic, and the client's quick encoder against the decoder.

TradeEncoder.now is a shortcut past repr(float) (``ts`` as ``<ns>e-9``): its frames must
decode to what was meant. Also e2e quantiles from buckets, the pacer's schedule and the
target verdicts.
"""

from __future__ import annotations

import math

import pytest
from telemetry_contract.codec import TradeEncoder, decode
from telemetry_contract.events import Trade
from trading_bench import e2e
from trading_bench.pacer import Pacer
from trading_bench.targets import Target


@pytest.mark.parametrize("src", [None, "bench-1"])
def test_now_encoder_writes_what_the_decoder_reads(src: str | None) -> None:
    import time

    encoder = TradeEncoder(src)
    before = time.time()
    frame = encoder.now("sell", 12.5, 7)
    after = time.time()
    [event] = decode(frame).events
    assert isinstance(event, Trade)
    assert (event.side, event.qty) == ("sell", 12.5)
    assert before - 1e-6 <= event.ts <= after + 1e-6
    assert (event.src, event.seq) == ((src, 7) if src else (None, None))
    # Off the quick route: converted or refused exactly as __call__ does.
    assert isinstance(decode(encoder.now("buy", 3, 8)).events[0], Trade)
    for side, qty in (("hold", 1.0), ("buy", math.nan), ("buy", -1.0), ("buy", math.inf)):
        with pytest.raises(ValueError):
            encoder.now(side, qty, 9)


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


def test_pacer_deadlines_come_from_the_start_not_the_previous_send() -> None:
    pacer = Pacer(10_000.0, start_ns=0)
    assert [pacer.due_ns(i) for i in (0, 1, 10, 10_000)] == [0, 100_000, 1_000_000, 10**9]
    late = Pacer(1_000_000.0)
    due = late.wait(0)
    assert late.wait(5) == due + 5_000  # never shifted by how late the previous one was
    with pytest.raises(ValueError):
        Pacer(0)


def test_target_verdicts() -> None:
    assert Target("a", 1.0, 1.5, "<=").met and not Target("a", 2.0, 1.5, "<=").met
    assert Target("b", 3.0, 3.0, ">=").met and not Target("b", 2.9, 3.0, ">=").met
