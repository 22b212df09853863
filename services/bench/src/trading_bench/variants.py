"""The ways a trading loop could emit one trade, each as a ``call(a, b)`` to be timed.

Every variant is set up the way a careful user would (labels bound once, attributes
built once), so the comparison is against each alternative at its best, not a strawman.
All of them take two positional arguments so the timing loop is the same code for all.
Every frame sent to the sidecar carries a ``src`` starting with the contract's
``BENCH_SOURCE_PREFIX``, so the sidecar keeps this traffic out of its trading series.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import statsd  # type: ignore[import-untyped]
import zmq
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from telemetry_contract.codec import BENCH_SOURCE_PREFIX, TradeEncoder
from telemetry_contract.events import SIDES
from trading_devkit.processes import terminate
from trading_publisher.client import Publisher
from trading_publisher.sockets import push_socket

Call = Callable[[Any, Any], object]


@dataclass
class Variant:
    """A named way to emit, its argument pairs, and how to release what it holds."""

    name: str
    call: Call
    #: (a, b) per event, built before timing so the loop does no preparation of its own.
    args: list[tuple[Any, Any]]
    close: Callable[[], None] = lambda: None
    #: Run after each timed slice, outside the timing: the batched client hands what it
    #: still holds to ZeroMQ here, so its flusher never runs inside another variant's
    #: slice. Its cost is reported (``settle_us_per_call``), not hidden.
    settle: Callable[[], None] = lambda: None
    #: For variants that can drop (the client): read after the run.
    counts: Callable[[], tuple[int, int]] | None = None
    extra: dict[str, float] = field(default_factory=dict)


def floor(
    ctx: zmq.Context[zmq.Socket[bytes]], address: str, trades: list[tuple[str, float]]
) -> Variant:
    """Raw ``send`` of frames encoded before timing, on a plain PUSH socket (the contract's
    HWM and linger; ``IMMEDIATE`` and CURVE are the client's own, see ``client_socket``)."""
    sock = push_socket(ctx, address)
    encode = TradeEncoder(BENCH_SOURCE_PREFIX + "floor")
    now = time.time()
    frames = [(encode(side, qty, now, seq), zmq.NOBLOCK) for seq, (side, qty) in enumerate(trades)]
    return Variant("floor", sock.send, frames, close=lambda: sock.close(linger=2_000))


def client(
    ctx: zmq.Context[zmq.Socket[bytes]], address: str, trades: list[tuple[str, float]]
) -> Variant:
    """The project's call, batched (the default): ``Publisher.trade(side, qty)``.

    On the same ZeroMQ context as the floor and the seed, so all of them share one I/O
    thread and differ only in what happens in the calling thread.
    """
    pub = Publisher(address, source=BENCH_SOURCE_PREFIX + "client", context=ctx)
    return publisher_variant(CLIENT, pub, trades)


def client_unbatched(
    ctx: zmq.Context[zmq.Socket[bytes]], address: str, trades: list[tuple[str, float]]
) -> Variant:
    """``Publisher(batch_size=1)``: one frame per event, formatted and sent in the call
    (what the UI and the HTTP API use)."""
    pub = Publisher(address, source=BENCH_SOURCE_PREFIX + "unbatched", batch_size=1, context=ctx)
    return publisher_variant(CLIENT_UNBATCHED, pub, trades)


def publisher_variant(
    name: str,
    pub: Publisher,
    trades: list[tuple[str, float]],
    close: Callable[[], None] | None = None,
) -> Variant:
    """``pub.trade`` timed as a variant, the same way for every Publisher set-up.

    Settled by ``flush`` after each slice; its counts are what it took (sent or still
    queued) and what it dropped. ``close`` defaults to closing ``pub`` with a 2 s linger.
    """
    return Variant(
        name,
        pub.trade,
        list(trades),
        close=close or (lambda: pub.close(2_000)),
        settle=pub.flush,
        counts=lambda: (pub.sent + pub.queued, pub.dropped),
    )


#: The two client variants' names (the targets and the report refer to them).
CLIENT = "client"
CLIENT_UNBATCHED = "client-unbatched"


def seed(
    ctx: zmq.Context[zmq.Socket[bytes]], address: str, trades: list[tuple[str, float]]
) -> Variant:
    """What the seed did: build a dict, ``json.dumps`` it, ``send_string`` it.

    Plus a benchmark ``src`` (the seed sent none), so its frames stay off the sidecar's
    trading series; the client carries a ``src`` and a ``seq`` too.
    """
    sock = push_socket(ctx, address)
    send_string = sock.send_string
    dumps = json.dumps
    clock = time.time
    src = BENCH_SOURCE_PREFIX + "seed-json"

    def emit(side: str, qty: float) -> None:
        send_string(dumps({"type": "trade", "side": side, "qty": qty, "ts": clock(), "src": src}))

    return Variant("seed-json", emit, list(trades), close=lambda: sock.close(linger=2_000))


def empty(trades: list[tuple[str, float]]) -> Variant:
    """A call that does nothing: what the timing itself (two clock reads, the call of a
    two-argument function, the store) costs, measured in the same run as the rest."""

    def emit(side: str, qty: float) -> None:
        return None

    return Variant(EMPTY, emit, list(trades))


#: The empty call's variant name; its p50 is the timer overhead netted out of ratios.
EMPTY = "empty"


#: How often the prometheus_client variant's registry is scraped during the run.
SCRAPE_INTERVAL_S = 1.0

_SCRAPER = """
import sys, time, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
while True:
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except OSError:
        pass
    time.sleep(interval)
"""


def prometheus(trades: list[tuple[str, float]]) -> Variant:
    """prometheus_client in the trading process: two counters and a gauge per trade.

    Measured as it runs in production: the registry is served over HTTP by
    prometheus_client's own server thread in this process, and a scraper (a separate
    process, so only the serving side costs this one) fetches /metrics every second
    for the whole run. Rendering the exposition takes the same GIL the timed calls need.
    """
    registry = CollectorRegistry()
    count = Counter("bench_trades", "trades", ["side"], registry=registry)
    volume = Counter("bench_volume", "volume", ["side"], registry=registry)
    last = Gauge("bench_last_trade_ts", "last trade", registry=registry)
    count_of: dict[str, Counter] = {side: count.labels(side) for side in SIDES}
    volume_of: dict[str, Counter] = {side: volume.labels(side) for side in SIDES}
    set_last = last.set
    clock = time.time
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    scraper = subprocess.Popen(
        [sys.executable, "-c", _SCRAPER, url, str(SCRAPE_INTERVAL_S)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def emit(side: str, qty: float) -> None:
        count_of[side].inc()
        volume_of[side].inc(qty)
        set_last(clock())

    def close() -> None:
        terminate(scraper, 10)
        server.shutdown()
        server.server_close()
        thread.join(5)

    return Variant(PROMETHEUS, emit, list(trades), close=close)


PROMETHEUS = "prometheus-client"


def opentelemetry(trades: list[tuple[str, float]]) -> Variant:
    """The OpenTelemetry SDK with two counters, read by an in-memory reader (no export)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("trading-bench")
    count = meter.create_counter("trades")
    volume = meter.create_counter("volume")
    attributes: dict[str, dict[str, str]] = {side: {"side": side} for side in SIDES}
    add_count = count.add
    add_volume = volume.add

    def emit(side: str, qty: float) -> None:
        attrs = attributes[side]
        add_count(1, attrs)
        add_volume(qty, attrs)

    return Variant("opentelemetry", emit, list(trades), close=provider.shutdown)


def statsd_udp(trades: list[tuple[str, float]]) -> Variant:
    """A statsd client: two UDP counters per trade, into a local socket nobody reads.

    The sink is bound so sends never meet ICMP port-unreachable; once its buffer is
    full the kernel drops datagrams, which costs the sender nothing extra (UDP).
    """
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    client = statsd.StatsClient("127.0.0.1", sink.getsockname()[1], prefix="trading")
    incr = client.incr
    count_of: dict[str, str] = {side: f"trades.{side}" for side in SIDES}
    volume_of: dict[str, str] = {side: f"volume.{side}" for side in SIDES}

    def emit(side: str, qty: float) -> None:
        incr(count_of[side])
        incr(volume_of[side], qty)

    def close() -> None:
        client.close()
        sink.close()

    return Variant("statsd", emit, list(trades), close=close)
