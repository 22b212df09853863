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

import multiprocessing
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import zmq
from prometheus_client import CollectorRegistry, Counter, Gauge
from telemetry_contract.codec import TradeEncoder, join_batch
from telemetry_contract.errors import InvalidMessage
from telemetry_contract.events import SIDE_CODES, SIDES
from telemetry_contract.frames import encode_columns
from telemetry_contract.transport import DEFAULT_RCVHWM, DEFAULT_SNDHWM
from trading_publisher.options import DEFAULT_BATCH_SIZE
from trading_publisher.sockets import push_socket
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.receiver import DRAIN_BATCH, drain
from trading_sidecar.sockets import pull_socket

from trading_bench import curve
from trading_bench.common import BenchError, RunContext, progress_bar, trade_mix
from trading_bench.processes import LOOPBACK_ANY_PORT
from trading_bench.rows import Row, make_row

DEFAULT_EVENTS = 300_000
ROUNDS = 3
#: Trades per frame of the batch variant (the publisher's default batch size).
BATCH = 64
#: Trades per columnar frame (the publisher client's default batch size).
COLUMNS = DEFAULT_BATCH_SIZE
#: raw-recv, sidecar and naive-json-prometheus drain single-event frames; sidecar-batch
#: drains the same events as JSON batch frames of BATCH trades, sidecar-columns as the
#: client's columnar frames of COLUMNS trades.
VARIANTS = ("raw-recv", "sidecar", "sidecar-batch", "sidecar-columns", "naive-json-prometheus")
#: A consumer that waits this long for a frame stops and reports what it got.
IDLE_MS = 5_000
#: Filling the queue fails once no frame has fit for this long.
STALL_S = 5.0
#: Not the benchmark prefix: these frames take the trading path (see the module doc).
SOURCE = "trade-ingest"


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


def _consume_sidecar(sock: zmq.Socket[bytes], frames: int) -> int:
    """Trades the sidecar's own metrics counted (not the frames handed to it)."""
    metrics = TradeMetrics()
    rejected: list[InvalidMessage] = []
    handled = 0
    poll = sock.poll
    while handled < frames:
        if not poll(IDLE_MS, zmq.POLLIN):
            break
        handled += drain(sock, metrics, rejected.append, DRAIN_BATCH)
    if rejected:
        raise RuntimeError(f"the sidecar refused benchmark frames: {rejected[0]}")
    return sum(metrics.trades.values())


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
    "sidecar": _consume_sidecar,
    "sidecar-batch": _consume_sidecar,
    "sidecar-columns": _consume_sidecar,
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


def _frames(events: int) -> list[bytes]:
    encode = TradeEncoder(SOURCE)
    now = time.time()
    return [encode(side, qty, now, seq) for seq, (side, qty) in enumerate(trade_mix(events))]


def _batches(single: list[bytes]) -> list[bytes]:
    """The same trades as batch frames of BATCH, exactly as the contract joins them."""
    return [join_batch(single[i : i + BATCH]) for i in range(0, len(single), BATCH)]


def _columns(events: int) -> list[bytes]:
    """The same kind of trades as columnar frames of COLUMNS, as the client sends them."""
    mix = trade_mix(events)
    code_of: dict[str, str] = {side: code for side, code in SIDE_CODES.items()}
    now = time.time_ns()
    found = []
    for start in range(0, events, COLUMNS):
        chunk = mix[start : start + COLUMNS]
        codes = "".join(code_of[side] for side, _ in chunk)
        qtys = [qty for _, qty in chunk]
        found.append(encode_columns(SOURCE, 0, 0, start, codes, qtys, [now] * len(chunk)))
    return found


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


class ConsumerChild:
    """A consumer in a spawned child process, driven over a pipe (ingest's and curve's).

    ``target(*args, conn)`` binds, sends its address, and finally sends (counted,
    seconds); :meth:`address` and :meth:`result` wait for those with a limit, so a child
    that never gets there fails the run with ``"<what> did not start/finish"`` instead of
    hanging it. Leaving the ``with`` joins the child, and kills it if it is still there.
    """

    def __init__(self, what: str, target: Callable[..., None], *args: object) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.what = what
        self.pipe, child_end = spawn.Pipe()
        self._process = spawn.Process(target=target, args=(*args, child_end))

    def __enter__(self) -> ConsumerChild:
        self._process.start()
        return self

    def address(self) -> str:
        if not self.pipe.poll(60):
            raise RuntimeError(f"{self.what} did not start")
        address: str = self.pipe.recv()
        return address

    def result(self) -> tuple[int, float]:
        if not self.pipe.poll(600):
            raise RuntimeError(f"{self.what} did not finish")
        counted, seconds = self.pipe.recv()
        return int(counted), float(seconds)

    def __exit__(self, *exc: object) -> None:
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


@dataclass
class Rounds:
    """Each variant's (count, seconds) over the rounds; the median time is what counts."""

    times: dict[str, list[float]]
    counted: dict[str, list[int]]

    def median(self, variant: str) -> float:
        return statistics.median(self.times[variant])

    def row(
        self,
        ctx: RunContext,
        variant: str,
        events: int,
        frames: int,
        started_at: float,
        ratios: dict[str, float],
    ) -> Row:
        """The variant's ingest row: its median time, and the round that counted least
        (one short round must not hide behind others)."""
        seconds = self.median(variant)
        received = min(self.counted[variant])
        times = self.times[variant]
        return make_row(
            run_id=ctx.run_id, mode="ingest", variant=variant, events=events,
            sent=events, received=received, lost=events - received,
            elapsed_s=seconds, started_at=started_at,
            extra={
                **ratios,
                "ns_per_event": seconds * 1e9 / events,
                "events_per_frame": events / frames,
                "spread": (max(times) - min(times)) / seconds,
            },
        )  # fmt: skip


def measure_rounds(
    ctx: RunContext,
    variants: Sequence[str],
    rounds: int,
    bar: tuple[str, str],
    order: Callable[[int], Sequence[str]],
    measure: Callable[[str], tuple[int, float]],
) -> Rounds:
    """``measure`` every variant once per round, in ``order(round)``, under one progress
    bar (``bar``: its title and unit)."""
    found = Rounds({v: [] for v in variants}, {v: [] for v in variants})
    title, unit = bar
    with progress_bar(ctx, len(variants) * rounds, title, unit=unit) as progress:
        for r in range(rounds):
            for variant in order(r):
                count, seconds = measure(variant)
                found.times[variant].append(seconds)
                found.counted[variant].append(count)
                progress.update(1)
    return found


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
    single = _frames(events)
    feeds = {variant: single for variant in VARIANTS}
    feeds["sidecar-batch"] = _batches(single)
    feeds["sidecar-columns"] = _columns(events)
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
