"""hotpath: what one emit costs the trading loop, for the client and every alternative.

All variants run in the same process against the same live sidecar, interleaved in
rounds (each round times a slice of every variant, in rotating order), so a noisy
neighbour or a frequency change hits every variant alike and the ratios to the floor
stay meaningful on a shared machine. Each call is timed on its own with
``perf_counter_ns``; the timer's own cost is in every row equally, so an ``empty``
variant (a call that does nothing) is timed in the same rounds, and the ratios to the
floor are taken on net values: each percentile minus the empty call's p50, the timer
overhead (a constant cost, so the same amount comes off every percentile).
"""

from __future__ import annotations

import time
from array import array
from typing import Any

import zmq

from trading_bench import curve, variants
from trading_bench.common import RunContext, progress_bar, trade_mix
from trading_bench.latency import Percentiles, new_samples, summarize
from trading_bench.rows import Row, make_row
from trading_bench.variants import Call, Variant

DEFAULT_CALLS = 200_000
ROUNDS = 10


def _timed(call: Call, args: list[tuple[Any, Any]], samples: array[int], start: int) -> int:
    """Time each call; returns how many calls completed (the loop's own count)."""
    clock = time.perf_counter_ns
    i = start
    for a, b in args:
        t0 = clock()
        call(a, b)
        samples[i] = clock() - t0
        i += 1
    return i - start


def _minus(now: tuple[int, int], then: tuple[int, int]) -> tuple[int, int]:
    return now[0] - then[0], now[1] - then[1]


def build(ctx: RunContext, zctx: zmq.Context[zmq.Socket[bytes]], calls: int) -> list[Variant]:
    trades = trade_mix(calls)
    return [
        variants.empty(trades),
        variants.floor(zctx, ctx.address, trades),
        variants.client(zctx, ctx.address, trades),
        variants.client_unbatched(zctx, ctx.address, trades),
        variants.seed(zctx, ctx.address, trades),
        variants.prometheus(trades),
        variants.opentelemetry(trades),
        variants.statsd_udp(trades),
        *curve.hotpath_variants(zctx, trades),
    ]


def run(ctx: RunContext, calls: int = DEFAULT_CALLS) -> list[Row]:
    zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    built = build(ctx, zctx, calls)
    warmup = max(100, calls // 50)
    rounds = min(ROUNDS, calls)
    bounds = [calls * r // rounds for r in range(rounds + 1)]
    samples = {v.name: new_samples(calls) for v in built}
    elapsed = dict.fromkeys(samples, 0.0)
    settled = dict.fromkeys(samples, 0.0)
    completed = dict.fromkeys(samples, 0)
    started_at = time.time()
    before: dict[str, tuple[int, int]] = {}
    try:
        scratch = new_samples(warmup)
        for v in built:
            _timed(v.call, v.args[:warmup], scratch, 0)
            v.settle()
        # What the warm-up sent is not part of the row's counts.
        before = {v.name: v.counts() for v in built if v.counts is not None}
        with progress_bar(ctx, calls * len(built), "hotpath") as bar:
            for r in range(rounds):
                lo, hi = bounds[r], bounds[r + 1]
                order = built[r % len(built) :] + built[: r % len(built)]
                for v in order:
                    t0 = time.perf_counter()
                    completed[v.name] += _timed(v.call, v.args[lo:hi], samples[v.name], lo)
                    t1 = time.perf_counter()
                    v.settle()
                    elapsed[v.name] += t1 - t0
                    settled[v.name] += time.perf_counter() - t1
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
    summaries = {v.name: summarize(samples[v.name]) for v in built}
    overhead = summaries[variants.EMPTY].p50_us
    floor = _net(summaries["floor"], overhead)
    rows = []
    for v in built:
        latency = summaries[v.name]
        net = _net(latency, overhead)
        # The client counts what it queued and refused; any other variant's calls all
        # completed (the loop's own count), and none of them can refuse an event.
        sent, dropped = counts.get(v.name, (completed[v.name], 0))
        extra = {
            "timer_overhead_us": overhead,
            # Work a variant left for after its slice (the batched client's last flush),
            # spread over its calls: the honest per-event total is net p50 + this.
            "settle_us_per_call": settled[v.name] * 1e6 / max(completed[v.name], 1),
        }
        if v.name != variants.EMPTY:
            extra.update(
                net_p50_us=net[0],
                net_p99_us=net[1],
                net_p999_us=net[2],
                ratio_p50=net[0] / floor[0],
                ratio_p99=net[1] / floor[1],
                ratio_p999=net[2] / floor[2],
            )
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
                extra=extra,
            )
        )
    return rows


#: Net values are floored here (µs) so a ratio never divides by zero or goes negative.
_NET_FLOOR_US = 0.001


def _net(latency: Percentiles, overhead_us: float) -> tuple[float, float, float]:
    """(p50, p99, p99.9) minus the timer overhead."""
    return (
        max(latency.p50_us - overhead_us, _NET_FLOOR_US),
        max(latency.p99_us - overhead_us, _NET_FLOOR_US),
        max(latency.p999_us - overhead_us, _NET_FLOOR_US),
    )
