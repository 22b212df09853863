"""hotpath: what one emit costs the trading loop, for the client and every alternative.

All variants run in the same process against the same live sidecar, interleaved in
rounds (each round times a slice of every variant, in rotating order), so a noisy
neighbour or a frequency change hits every variant alike and the ratios to the floor
stay meaningful on a shared machine. Each call is timed on its own with
``perf_counter_ns``; the timer's own cost is in every row equally.
"""

from __future__ import annotations

import time
from array import array
from typing import Any

import zmq

from trading_bench import variants
from trading_bench.common import RunContext, progress_bar, trade_mix
from trading_bench.latency import new_samples, summarize
from trading_bench.rows import Row, make_row
from trading_bench.variants import Call, Variant

DEFAULT_CALLS = 200_000
ROUNDS = 10


def _timed(call: Call, args: list[tuple[Any, Any]], samples: array[int], start: int) -> None:
    clock = time.perf_counter_ns
    i = start
    for a, b in args:
        t0 = clock()
        call(a, b)
        samples[i] = clock() - t0
        i += 1


def _minus(now: tuple[int, int], then: tuple[int, int]) -> tuple[int, int]:
    return now[0] - then[0], now[1] - then[1]


def build(ctx: RunContext, zctx: zmq.Context[zmq.Socket[bytes]], calls: int) -> list[Variant]:
    trades = trade_mix(calls)
    return [
        variants.floor(zctx, ctx.address, trades),
        variants.client(ctx.address, trades),
        variants.seed(zctx, ctx.address, trades),
        variants.prometheus(trades),
        variants.opentelemetry(trades),
        variants.statsd_udp(trades),
    ]


def run(ctx: RunContext, calls: int = DEFAULT_CALLS) -> list[Row]:
    zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    built = build(ctx, zctx, calls)
    warmup = max(100, calls // 50)
    rounds = min(ROUNDS, calls)
    bounds = [calls * r // rounds for r in range(rounds + 1)]
    samples = {v.name: new_samples(calls) for v in built}
    elapsed = dict.fromkeys(samples, 0.0)
    started_at = time.time()
    before: dict[str, tuple[int, int]] = {}
    try:
        scratch = new_samples(warmup)
        for v in built:
            _timed(v.call, v.args[:warmup], scratch, 0)
        # What the warm-up sent is not part of the row's counts.
        before = {v.name: v.counts() for v in built if v.counts is not None}
        with progress_bar(ctx, calls * len(built), "hotpath") as bar:
            for r in range(rounds):
                lo, hi = bounds[r], bounds[r + 1]
                order = built[r % len(built) :] + built[: r % len(built)]
                for v in order:
                    t0 = time.perf_counter()
                    _timed(v.call, v.args[lo:hi], samples[v.name], lo)
                    elapsed[v.name] += time.perf_counter() - t0
                    bar.update(hi - lo)
    finally:
        counts = {
            v.name: _minus(v.counts(), before.get(v.name, (0, 0)))
            for v in built
            if v.counts is not None
        }
        for v in built:
            v.close()
        zctx.term()
    rows = []
    floor = summarize(samples["floor"])
    for v in built:
        latency = summarize(samples[v.name])
        sent, dropped = counts.get(v.name, (calls, 0))
        rows.append(
            make_row(
                run_id=ctx.run_id,
                mode="hotpath",
                variant=v.name,
                events=calls,
                sent=sent,
                dropped=dropped,
                elapsed_s=elapsed[v.name],
                latency=latency,
                started_at=started_at,
                extra={
                    "ratio_p50": latency.p50_us / floor.p50_us if floor.p50_us else 0.0,
                    "ratio_p99": latency.p99_us / floor.p99_us if floor.p99_us else 0.0,
                    "ratio_p999": latency.p999_us / floor.p999_us if floor.p999_us else 0.0,
                },
            )
        )
    return rows
