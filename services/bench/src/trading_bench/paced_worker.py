"""One variant of the paced benchmark, alone in its own process (``python -m``).

A trading loop as a user writes it: event ``i`` is due at ``start + i / rate``; the loop
waits for it by spinning on the clock (``busy``) or by sleeping (``sleep``), then makes
one call, timed on its own. ``continuous`` makes its calls back to back with no pause.
Nothing here touches the variant between two calls of a loop: whatever the variant's
own threads (the client's flusher, prometheus_client's HTTP server) cost the trading
thread lands in some call's time, which is the point.

Input: one JSON argument ``{"variant", "address", "loops": [[style, rate, events]],
"warmup"}``; output: one JSON line with per-loop numbers (see :func:`stats`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from array import array
from typing import Any

import numpy as np
import zmq

from trading_bench import variants
from trading_bench.common import trade_mix
from trading_bench.latency import new_samples, summarize
from trading_bench.variants import Call, Variant

#: Distinct (side, qty) arguments cycled through (a loop's lot sizes repeat).
MIX = 997
#: Share thresholds: calls slower than these are what a trader notices.
SLOW_NS, VERY_SLOW_NS = 100_000, 1_000_000


def build(spec: str, ctx: zmq.Context[zmq.Socket[bytes]], address: str) -> Variant:
    """A variant from its name, with ``@key=value,...`` options for lever runs."""
    name, _, options = spec.partition("@")
    opts = dict(part.split("=", 1) for part in options.split(",") if "=" in part)
    trades = trade_mix(MIX)
    if name == variants.CLIENT or name == variants.CLIENT_UNBATCHED:
        from telemetry_contract.codec import BENCH_SOURCE_PREFIX
        from trading_publisher.client import Publisher

        if opts.get("io_batch") == "1":  # libzmq's I/O thread as SCHED_BATCH (lever runs)
            ctx.set(zmq.THREAD_SCHED_POLICY, 3)
            ctx.set(zmq.THREAD_PRIORITY, 0)
        kwargs: dict[str, Any] = {"context": ctx}
        if name == variants.CLIENT_UNBATCHED:
            kwargs["batch_size"] = 1
        if "max_delay_ms" in opts:
            kwargs["max_delay_s"] = float(opts["max_delay_ms"]) / 1000
        if "batch_size" in opts:
            kwargs["batch_size"] = int(opts["batch_size"])
        pub = Publisher(address, source=BENCH_SOURCE_PREFIX + "paced", **kwargs)
        if "hold_events" in opts:
            from trading_publisher import flush

            flush.HOLD_EVENTS = int(opts["hold_events"])  # type: ignore[misc]
        found = variants.publisher_variant(name, pub, trades)
        found.publisher = pub  # type: ignore[attr-defined]
        return found
    if name == "floor":
        return variants.floor(ctx, address, trades)
    if name == variants.PROMETHEUS:
        return variants.prometheus(trades)
    if name == "statsd":
        return variants.statsd_udp(trades)
    if name == "opentelemetry":
        return variants.opentelemetry(trades)
    raise ValueError(f"unknown paced variant {spec!r}")


def busy(
    call: Call, args: list[tuple[Any, Any]], rate: float, samples: array[int], starts: array[int]
) -> None:
    """Spin on the clock until each event is due, then call."""
    clock = time.perf_counter_ns
    interval = 1e9 / rate
    m = len(args)
    start = clock()
    for i in range(len(samples)):
        due = start + int(i * interval)
        while clock() < due:
            pass
        a, b = args[i % m]
        t0 = clock()
        call(a, b)
        samples[i] = clock() - t0
        starts[i] = t0


def sleep(
    call: Call, args: list[tuple[Any, Any]], rate: float, samples: array[int], starts: array[int]
) -> None:
    """Sleep until each event is due (late events go at once), then call."""
    clock = time.perf_counter_ns
    pause = time.sleep
    interval = 1e9 / rate
    m = len(args)
    start = clock()
    for i in range(len(samples)):
        due = start + int(i * interval)
        now = clock()
        if now < due:
            pause((due - now) / 1e9)
        a, b = args[i % m]
        t0 = clock()
        call(a, b)
        samples[i] = clock() - t0
        starts[i] = t0


def continuous(
    call: Call, args: list[tuple[Any, Any]], rate: float, samples: array[int], starts: array[int]
) -> None:
    """Back to back, no pause."""
    clock = time.perf_counter_ns
    m = len(args)
    for i in range(len(samples)):
        a, b = args[i % m]
        t0 = clock()
        call(a, b)
        samples[i] = clock() - t0
        starts[i] = t0


LOOPS = {"busy": busy, "sleep": sleep, "continuous": continuous}


def loop_name(style: str, rate: float) -> str:
    """``busy-10000``, ``sleep-1000``, ``continuous``: a loop's key in every report."""
    return style if style == "continuous" else f"{style}-{int(rate)}"


def in_flush(samples: array[int], starts: array[int], flushes: list[tuple[int, int]]) -> float:
    """How many calls over 100 µs overlapped a flush of the client's own thread."""
    if not flushes:
        return -1.0
    durations = np.frombuffer(samples, dtype=np.int64)
    begins = np.frombuffer(starts, dtype=np.int64)
    slow = durations > SLOW_NS
    lo = begins[slow]
    hi = lo + durations[slow]
    f_start = np.array([f[0] for f in flushes], dtype=np.int64)
    f_end = np.array([f[1] for f in flushes], dtype=np.int64)
    # The last flush that started before the call ended: does it end after the call began?
    last = np.searchsorted(f_start, hi, side="right") - 1
    hit = (last >= 0) & (f_end[np.maximum(last, 0)] > lo)
    return float(np.count_nonzero(hit))


def traced(v: Variant) -> list[tuple[int, int]]:
    """Record (start, end) of every flush the client's own thread runs (``perf_counter``
    ns), to tell slow calls that met a flush from slow calls that met something else."""
    pub = getattr(v, "publisher", None)
    found: list[tuple[int, int]] = []
    if pub is None:
        return found
    outbox = getattr(pub, "_outbox", None)  # another commit's client (@tree=) may not have one
    if outbox is None:
        return found
    real = outbox.flush
    clock = time.perf_counter_ns

    def flush(give_way: bool = False) -> None:
        t0 = clock()
        real(give_way)
        if give_way:
            found.append((t0, clock()))

    outbox.flush = flush
    return found


def stats(samples: array[int], elapsed_s: float) -> dict[str, float]:
    """Nearest-rank percentiles (µs), the max, the share over 100 µs, the count over 1 ms."""
    latency = summarize(samples)
    values = np.frombuffer(samples, dtype=np.int64)
    return {
        "events": latency.count,
        "elapsed_s": elapsed_s,
        "p50_us": latency.p50_us,
        "p90_us": latency.p90_us,
        "p99_us": latency.p99_us,
        "p999_us": latency.p999_us,
        "max_us": latency.max_us,
        "over_100us": float(np.count_nonzero(values > SLOW_NS)) / max(latency.count, 1),
        "over_1ms": float(np.count_nonzero(values > VERY_SLOW_NS)),
        "mean_us": float(values.mean()) / 1000 if latency.count else 0.0,
    }


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    v = build(job["variant"], ctx, job["address"])
    out: dict[str, Any] = {"pid": os.getpid(), "loops": {}}
    try:
        scratch = new_samples(job["warmup"])
        continuous(v.call, v.args, 0.0, scratch, new_samples(job["warmup"]))
        v.settle()
        flushes = traced(v) if job.get("trace") else []
        for style, rate, events in job["loops"]:
            samples, starts = new_samples(int(events)), new_samples(int(events))
            del flushes[:]
            time.sleep(0.05)  # let the previous loop's work settle (not timed)
            before = v.counts() if v.counts is not None else (0, 0)
            t0 = time.perf_counter()
            LOOPS[style](v.call, v.args, float(rate), samples, starts)
            elapsed = time.perf_counter() - t0
            v.settle()  # hand what the client still holds to ZeroMQ, to count its drops
            found = stats(samples, elapsed)
            found["slow_in_flush"] = in_flush(samples, starts, flushes)
            holds = sorted(end - start for start, end in flushes)
            found["flushes_per_s"] = len(holds) / elapsed if elapsed > 0 else 0.0
            found["flush_p50_us"] = holds[len(holds) // 2] / 1000 if holds else 0.0
            found["flush_max_us"] = holds[-1] / 1000 if holds else 0.0
            if v.counts is not None:
                found["dropped"] = v.counts()[1] - before[1]
            out["loops"][loop_name(style, rate)] = found
    finally:
        v.close()
        ctx.term()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
