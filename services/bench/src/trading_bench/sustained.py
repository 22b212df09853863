"""sustained: a steady target rate for a while; achieved rate, call cost and e2e latency.

Events are paced by :class:`Pacer` (no drift), each ``trade()`` is timed on its own,
and the sidecar's e2e histogram, read before and after, gives publish→counted latency
for exactly this run's events. Achieved rate is (events - 1) over the time from the
first send to the last, i.e. the rate of the intervals actually produced.
"""

from __future__ import annotations

import functools
import math
import os
import time

from trading_publisher.client import Publisher

from trading_bench import e2e
from trading_bench.common import RunContext, progress_bar, trade_mix
from trading_bench.latency import Percentiles, new_samples, summarize
from trading_bench.pacer import Pacer
from trading_bench.rows import Row, make_row

DEFAULT_RATES = (1_000.0, 10_000.0, 50_000.0)
DEFAULT_DURATION_S = 10.0
#: The e2e target's bound; it is one of the histogram's bucket bounds, so it is exact.
E2E_TARGET_S = 0.00025


def _one_rate(ctx: RunContext, rate: float, duration_s: float) -> list[Row]:
    events = max(2, round(rate * duration_s))
    mix = trade_mix(min(events, 100_000))
    samples = new_samples(events)
    before = ctx.reader.counts() if ctx.reader is not None else None
    source = f"bench-sustained-{os.getpid()}-{int(rate)}"
    with Publisher(ctx.address, source=source, sndhwm=ctx.sndhwm) as publisher:
        trade = publisher.trade
        clock = time.perf_counter_ns
        # Let the connection come up before the first deadline, so it is not all lag.
        deadline = time.monotonic() + 5
        while not publisher.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        started_at = time.time()
        pacer = Pacer(rate)
        wait = pacer.wait
        first = last = 0
        step = max(1, int(rate // 4))
        with progress_bar(ctx, events, f"sustained {rate:,.0f}/s") as bar:
            for i in range(events):
                wait(i)
                t0 = clock()
                side, qty = mix[i % len(mix)]
                trade(side, qty)
                t1 = clock()
                samples[i] = t1 - t0
                if i == 0:
                    first = t0
                last = t0
                if i % step == step - 1:
                    bar.update(step)
        elapsed = (last - first) / 1e9
        sent, dropped = publisher.sent, publisher.dropped
        after = None
        if ctx.reader is not None and before is not None:
            after = ctx.reader.settle(before.received + sent, timeout_s=60.0)
    achieved = (events - 1) / elapsed if elapsed > 0 else 0.0
    extra = {
        "achieved_rate": achieved,
        "rate_error": achieved / rate - 1.0,
        "max_lag_us": pacer.max_lag_ns / 1000.0,
    }
    received = lost = -1
    e2e_latency = None
    if before is not None and after is not None:
        delta = after.minus(before)
        received, lost = int(delta.received), int(delta.lost)
        buckets = delta.e2e_buckets
        q = [e2e.quantile(p, buckets) * 1e6 for p in (0.5, 0.9, 0.99, 0.999, 1.0)]
        if not any(math.isnan(v) for v in q):
            e2e_latency = Percentiles(int(buckets[-1][1]), *q)
            extra.update(
                e2e_p50_us=q[0],
                e2e_p90_us=q[1],
                e2e_p99_us=q[2],
                e2e_p999_us=q[3],
                e2e_within_250us=e2e.fraction_within(E2E_TARGET_S, buckets),
            )
    # The row's rate is the achieved interval rate, not events over wall time.
    label = f"{rate:g}"
    # Both rows describe the same events; only the variant and what was timed differ.
    row = functools.partial(
        make_row,
        run_id=ctx.run_id,
        mode="sustained",
        events=events,
        sent=sent,
        dropped=dropped,
        received=received,
        lost=lost,
        elapsed_s=elapsed * events / (events - 1),
        target_rate=rate,
        started_at=started_at,
    )
    rows = [row(variant=f"client-{label}", latency=summarize(samples), extra=extra)]
    if e2e_latency is not None:
        rows.append(row(variant=f"e2e-{label}", latency=e2e_latency))
    return rows


def run(
    ctx: RunContext,
    rates: tuple[float, ...] = DEFAULT_RATES,
    duration_s: float = DEFAULT_DURATION_S,
) -> list[Row]:
    rows: list[Row] = []
    for rate in rates:
        rows.extend(_one_rate(ctx, rate, duration_s))
    return rows
