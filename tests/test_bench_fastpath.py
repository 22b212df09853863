"""The fast paths the benchmark led to must mean exactly what the general code means.

decode_canonical_trade is a shortcut past json.loads for the encoder's own layout, and
TradeEncoder.now a shortcut past repr(float): each is checked against the general path
on many frames, including near-misses that must fall back. Also the benchmark's own
arithmetic: e2e quantiles from buckets, the pacer's schedule, the target verdicts.
"""

from __future__ import annotations

import math
import random

import pytest
from telemetry_contract.codec import (
    MAX_FRAME_BYTES,
    TradeEncoder,
    decode,
    decode_canonical_trade,
    encode_trade,
)
from telemetry_contract.errors import InvalidMessage
from telemetry_contract.events import TradeEvent
from trading_bench import e2e
from trading_bench.pacer import Pacer
from trading_bench.targets import Target


def general(frame: bytes) -> TradeEvent | None:
    """What the strict decoder makes of a frame, with the fast path out of the way."""
    import json

    from telemetry_contract import codec

    try:
        obj = json.loads(frame.decode("utf-8"))
    except ValueError:
        return None
    if len(frame) > MAX_FRAME_BYTES or type(obj) is not dict or obj.get("type") != "trade":
        return None
    try:
        return codec._decode_trade(obj)
    except InvalidMessage:
        return None


def frames(rng: random.Random) -> list[bytes]:
    out = []
    for _ in range(3000):
        qty = rng.choice([0.0, 1.0, 3, 0.1, 1e-7, 123.456, 1e22, 5e300, rng.uniform(0, 1e6)])
        ts = rng.choice([0.0, 1.5, 1_700_000_000.123456, rng.uniform(0, 2e9)])
        src = rng.choice([None, "a", "host-1", "x" * 64, 'q"uote', "ünï", "sp ace"])
        seq = None if src is None else rng.choice([0, 1, 2**40, 10**17])
        out.append(encode_trade(rng.choice(["buy", "sell"]), qty, ts, src, seq))
    # Near misses: each must be refused by the shortcut or mean the same as json says.
    out += [
        b'{"type":"trade","side":"buy","qty":1e400,"ts":1}',
        b'{"type":"trade","side":"buy","qty":-1,"ts":1}',
        b'{"type":"trade","side":"buy","qty":01,"ts":1}',
        b'{"type":"trade","side":"buy","qty":1.,"ts":1}',
        b'{"type":"trade","side":"buy","qty":1,"ts":1,"src":"a","seq":-1}',
        b'{"type":"trade","side":"buy","qty":1,"ts":1,"src":"","seq":1}',
        b'{"type":"trade","side":"buy","qty":1,"ts":1,"src":"a\\\\b","seq":1}',
        b'{"type":"trade","side":"buy","qty":1,"ts":1,"src":"a","seq":1} ',
        b'{"type":"trade","side":"hold","qty":1,"ts":1}',
        b'{"type":"trade", "side":"buy","qty":1,"ts":1}',
        b'{"type":"trade","side":"buy","qty":1' + b"0" * 30 + b',"ts":1}',
        b'{"type":"trade","side":"buy","qty":1,"ts":1,"src":"' + b"x" * 65 + b'","seq":1}',
        b'{"type":"trade","side":"buy","qty":1,"ts":1,"seq":1}',
    ]
    return out


def test_canonical_shortcut_agrees_with_the_strict_decoder() -> None:
    shortcut = 0
    for frame in frames(random.Random(11)):
        fields = decode_canonical_trade(frame)
        expected = general(frame)
        if fields is not None:
            shortcut += 1
            assert expected is not None, frame
            assert TradeEvent(*fields) == expected, frame
        try:
            assert decode(frame) == expected, frame
        except InvalidMessage:
            assert expected is None, frame
    assert shortcut > 1500  # the encoder's own frames do take the shortcut


@pytest.mark.parametrize("src", [None, "bench-1"])
def test_now_encoder_writes_what_the_decoder_reads(src: str | None) -> None:
    import time

    encoder = TradeEncoder(src)
    before = time.time()
    frame = encoder.now("sell", 12.5, 7)
    after = time.time()
    event = decode(frame)
    assert isinstance(event, TradeEvent)
    assert (event.side, event.qty) == ("sell", 12.5)
    assert before - 1e-6 <= event.ts <= after + 1e-6
    assert (event.src, event.seq) == ((src, 7) if src else (None, None))
    assert decode_canonical_trade(frame) is not None
    # Off the quick route: converted or refused exactly as __call__ does.
    assert isinstance(decode(encoder.now("buy", 3, 8)), TradeEvent)
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


def test_batch_counting_equals_one_by_one_counting() -> None:
    """TradeMetrics.record_canonical (the sidecar's batch path) vs record_trade, with
    interleaved publishers, gaps, a restart, a source without src/seq and benchmark
    sources, whose trades, losses and latencies must go to the benchmark series only."""
    from telemetry_contract.codec import CANONICAL_TRADE_MATCH
    from trading_sidecar.metrics import TradeMetrics

    rng = random.Random(5)
    batch, one_by_one = TradeMetrics(), TradeMetrics()
    now = 1_700_000_100.0
    seqs = {"a": 0, "b": 100, "c": 0, "bench-x": 0, "bench-y": 7}
    for round_ in range(4):
        pending = []
        for _ in range(300):
            src = rng.choice(["a", "a", "a", "b", "c", None, "bench-x", "bench-x", "bench-y"])
            seq = None
            if src is not None:
                seqs[src] += rng.choice([1, 1, 1, 2, 5])  # gaps of 1 and 4
                if rng.random() < 0.01:
                    seqs[src] = 0  # a restart: starts a new stream, not a loss
                seq = seqs[src]
            frame = encode_trade(rng.choice(["buy", "sell"]), rng.uniform(0, 100),
                                 now - rng.uniform(-0.001, 0.01), src, seq)  # fmt: skip
            matched = CANONICAL_TRADE_MATCH(frame)
            assert matched is not None
            pending.append(matched.groups())
            event = decode(frame)
            assert isinstance(event, TradeEvent)
            one_by_one.record_trade(event, now + round_)
        batch.record_canonical(pending, now + round_)
    for name in ("trades", "volume", "last_trade_ts", "lost", "latency_counts", "latency_sum",
                 "_last_seq", "bench_trades", "bench_lost", "bench_latency_counts",
                 "bench_latency_sum"):  # fmt: skip
        assert getattr(batch, name) == pytest.approx(getattr(one_by_one, name)), name
    assert list(batch._last_seq) == list(one_by_one._last_seq)
    assert batch.lost > 0 and batch.bench_lost > 0 and batch.bench_trades > 0
    # Every frame counted once, in exactly one of the two kinds.
    assert sum(batch.trades.values()) + batch.bench_trades == 4 * 300
    assert sum(batch.latency_counts) == sum(batch.trades.values())
    assert sum(batch.bench_latency_counts) == batch.bench_trades
