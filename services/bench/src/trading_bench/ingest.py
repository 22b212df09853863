"""ingest: how many events/s a consumer can count, the sidecar's code against two others.

Each consumer runs in a child process of its own with a PULL socket set up as the
sidecar's. The parent fills its queue with N real client frames first and only then
says "go", so what is timed is the consumer alone draining a full queue, not the
sender. The sidecar variant calls :func:`trading_sidecar.receiver.drain`, the very loop
the sidecar runs (full validation, every metric); the floor only ``recv``s; the naive
loop is ``json.loads`` plus prometheus_client counters, as a first version would be.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection

import zmq
from prometheus_client import CollectorRegistry, Counter, Gauge
from telemetry_contract.codec import TradeEncoder
from telemetry_contract.errors import InvalidMessage
from telemetry_contract.transport import pull_socket, push_socket
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.receiver import DRAIN_BATCH, drain

from trading_bench.common import RunContext, progress_bar, trade_mix
from trading_bench.rows import Row, make_row
from trading_bench.sidecar import free_port

DEFAULT_EVENTS = 300_000
ROUNDS = 3
VARIANTS = ("raw-recv", "sidecar", "naive-json-prometheus")


def _consume_raw(sock: zmq.Socket[bytes], events: int) -> int:
    recv = sock.recv
    for _ in range(events):
        recv()
    return events


def _consume_sidecar(sock: zmq.Socket[bytes], events: int) -> int:
    metrics = TradeMetrics()
    rejected: list[InvalidMessage] = []
    handled = 0
    poll = sock.poll
    while handled < events:
        if poll(100, zmq.POLLIN):
            handled += drain(sock, metrics, rejected.append, DRAIN_BATCH)
    if rejected:
        raise RuntimeError(f"the sidecar refused benchmark frames: {rejected[0]}")
    return sum(metrics.trades.values())


def _consume_naive(sock: zmq.Socket[bytes], events: int) -> int:
    import json

    registry = CollectorRegistry()
    trades = Counter("naive_trades", "trades", ["side"], registry=registry)
    volume = Counter("naive_volume", "volume", ["side"], registry=registry)
    last = Gauge("naive_last_trade_ts", "last", registry=registry)
    recv = sock.recv
    loads = json.loads
    for _ in range(events):
        event = loads(recv())
        trades.labels(event["side"]).inc()
        volume.labels(event["side"]).inc(event["qty"])
        last.set(event["ts"])
    return events


_CONSUMERS = {
    "raw-recv": _consume_raw,
    "sidecar": _consume_sidecar,
    "naive-json-prometheus": _consume_naive,
}


def _child(variant: str, address: str, events: int, conn: Connection) -> None:
    """Bind, report ready, wait for go, drain ``events`` frames, report (counted, seconds)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = pull_socket(ctx, address)
    try:
        conn.send("ready")
        conn.recv()
        t0 = time.perf_counter()
        counted = _CONSUMERS[variant](sock, events)
        conn.send((counted, time.perf_counter() - t0))
    finally:
        sock.close(linger=0)
        ctx.term()


def _frames(events: int) -> list[bytes]:
    encode = TradeEncoder("bench-ingest")
    now = time.time()
    return [encode(side, qty, now, seq) for seq, (side, qty) in enumerate(trade_mix(events))]


def _measure(variant: str, frames: list[bytes]) -> tuple[int, float]:
    address = f"tcp://127.0.0.1:{free_port()}"
    spawn = multiprocessing.get_context("spawn")
    parent, child_end = spawn.Pipe()
    child = spawn.Process(target=_child, args=(variant, address, len(frames), child_end))
    child.start()
    try:
        if not parent.poll(60):
            raise RuntimeError(f"ingest consumer {variant} did not start")
        parent.recv()
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = push_socket(ctx, address, linger_ms=60_000)
        send = sock.send
        for frame in frames:
            send(frame)
        sock.close()
        ctx.term()  # returns once every frame is on the wire
        time.sleep(0.5)  # and the consumer's I/O thread has moved it into the queue
        parent.send("go")
        if not parent.poll(600):
            raise RuntimeError(f"ingest consumer {variant} did not finish")
        counted, seconds = parent.recv()
        return int(counted), float(seconds)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()


def run(ctx: RunContext, events: int = DEFAULT_EVENTS, rounds: int = ROUNDS) -> list[Row]:
    """Each variant drains ``rounds`` times, in rotating order; its median time counts.

    On a shared machine one drain can be slowed by a neighbour; the median of rounds
    spread across the run is what a variant sustains, and the rotation keeps any slow
    stretch from landing on the same variant every time.
    """
    frames = _frames(events)
    started_at = time.time()
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    counted: dict[str, int] = dict.fromkeys(VARIANTS, events)
    with progress_bar(ctx, len(VARIANTS) * rounds, "ingest", unit="drain") as bar:
        for r in range(rounds):
            for variant in VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]:
                count, seconds = _measure(variant, frames)
                times[variant].append(seconds)
                counted[variant] = min(counted[variant], count)
                bar.update(1)
    median = {variant: statistics.median(found) for variant, found in times.items()}
    floor_rate = events / median["raw-recv"]
    naive_rate = events / median["naive-json-prometheus"]
    rows = []
    for variant in VARIANTS:
        seconds = median[variant]
        rate = events / seconds
        rows.append(
            make_row(
                run_id=ctx.run_id, mode="ingest", variant=variant, events=events,
                sent=events, received=counted[variant], lost=events - counted[variant],
                elapsed_s=seconds, started_at=started_at,
                extra={
                    "ratio_to_floor": rate / floor_rate,
                    "ratio_to_naive": rate / naive_rate,
                    "ns_per_event": seconds * 1e9 / events,
                    "spread": (max(times[variant]) - min(times[variant])) / seconds,
                },
            )
        )  # fmt: skip
    return rows
