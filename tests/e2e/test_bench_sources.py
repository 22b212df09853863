"""Benchmark traffic (src starting with BENCH_SOURCE_PREFIX) stays out of the trading series.

A real sidecar gets trades from a desk publisher and from benchmark publishers, through
both of its paths (the canonical fast path and the general decoder), with seq gaps on
both kinds of source. The trading series must count the desk's trades alone, the
benchmark series the benchmark's alone, and each kind's losses land in its own counter.
"""

from __future__ import annotations

import time

import zmq
from support import Samples, Sidecar, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX, encode_trade
from trading_publisher.client import Publisher
from trading_publisher.sockets import push_socket


def counted(sidecar: Sidecar, frames: int) -> Samples | None:
    """The scrape once every frame is received and counted as one kind of trade or other."""
    s = sidecar.scrape()
    trades = value(s, names.TRADES, side="buy") + value(s, names.TRADES, side="sell")
    done = value(s, names.RECEIVED) == frames == trades + value(s, names.BENCH_TRADES)
    return s if done else None


def test_bench_trades_move_only_the_benchmark_series(sidecar: Sidecar) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    raw = push_socket(ctx, sidecar.zmq_address)
    desk_ts = time.time() - 0.5
    try:
        with (
            # One frame per event (batch_size=1), so frames and events count alike here.
            Publisher(sidecar.zmq_address, source="desk-1", batch_size=1, context=ctx) as desk,
            Publisher(
                sidecar.zmq_address, source=BENCH_SOURCE_PREFIX + "t", batch_size=1, context=ctx
            ) as b,
        ):
            for _ in range(300):  # interleaved, so the fast path switches stream each frame
                assert desk.trade("buy", 2.0)
                assert b.trade("sell", 1000.0)
            wait_for(lambda: value(sidecar.scrape(), names.RECEIVED) == 600, what="600 frames")
        # One connection from here on, so arrival order is send order. The general
        # decoder's path (not the encoder's layout: spaces), with a gap of 4 on a
        # benchmark source, and of 2 on a desk source on the fast path.
        for seq in (0, 5):
            raw.send(
                b'{"type": "trade", "side": "buy", "qty": 7, "ts": %d, "src": "%sraw",'
                b' "seq": %d}' % (int(time.time()), BENCH_SOURCE_PREFIX.encode(), seq)
            )
        raw.send(encode_trade("sell", 3.0, desk_ts, src="desk-2", seq=0))
        raw.send(encode_trade("sell", 3.0, desk_ts, src="desk-2", seq=3))
        # The last trading trade (no src), then a fast-path gap of 9 on a benchmark
        # source with later timestamps, which must not become last_trade_ts.
        raw.send(encode_trade("buy", 4.0, desk_ts))
        raw.send(encode_trade("buy", 1.0, time.time(), src=BENCH_SOURCE_PREFIX + "g", seq=0))
        raw.send(encode_trade("buy", 1.0, time.time(), src=BENCH_SOURCE_PREFIX + "g", seq=10))
        samples = wait_for(lambda: counted(sidecar, 607), what="all 607 frames counted")
    finally:
        raw.close(linger=1000)
        ctx.term()

    # Trading series: the desk's 300 buys, desk-2's two sells and the src-less buy only.
    assert value(samples, names.TRADES, side="buy") == 301
    assert value(samples, names.TRADES, side="sell") == 2
    assert value(samples, names.VOLUME, side="buy") == 300 * 2.0 + 4.0
    assert value(samples, names.VOLUME, side="sell") == 6.0
    assert value(samples, names.LAST_TRADE_TS) == desk_ts  # never a benchmark event's ts
    assert value(samples, names.LOST) == 2
    assert value(samples, names.E2E_LATENCY + "_count") == 303
    # Benchmark series: 300 client trades, two raw ones, two on the fast path.
    assert value(samples, names.BENCH_TRADES) == 304
    assert value(samples, names.BENCH_LOST) == 4 + 9
    assert value(samples, names.BENCH_E2E_LATENCY + "_count") == 304
    assert value(samples, names.INVALID, reason="malformed_json") == 0
