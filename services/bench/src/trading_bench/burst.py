"""burst: K events as fast as the client can emit them, and what the sidecar made of them.

The client's own counters say what it handed to ZeroMQ (``sent``) and what it gave up
(``dropped``: beyond its memory budget); what it still batches at the end of the loop is
flushed inside the timed burst. The sidecar's benchmark counters (its publisher ``src``
carries the benchmark prefix), read before and after, say what arrived (``received``)
and how many seq numbers were skipped (``lost``). The client
advances ``seq`` for dropped events too, so a drop that is followed by a delivered
event shows up in ``lost`` as well; drops at the very end of a burst do not (no later
seq reveals them). Hence, when nothing is lost in transit:
``sent + dropped == events``, ``received == sent`` and ``lost <= dropped``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from telemetry_contract.codec import BENCH_SOURCE_PREFIX
from trading_publisher.client import Publisher

from trading_bench.common import RunContext, progress_bar, trade_mix
from trading_bench.rows import Row, make_row
from trading_bench.sidecar import Counts

DEFAULT_EVENTS = 1_000_000
_CHUNK = 10_000


@dataclass(frozen=True)
class BurstSend:
    events: int
    sent: int
    dropped: int
    elapsed_s: float
    started_at: float
    #: Still waiting in the client when the burst ended (no queue had room).
    queued: int = 0


def send(ctx: RunContext, publisher: Publisher, events: int) -> BurstSend:
    """Emit ``events`` trades back to back; progress is updated per chunk, not per call."""
    mix = trade_mix(min(events, 100_000))
    trade = publisher.trade
    sent0, dropped0 = publisher.sent, publisher.dropped
    started_at = time.time()
    t0 = time.perf_counter()
    with progress_bar(ctx, events, "burst") as bar:
        done = 0
        while done < events:
            chunk = min(_CHUNK, events - done)
            for i in range(done, done + chunk):
                side, qty = mix[i % len(mix)]
                trade(side, qty)
            done += chunk
            bar.update(chunk)
    # Part of the burst: what the client still batches is handed to ZeroMQ here.
    _drain(publisher)
    elapsed = time.perf_counter() - t0
    return BurstSend(
        events,
        publisher.sent - sent0,
        publisher.dropped - dropped0,
        elapsed,
        started_at,
        publisher.queued,
    )


def _drain(publisher: Publisher, quiet_s: float = 2.0) -> None:
    """Flush until nothing waits in the client, or until that stops moving for
    ``quiet_s`` (a sidecar that reads nothing: then the rest stays queued, not sent)."""
    publisher.flush()
    last, moved = publisher.queued, time.monotonic()
    while last and time.monotonic() - moved < quiet_s:
        time.sleep(0.001)
        publisher.flush()
        if publisher.queued != last:
            last, moved = publisher.queued, time.monotonic()


def row(
    ctx: RunContext, burst: BurstSend, before: Counts | None, after: Counts | None, drained_s: float
) -> Row:
    received = lost = -1
    extra: dict[str, float] = {"queued_at_end": float(burst.queued)}
    if before is not None and after is not None:
        delta = after.minus(before)
        received, lost = int(delta.received), int(delta.lost)
        if drained_s > 0:
            extra["delivered_rate"] = delta.received / drained_s
            extra["drained_s"] = drained_s
    return make_row(
        run_id=ctx.run_id,
        mode="burst",
        variant="client",
        events=burst.events,
        sent=burst.sent,
        dropped=burst.dropped,
        received=received,
        lost=lost,
        elapsed_s=burst.elapsed_s,
        started_at=burst.started_at,
        extra=extra,
    )


def run(ctx: RunContext, events: int = DEFAULT_EVENTS) -> list[Row]:
    before = ctx.reader.counts() if ctx.reader is not None else None
    source = f"{BENCH_SOURCE_PREFIX}burst-{os.getpid()}-{time.time_ns() % 1_000_000}"
    with Publisher(ctx.address, source=source, sndhwm=ctx.sndhwm) as publisher:
        t0 = time.perf_counter()
        result = send(ctx, publisher, events)
        after = None
        drained_s = 0.0
        if ctx.reader is not None and before is not None:
            # Generous: a slow sidecar still gets to count everything it was sent.
            after = ctx.reader.settle(before.received + result.sent, timeout_s=120.0)
            drained_s = time.perf_counter() - t0
    return [row(ctx, result, before, after, drained_s)]
