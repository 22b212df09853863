"""ingest: how many events/s a consumer can count, the sidecar's code against two others.

Each consumer runs in a child process of its own with a PULL socket set up as the
sidecar's. The parent fills its queue with N real client frames first and only then
says "go", so what is timed is the consumer alone draining a full queue, not the
sender. The sidecar variants call :func:`trading_sidecar.receiver.drain`, the very loop
the sidecar runs (recv, the contract's validating decoder, every metric): ``sidecar``
on single-event frames, ``sidecar-batch`` on the same events as batch frames of 64,
``sidecar-columns`` as the client's columnar frames of 1,024. The
floor (``raw-recv``) only ``recv``s single-event frames; the naive loop is
``json.loads`` plus prometheus_client counters, as a first version would be.

Only the consumer's own work is timed: ``drain`` alone, without the sidecar's HTTP
server and asyncio threads competing for the GIL, so the real sidecar process counts
less than this (see docs/benchmark.md). The frames carry a publisher ``src`` *without*
the benchmark prefix on purpose: they never reach a shared sidecar, and what is measured
is the path real trades take. Each consumer reports what it counted itself (frames
received, or its own trade counters), and the queue is filled with non-blocking sends
that fail with a clear error when it cannot hold all the events, instead of hanging.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

import zmq
from prometheus_client import CollectorRegistry, Counter, Gauge
from telemetry_contract.events import SIDES
from telemetry_contract.transport import DEFAULT_RCVHWM, DEFAULT_SNDHWM
from trading_devkit.processes import LOOPBACK_ANY_PORT
from trading_publisher.sockets import push_socket
from trading_sidecar.sockets import pull_socket

from trading_bench import curve
from trading_bench.common import BenchError, RunContext
from trading_bench.consumers import (
    IDLE_MS,
    ConsumerChild,
    batch_frames,
    column_frames,
    consume_sidecar,
    measure_rounds,
    single_frames,
)
from trading_bench.rows import Row

DEFAULT_EVENTS = 300_000
ROUNDS = 3
#: raw-recv, sidecar and naive-json-prometheus drain single-event frames; sidecar-batch
#: drains the same events as JSON batch frames of BATCH trades, sidecar-columns as the
#: client's columnar frames of COLUMNS trades.
VARIANTS = ("raw-recv", "sidecar", "sidecar-batch", "sidecar-columns", "naive-json-prometheus")
#: Filling the queue fails once no frame has fit for this long.
STALL_S = 5.0


def _consume_raw(sock: zmq.Socket[bytes], events: int) -> int:
    """Frames received: the loop index of the first ``recv`` that timed out, or all."""
    recv = sock.recv
    done = 0
    try:
        for done in range(events):  # noqa: B007 - the index is the count on timeout
            recv()
    except zmq.Again:
        return done
    return events


def _consume_naive(sock: zmq.Socket[bytes], events: int) -> int:
    """Trades its own prometheus_client counters counted."""
    import json

    registry = CollectorRegistry()
    trades = Counter("naive_trades", "trades", ["side"], registry=registry)
    volume = Counter("naive_volume", "volume", ["side"], registry=registry)
    last = Gauge("naive_last_trade_ts", "last", registry=registry)
    recv = sock.recv
    loads = json.loads
    try:
        for _ in range(events):
            event = loads(recv())
            trades.labels(event["side"]).inc()
            volume.labels(event["side"]).inc(event["qty"])
            last.set(event["ts"])
    except zmq.Again:
        pass
    return int(
        sum(registry.get_sample_value("naive_trades_total", {"side": s}) or 0 for s in SIDES)
    )


def _leftover(sock: zmq.Socket[bytes]) -> int:
    """Frames still queued after a consumer finished: more than were sent arrived."""
    extra = 0
    while sock.poll(200, zmq.POLLIN):
        sock.recv(zmq.NOBLOCK)
        extra += 1
    return extra


_CONSUMERS = {
    "raw-recv": _consume_raw,
    "sidecar": consume_sidecar,
    "sidecar-batch": consume_sidecar,
    "sidecar-columns": consume_sidecar,
    "naive-json-prometheus": _consume_naive,
}


def _child(variant: str, events: int, rcvhwm: int, conn: Connection) -> None:
    """Bind ``:*``, report the address, wait for go, drain ``events`` frames, report
    (counted, seconds)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = pull_socket(ctx, LOOPBACK_ANY_PORT, rcvhwm=rcvhwm)
    sock.setsockopt(zmq.RCVTIMEO, IDLE_MS)
    try:
        conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        if conn.recv() != "go":
            return
        t0 = time.perf_counter()
        counted = _CONSUMERS[variant](sock, events)
        seconds = time.perf_counter() - t0
        conn.send((counted + _leftover(sock), seconds))
    finally:
        sock.close(linger=0)
        ctx.term()


def _fill(sock: zmq.Socket[bytes], frames: list[bytes], stall_s: float) -> None:
    """Queue every frame without ever blocking for good: a full queue is an error."""
    send = sock.send
    noblock = zmq.NOBLOCK
    for index, frame in enumerate(frames):
        while True:
            try:
                send(frame, noblock)
                break
            except zmq.Again:
                if not sock.poll(int(stall_s * 1000), zmq.POLLOUT):
                    raise BenchError(
                        f"ingest: the consumer's queue took {index:,} of {len(frames):,} "
                        f"frames and no more for {stall_s:g} s; all events must be queued "
                        "before the timed drain starts (send and receive high-water marks "
                        f"plus socket buffers): use --events {index:,} or fewer"
                    ) from None


def _measure(
    variant: str,
    frames: list[bytes],
    *,
    sndhwm: int = DEFAULT_SNDHWM,
    rcvhwm: int = DEFAULT_RCVHWM,
    stall_s: float = STALL_S,
) -> tuple[int, float]:
    with ConsumerChild(f"ingest consumer {variant}", _child, variant, len(frames), rcvhwm) as child:
        address = child.address()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = push_socket(ctx, address, sndhwm=sndhwm, linger_ms=60_000)
        try:
            _fill(sock, frames, stall_s)
        except BenchError:
            sock.close(linger=0)
            ctx.term()
            child.pipe.send("stop")
            raise
        sock.close()
        ctx.term()  # returns once every frame is on the wire
        time.sleep(0.5)  # and the consumer's I/O thread has moved it into the queue
        child.pipe.send("go")
        return child.result()


def run(ctx: RunContext, events: int = DEFAULT_EVENTS, rounds: int = ROUNDS) -> list[Row]:
    """Each variant drains ``rounds`` times, in rotating order; its median time counts.

    On a shared machine one drain can be slowed by a neighbour; the median of rounds
    spread across the run is what a variant sustains, and the rotation keeps any slow
    stretch from landing on the same variant every time.
    """
    single = single_frames(events)
    feeds = {variant: single for variant in VARIANTS}
    feeds["sidecar-batch"] = batch_frames(single)
    feeds["sidecar-columns"] = column_frames(events)
    started_at = time.time()
    n = len(VARIANTS)
    found = measure_rounds(
        ctx,
        VARIANTS,
        rounds,
        ("ingest", "drain"),
        lambda r: VARIANTS[r % n :] + VARIANTS[: r % n],
        lambda variant: _measure(variant, feeds[variant]),
    )
    # raw-recv drains single-event frames, so its rate is frames/s = events/s.
    floor_rate = events / found.median("raw-recv")
    naive_rate = events / found.median("naive-json-prometheus")
    rows = []
    for variant in VARIANTS:
        rate = events / found.median(variant)
        ratios = {"ratio_to_floor": rate / floor_rate, "ratio_to_naive": rate / naive_rate}
        rows.append(found.row(ctx, variant, events, len(feeds[variant]), started_at, ratios))
    # CURVE's cost shows only with sender and consumer running at once (trading_bench.curve).
    rows.extend(curve.stream_rows(ctx, min(events, curve.DEFAULT_STREAM_EVENTS), rounds))
    return rows
