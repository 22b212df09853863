"""``Publisher`` in-process: its argument checks, sizes, counters and what it sends.

The fast tier of tests/e2e/test_client.py: real PULL sockets on loopback, the frames
decoded by the contract, no sidecar process. Most tests use ``max_delay_s=10`` so the
background flusher (a tick every 2.5 s) stays out of the way and ``flush()``/``close()``
decide when frames go; the ones about the flusher itself use a short ``max_delay_s``
and wait on conditions with generous ceilings (the machine is shared).
"""

from __future__ import annotations

import gc
import math
import threading
import time
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from client_wire import Wire, columns, rows, single, wait_until, writable
from support import free_port
from telemetry_contract.events import MAX_QTY, MAX_SOURCE_LEN, MAX_TS_AHEAD_S, MIN_TS
from telemetry_contract.transport import MAX_BATCH_ITEMS, Heartbeat
from trading_publisher import client as client_module
from trading_publisher import flush as flush_module
from trading_publisher import zmq_direct
from trading_publisher.client import HELD_EVENT_BYTES, ZMQ_MSG_OVERHEAD, Publisher
from trading_publisher.flush import CATCH_UP, HOLD_EVENTS
from trading_publisher.options import PublisherStats
from trading_publisher.settings import load

#: Each test takes well under a second; a client that hangs (a wait that never ends)
#: fails here instead of at the suite's 300 s ceiling.
pytestmark = pytest.mark.timeout(30)

#: Long enough that the flusher never ticks during a test: flush()/close() send.
QUIET = 10.0


@pytest.fixture
def wire() -> Iterator[Wire]:
    w = Wire()
    yield w
    w.close()


@pytest.fixture
def made() -> Iterator[list[Publisher]]:
    """Clients a test opens; each is closed (linger 0) at teardown."""
    clients: list[Publisher] = []
    yield clients
    for pub in clients:
        pub.close(linger_ms=0)


def nowhere() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def open_client(made: list[Publisher], address: str | list[str], **options: Any) -> Publisher:
    options.setdefault("max_delay_s", QUIET)
    options.setdefault("linger_ms", 0)
    pub = Publisher(address, **options)
    made.append(pub)
    return pub


def connected(pub: Publisher) -> Publisher:
    """The client, once every socket has a connection that takes frames."""

    def ready() -> bool:
        if not pub.connected:
            return False
        with pub._lock:  # noqa: SLF001 - the sockets are the flusher's too
            return writable([s.socket for s in pub._streams.all])  # noqa: SLF001

    wait_until(ready, "connected")
    return pub


# ---------------------------------------------------------------- constructor checks


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, f"batch_size must be 1..{MAX_BATCH_ITEMS}, got 0"),
        ({"batch_size": MAX_BATCH_ITEMS + 1}, f"batch_size must be 1..1024, got {1025}"),
        ({"max_delay_s": 0}, "max_delay_s must be in (0, 10], got 0"),
        ({"max_delay_s": -1.0}, "max_delay_s must be in (0, 10], got -1.0"),
        ({"max_delay_s": 10.001}, "max_delay_s must be in (0, 10], got 10.001"),
        ({"max_queue_bytes": 1023}, "max_queue_bytes must be >= 1024, got 1023"),
        ({"source": "x" * (MAX_SOURCE_LEN + 1)}, "source must be 1..64 printable ASCII characters"),
        ({"source": "caf\u00e9"}, "source must be 1..64 printable ASCII characters"),
        ({"source": "tab\there"}, "source must be 1..64 printable ASCII characters"),
    ],
)
def test_bad_options_are_refused_with_what_is_allowed(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        Publisher(nowhere(), **options)
    assert str(caught.value) == message


def test_options_at_their_limits_are_accepted(made: list[Publisher]) -> None:
    for options in (
        {"batch_size": 1},
        {"batch_size": MAX_BATCH_ITEMS},
        {"max_delay_s": 10},
        {"max_delay_s": 1e-6},
        {"max_queue_bytes": 1024},
        {"source": "x" * MAX_SOURCE_LEN},
        {"source": "a"},
    ):
        pub = open_client(made, nowhere(), **options)
        for name, value in options.items():
            assert getattr(pub, name) == value


def test_attributes_say_what_the_client_was_given(made: list[Publisher]) -> None:
    first, second = nowhere(), nowhere()
    pub = open_client(made, f"{first}, {second}", source="me", linger_ms=7, batch_size=8)
    assert pub.addresses == [first, second]
    assert pub.address == f"{first},{second}"
    assert (pub.source, pub.batch_size, pub.max_delay_s, pub.linger_ms) == ("me", 8, QUIET, 7)
    assert pub.heartbeat == Heartbeat()
    assert pub.errors == 0
    assert [a for a, *_ in pub.streams] == [first, second]
    # An empty source means the default: unique per process.
    assert open_client(made, nowhere(), source="").source.endswith(f"-{_pid()}")


def _pid() -> int:
    import os

    return os.getpid()


@pytest.mark.parametrize(
    ("batch_size", "queue", "count", "frame", "sndhwm", "held"),
    [
        # A frame: 160 + 64 bytes of fields + 19 per event; one ZeroMQ slot costs 256 more.
        # Half the budget is ZeroMQ's, shared by the sockets; half is Python's (100 B/event).
        (64, 1 << 20, 2, 160 + 64 + 64 * 19, (1 << 19) // 2 // (1440 + 256), (1 << 19) // 100),
        (1, 1 << 20, 1, 260 + 64, (1 << 19) // (324 + 256), (1 << 19) // 100),
        # At the smallest budget the floor is one frame per socket, one batch held.
        (1024, 1024, 1, 160 + 64 + 1024 * 19, 1, 1024),
    ],
)
def test_queue_budget_sizes(
    made: list[Publisher],
    batch_size: int,
    queue: int,
    count: int,
    frame: int,
    sndhwm: int,
    held: int,
) -> None:
    pub = open_client(
        made, [nowhere() for _ in range(count)], batch_size=batch_size, max_queue_bytes=queue
    )
    assert (pub.max_frame_bytes, pub.sndhwm, pub.max_held) == (frame, sndhwm, held)
    assert (HELD_EVENT_BYTES, ZMQ_MSG_OVERHEAD) == (100, 256)
    assert all(s.socket.getsockopt(zmq.SNDHWM) == sndhwm for s in pub._streams.all)  # noqa: SLF001


def test_socket_options_follow_the_client_options(made: list[Publisher]) -> None:
    pub = open_client(made, nowhere(), sndhwm=77, linger_ms=33, heartbeat=Heartbeat(300, 900, 4000))
    sock = pub._streams.all[0].socket  # noqa: SLF001 - the socket's own options
    assert pub.sndhwm == 77
    assert [sock.getsockopt(o) for o in (zmq.SNDHWM, zmq.LINGER, zmq.IMMEDIATE)] == [77, 33, 1]
    hb = (zmq.HEARTBEAT_IVL, zmq.HEARTBEAT_TIMEOUT, zmq.HEARTBEAT_TTL)
    assert [sock.getsockopt(o) for o in hb] == [300, 900, 4000]
    default = open_client(made, nowhere())._streams.all[0].socket  # noqa: SLF001
    assert [default.getsockopt(o) for o in hb] == [1000, 5000, 10000]
    off = open_client(made, nowhere(), heartbeat=None)
    assert off.heartbeat is None
    assert off._streams.all[0].socket.getsockopt(zmq.HEARTBEAT_IVL) == 0  # noqa: SLF001


def test_from_settings_maps_every_setting(made: list[Publisher]) -> None:
    address = nowhere()
    settings = load(
        {
            "TT_PUBLISHER_ZMQ_CONNECT": address,
            "TT_PUBLISHER_BATCH_SIZE": "16",
            "TT_PUBLISHER_MAX_DELAY_MS": "250",
            "TT_PUBLISHER_MAX_QUEUE_BYTES": str(1 << 20),
            "TT_PUBLISHER_SNDHWM": "9",
            "TT_PUBLISHER_HEARTBEAT_IVL_MS": "400",
            "TT_PUBLISHER_SOURCE": "from-env",
        }
    )
    pub = Publisher.from_settings(settings, linger_ms=0)
    made.append(pub)
    assert (pub.addresses, pub.source, pub.batch_size, pub.max_delay_s) == (
        [address],
        "from-env",
        16,
        0.25,
    )
    assert (pub.max_queue_bytes, pub.sndhwm, pub.linger_ms) == (1 << 20, 9, 0)
    assert pub.heartbeat == Heartbeat(400, 5000, 10000)
    # Unset: the default source, and the high-water mark derived from the budget.
    plain = Publisher.from_settings(load({"TT_PUBLISHER_ZMQ_CONNECT": address}), linger_ms=0)
    made.append(plain)
    assert plain.source.endswith(f"-{_pid()}") and plain.sndhwm > 1


# ---------------------------------------------------------------- trade() arguments


def error(pub: Publisher, *args: Any) -> str:
    with pytest.raises(ValueError) as caught:
        pub.trade(*args)
    return str(caught.value)


@pytest.fixture(params=[1, 64], ids=["now", "batched"])
def either(request: pytest.FixtureRequest, made: list[Publisher]) -> Publisher:
    """A client of each kind: batch_size=1 (send at once) and batched."""
    return open_client(made, nowhere(), batch_size=request.param)


@pytest.mark.parametrize(
    ("side", "text"),
    [
        ("hold", "'hold'"),
        ("BUY", "'BUY'"),
        (None, "None"),
        ([], "[]"),
        (b"buy", "b'buy'"),
    ],
)
def test_a_bad_side_names_the_allowed_ones(either: Publisher, side: Any, text: str) -> None:
    assert error(either, side, 1.0) == f"side must be 'buy' or 'sell', got {text}"


@pytest.mark.parametrize(
    ("qty", "text"),
    [
        (-1.0, "-1.0"),
        (-1e-300, "-1e-300"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (MAX_QTY * (1 + 2**-50), "1000000000000000.9"),
        ("1", "'1'"),
        (None, "None"),
    ],
)
def test_a_bad_qty_says_the_range(either: Publisher, qty: Any, text: str) -> None:
    assert error(either, "buy", qty) == f"qty must be a finite number in [0, 1e+15], got {text}"


@pytest.mark.parametrize("qty", [True, False])
def test_a_bool_is_no_quantity(either: Publisher, qty: bool) -> None:
    assert error(either, "sell", qty) == f"qty must be a number, not a bool: got {qty!r}"


def test_ts_outside_the_window_is_refused(either: Publisher) -> None:
    assert error(either, "buy", 1.0, "now") == "ts must be epoch seconds, got 'now'"
    assert error(either, "buy", 1.0, [1]) == "ts must be epoch seconds, got [1]"
    window = f"ts must be epoch seconds in [{MIN_TS:.0f}, now + {MAX_TS_AHEAD_S:.0f}], got"
    assert window == "ts must be epoch seconds in [946684800, now + 86400], got"
    for ts in (0.0, MIN_TS - 1e-3, float("nan"), time.time() + MAX_TS_AHEAD_S + 60, 1e300):
        assert error(either, "buy", 1.0, ts) == f"{window} {ts!r}"
    assert (either.queued, either.dropped, either.sent) == (0, 0, 0)


def test_every_refusal_leaves_nothing_behind(made: list[Publisher], wire: Wire) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, address, batch_size=64))
    for args in (("x", 1.0), ("buy", -1.0), ("buy", True), ("buy", 1.0, 0.0)):
        with pytest.raises(ValueError):
            pub.trade(*args)
    assert pub.queued == 0
    pub.trade("buy", 3.0)
    pub.flush()
    got = [r for f in Wire.drain(pull, 1) for r in rows(f)]
    assert [(r[1], r[4]) for r in got] == [(3.0, 0)]


def test_the_ts_window_is_inclusive_at_both_ends(
    made: list[Publisher], wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the client's clock fixed: ``now + MAX_TS_AHEAD_S`` exactly is accepted, the
    next float after it is not; an event without ``ts`` carries that clock, to the ns."""
    now_ns = 1_750_000_000_123_456_789
    monkeypatch.setattr(client_module, "_clock", lambda: now_ns)
    pull, address = wire.pull()
    pub = connected(open_client(made, address))
    latest = now_ns / 1e9 + MAX_TS_AHEAD_S
    assert pub.trade("buy", 1.0, latest) is True
    assert pub.trade("buy", 1.0, MIN_TS) is True
    for ts in (math.nextafter(latest, math.inf), math.nextafter(MIN_TS, 0)):
        with pytest.raises(ValueError, match="ts must be epoch seconds in"):
            pub.trade("buy", 1.0, ts)
    assert pub.trade("sell", 2.0) is True
    pub.flush()
    (frame,) = Wire.drain(pull, 3)
    assert columns(frame).ts_ns == [_exact_ns(latest), _exact_ns(MIN_TS), now_ns]


def _exact_ns(ts: float) -> int:
    """The nearest integer ns to the float's exact value (the contract's promise)."""
    value = Fraction(ts) * 10**9
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


@pytest.mark.parametrize("batch_size", [1, 64])
def test_limits_and_a_given_ts_arrive_exactly(
    made: list[Publisher], wire: Wire, batch_size: int
) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, address, batch_size=batch_size, source="limits"))
    ahead = time.time() + MAX_TS_AHEAD_S - 60
    given = [MIN_TS, 1_700_000_000.1, 1_700_000_000.123456789, 1_700_000_000.5, ahead]
    before = time.time_ns()
    for qty, ts in zip([0.0, MAX_QTY, 1.5, 2**-30, 7.0], given, strict=True):
        assert pub.trade("buy" if qty else "sell", qty, ts) is True
    pub.trade("buy", 1.0)  # no ts: the client's clock
    after = time.time_ns()
    pub.flush()
    frames = Wire.drain(pull, 6)
    got = [r for f in frames for r in rows(f)]
    assert [r[:3] for r in got[:-1]] == [
        ("sell", 0.0, MIN_TS),
        ("buy", MAX_QTY, given[1]),
        ("buy", 1.5, given[2]),
        ("buy", 2**-30, given[3]),
        ("buy", 7.0, ahead),
    ]
    assert before / 1e9 <= got[-1][2] <= after / 1e9
    if batch_size > 1:
        (frame,) = frames
        assert columns(frame).ts_ns[:-1] == [_exact_ns(ts) for ts in given]
        assert before <= columns(frame).ts_ns[-1] <= after
    assert [r[4] for r in got] == list(range(6))


# ---------------------------------------------------------------- batching and the flusher


def test_a_batch_is_one_frame_up_to_batch_size(made: list[Publisher], wire: Wire) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, address, batch_size=4, source="batch"))
    for i in range(10):
        assert pub.trade("sell" if i % 3 else "buy", float(i)) is True
    assert (pub.queued, pub.sent) == (10, 0)  # batched: nothing sent by trade() itself
    pub.flush()
    assert (pub.queued, pub.sent, pub.dropped) == (0, 10, 0)
    got = [columns(f) for f in Wire.drain(pull, 10)]
    stream = pub.streams[0][1]
    assert [(c.src, c.stream, c.epoch, c.seq, c.side) for c in got] == [
        ("batch", stream, 0, 0, "bssb"),
        ("batch", stream, 0, 4, "ssbs"),
        ("batch", stream, 0, 8, "sb"),
    ]
    assert pub.streams == [(address, stream, 0, 10)]


def test_events_go_within_max_delay_without_a_further_call(
    made: list[Publisher], wire: Wire
) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, address, max_delay_s=0.02))
    for i in range(3):
        pub.trade("buy", float(i))
    frame = Wire.recv(pull)
    assert frame is not None and [r[1] for r in rows(frame)] == [0.0, 1.0, 2.0]
    wait_until(lambda: pub.queued == 0 and pub.sent == 3, "counted as sent")


def test_an_event_waits_for_about_max_delay_at_most(made: list[Publisher], wire: Wire) -> None:
    """The flusher ticks every max_delay/4: at max_delay 1 s a lone event goes out
    within a quarter second. 2.5 s is the shared machine's slack; a flusher ticking
    every 4 x max_delay would take 4 s."""
    pull, address = wire.pull()
    pub = connected(open_client(made, address, max_delay_s=1.0))
    started = time.monotonic()
    pub.trade("buy", 1.0)
    assert Wire.recv(pull) is not None
    waited = time.monotonic() - started
    assert waited < 2.5, f"a lone event waited {waited:.2f} s at max_delay 1 s"


def test_an_idle_flusher_is_woken_by_the_next_trade(made: list[Publisher], wire: Wire) -> None:
    """After 20 idle ticks the flusher sleeps until a trade() wakes it: a lone event
    still goes out, and so do the ones after it."""
    pull, address = wire.pull()
    pub = connected(open_client(made, address, max_delay_s=0.004))
    for round_ in range(3):
        wait_until(lambda: pub._idle, "the flusher fell asleep")  # noqa: SLF001
        assert pub.trade("buy", float(round_)) is True  # the call that wakes it, too
        assert pub.trade("sell", float(round_)) is True
        got = [r for f in [Wire.recv(pull)] if f is not None for r in rows(f)]
        while len(got) < 2:
            more = Wire.recv(pull)
            assert more is not None, "a woken flusher sent nothing"
            got += rows(more)
        assert [(r[0], r[1]) for r in got] == [("buy", round_), ("sell", round_)]


def test_the_flusher_survives_its_own_errors(
    made: list[Publisher], wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, address, max_delay_s=0.02))
    outbox = pub._outbox  # noqa: SLF001 - a fault injected into the flush
    real = outbox.flush
    faults = [RuntimeError("boom"), ValueError("bang")]

    def failing(give_way: bool = False) -> None:
        if faults:
            raise faults.pop(0)
        real(give_way)

    monkeypatch.setattr(outbox, "flush", failing)
    pub.trade("buy", 1.0)
    frame = Wire.recv(pull)
    assert frame is not None and [r[1] for r in rows(frame)] == [1.0]
    assert pub.errors == 2


def test_the_flusher_thread_is_named_and_never_keeps_the_process(made: list[Publisher]) -> None:
    pub = open_client(made, nowhere())
    threads = [t for t in threading.enumerate() if t.name == "trading-publisher"]
    assert pub._thread in threads and pub._thread.daemon  # noqa: SLF001
    pub.close()
    assert not pub._thread.is_alive()  # noqa: SLF001


# ---------------------------------------------------------------- batch_size=1


def test_batch_size_one_sends_in_the_calling_thread(made: list[Publisher], wire: Wire) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, address, batch_size=1, source="one"))
    stream = pub.streams[0][1]
    for seq in range(3):
        assert pub.trade("sell", 2.0, 1_700_000_000.25) is True
        frame = Wire.recv(pull)  # max_delay is 10 s: trade() itself sent it
        assert frame is not None and single(frame) == {
            "type": "trade",
            "side": "sell",
            "qty": 2.0,
            "ts": 1_700_000_000.25,
            "src": "one",
            "seq": seq,
            "stream": stream,
            "epoch": 0,
        }
        assert (pub.sent, pub.queued) == (seq + 1, 0)


def test_batch_size_one_keeps_order_behind_held_events(made: list[Publisher], wire: Wire) -> None:
    """An event accepted while others wait for a route goes after them, not before."""
    port = free_port()
    pub = open_client(made, f"tcp://127.0.0.1:{port}", batch_size=1)
    assert pub.trade("buy", 1.0) is True  # nobody listens: held
    assert (pub.queued, pub.sent) == (1, 0)
    pull, _ = wire.pull(port)
    connected(pub)
    assert pub.trade("buy", 2.0) is True
    pub.flush()
    got = [single(f) for f in Wire.drain(pull, 2)]
    assert [(e["qty"], e["seq"]) for e in got] == [(1.0, 0), (2.0, 1)]


def test_batch_size_one_while_a_flush_holds_the_lock(made: list[Publisher], wire: Wire) -> None:
    """trade() never waits for a flush in progress: the event is queued for it."""
    pull, address = wire.pull()
    pub = connected(open_client(made, address, batch_size=1))
    with pub._lock:  # noqa: SLF001 - a flush in progress
        assert pub.trade("buy", 5.0) is True
        assert pub.queued == 1
    assert pub.trade("buy", 6.0) is True  # goes after the queued one, never before
    pub.flush()
    got = [single(f) for f in Wire.drain(pull, 2)]
    assert [(e["qty"], e["seq"]) for e in got] == [(5.0, 0), (6.0, 1)]
    assert (pub.sent, pub.queued) == (2, 0)


def test_batch_size_one_never_blocks_on_a_peer_that_takes_nothing(
    made: list[Publisher], wire: Wire
) -> None:
    """TCP is up (the monitor says connected) but the peer never completes the ZeroMQ
    handshake: the send in trade() must fail at once, not wait for room."""
    pub = open_client(made, wire.silent(), batch_size=1)
    wait_until(lambda: pub.connected, "TCP connected")
    with pub._lock:  # noqa: SLF001 - a blocking send would give up after 5 s, not hang
        pub._streams.all[0].socket.setsockopt(zmq.SNDTIMEO, 5_000)  # noqa: SLF001
    started = time.monotonic()
    assert pub.trade("buy", 1.0) is True
    took = time.monotonic() - started
    # A non-blocking send fails in microseconds; 2.5 s is the shared machine's slack.
    assert took < 2.5, f"trade() waited {took:.1f} s for a peer that takes no frame"
    assert (pub.queued, pub.sent) == (1, 0)


def test_batch_size_one_without_a_route_is_held_then_dropped(made: list[Publisher]) -> None:
    pub = open_client(made, nowhere(), batch_size=1, max_queue_bytes=1024)
    assert pub.max_held == 5  # 512 bytes of Python budget, 100 bytes an event
    for _ in range(8):
        assert pub.trade("buy", 1.0) is True
    assert (pub.queued, pub.dropped, pub.sent) == (5, 3, 0)
    assert pub.streams[0][3] == 3  # the dropped consumed seqs


# ---------------------------------------------------------------- counters, flush, close


def test_stats_and_counters(made: list[Publisher], wire: Wire) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, [address], batch_size=2, max_queue_bytes=1024, sndhwm=100))
    assert pub.stats() == PublisherStats(0, 0, True, 0)
    for _ in range(3):
        pub.trade("buy", 1.0)
    assert pub.stats() == PublisherStats(sent=0, dropped=0, connected=True, queued=3)
    # What print(pub.stats()) shows (the README's example): counts are whole numbers.
    assert str(pub.stats()) == "PublisherStats(sent=0, dropped=0, connected=True, queued=3)"
    pub.flush()
    assert pub.stats() == PublisherStats(sent=3, dropped=0, connected=True, queued=0)
    pull.close(linger=0)
    wait_until(lambda: not pub.connected, "disconnect noticed")
    for _ in range(8):  # budget: max(batch_size, 512 // 100) = 5 held
        pub.trade("sell", 1.0)
    pub.flush()
    assert pub.stats() == PublisherStats(sent=3, dropped=3, connected=False, queued=5)


def test_flush_sends_what_is_queued_at_once(made: list[Publisher], wire: Wire) -> None:
    pull, address = wire.pull()
    pub = open_client(made, address)
    streams = pub._streams  # noqa: SLF001 - connected, not yet seen by the client
    wait_until(lambda: writable([s.socket for s in streams.all]), "connected")
    assert not streams.all[0].peers
    pub.trade("buy", 1.0)
    pub.flush()  # polls the monitors itself, then sends
    assert (pub.sent, pub.queued) == (1, 0)
    assert Wire.recv(pull) is not None


@pytest.mark.parametrize("batch_size", [1, 64])
def test_close_sends_what_is_queued_and_then_refuses(
    made: list[Publisher], wire: Wire, batch_size: int
) -> None:
    pull, address = wire.pull()
    pub = connected(open_client(made, address, batch_size=batch_size, linger_ms=30_000))
    with pub._lock:  # noqa: SLF001 - keep the batch_size=1 send for close() too
        for i in range(5):
            pub.trade("buy", float(i))
    started = time.monotonic()
    pub.close()
    # Everything went: no wait for the linger (30 s), nor for the flusher's next tick
    # (2.5 s away: it is woken); a second is the shared machine's slack.
    assert time.monotonic() - started < 1.5
    assert (pub.sent, pub.dropped, pub.queued) == (5, 0, 0)
    got = [r for f in Wire.drain(pull, 5) for r in rows(f)]
    assert [(r[1], r[4]) for r in got] == [(float(i), i) for i in range(5)]
    assert pub.connected is False
    assert pub.trade("buy", 1.0) is False and pub.trade("sell", 2.0) is False
    assert (pub.sent, pub.dropped, pub.queued) == (5, 2, 0)
    pub.close()  # twice: nothing more happens
    assert (pub.sent, pub.dropped) == (5, 2)
    assert pub._context.closed  # noqa: SLF001 - its own context is released


def test_close_waits_up_to_linger_for_a_sidecar(made: list[Publisher], wire: Wire) -> None:
    port = free_port()
    pub = open_client(made, f"tcp://127.0.0.1:{port}", linger_ms=30_000)
    for _ in range(3):
        pub.trade("buy", 1.0)
    late: list[zmq.Socket[bytes]] = []
    timer = threading.Timer(0.3, lambda: late.append(wire.pull(port)[0]))
    timer.start()
    pub.close()
    timer.join()
    assert (pub.sent, pub.dropped) == (3, 0)
    assert len([r for f in Wire.drain(late[0], 3) for r in rows(f)]) == 3


def test_close_gives_up_after_linger_and_counts_the_rest(made: list[Publisher]) -> None:
    pub = open_client(made, nowhere(), linger_ms=30_000)
    for _ in range(3):
        pub.trade("buy", 1.0)
    started = time.monotonic()
    pub.close(linger_ms=200)  # the call's own linger overrides the client's
    waited = time.monotonic() - started
    assert (pub.sent, pub.dropped, pub.queued) == (0, 3, 0)
    # Waited for a sidecar (~0.2 s), far less than the client's 30 s (a shared machine).
    assert 0.2 <= waited < 20


def test_close_with_linger_zero_does_not_wait(made: list[Publisher]) -> None:
    pub = open_client(made, nowhere(), linger_ms=30_000)
    pub.trade("buy", 1.0)
    started = time.monotonic()
    pub.close(0)
    assert time.monotonic() - started < 20 and pub.dropped == 1


def test_a_given_context_is_left_open(made: list[Publisher]) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = open_client(made, nowhere(), context=ctx)
    pub.close()
    assert not ctx.closed
    ctx.term()


def test_context_manager_closes(wire: Wire) -> None:
    pull, address = wire.pull()
    with Publisher(address, max_delay_s=QUIET, linger_ms=1000) as pub:
        connected(pub)
        pub.trade("sell", 4.0)
    assert pub.sent == 1 and pub.trade("sell", 1.0) is False
    assert [r[1] for f in Wire.drain(pull, 1) for r in rows(f)] == [4.0]


def test_publish_takes_a_prepared_event(made: list[Publisher], wire: Wire) -> None:
    from telemetry_contract.events import Trade

    pull, address = wire.pull()
    pub = connected(open_client(made, address, source="mine"))
    event = Trade("sell", 3.0, 1_700_000_000.5, src="theirs", seq=99)
    assert pub.publish(event) is True
    pub.flush()
    got = [r for f in Wire.drain(pull, 1) for r in rows(f)]
    assert got == [("sell", 3.0, 1_700_000_000.5, "mine", 0, pub.streams[0][1], 0)]


# ---------------------------------------------------------------- a bad address


@pytest.mark.parametrize("bad", ["nonsense", "tcp://", "tcp://127.0.0.1:notaport"])
def test_a_bad_address_is_refused_and_nothing_is_left_open(bad: str) -> None:
    """The error names the address; the sockets already opened for the addresses before
    it are closed (a given context can still be terminated) and an own context is."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    with pytest.raises(ValueError) as caught:
        Publisher([nowhere(), bad], context=ctx, linger_ms=0)
    assert str(caught.value).startswith(f"cannot connect to {bad!r}: ")
    terminated = threading.Event()

    def term() -> None:
        ctx.term()
        terminated.set()

    threading.Thread(target=term, daemon=True).start()
    assert terminated.wait(10), "ctx.term() hangs: a socket of the failed client is open"
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            Publisher(bad, linger_ms=0)
        gc.collect()
    assert [str(w.message) for w in caught_warnings] == []


@pytest.mark.parametrize("path", ["direct", "pyzmq"])
def test_flush_after_close_does_nothing(
    made: list[Publisher], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """close() released the sockets (and their monitors): a later flush() must not touch
    them (pyzmq raised ENOTSUP; the direct path read a freed libzmq socket)."""
    if path == "pyzmq":
        monkeypatch.setattr(zmq_direct, "load", lambda: None)
    pub = open_client(made, nowhere())
    pub.trade("buy", 1.0)
    pub.close(0)
    pub.flush()
    assert pub.stats() == PublisherStats(sent=0, dropped=1, connected=False, queued=0)


def test_from_settings_applies_curve_keys(made: list[Publisher], tmp_path: Path) -> None:
    server_public, _ = zmq.auth.create_certificates(tmp_path, "server")
    _, client_secret = zmq.auth.create_certificates(tmp_path, "client")
    settings = load(
        {
            "TT_PUBLISHER_ZMQ_CONNECT": nowhere(),
            "TT_PUBLISHER_CURVE_SERVER_KEY_FILE": str(server_public),
            "TT_PUBLISHER_CURVE_SECRET_KEY_FILE": str(client_secret),
        }
    )
    pub = Publisher.from_settings(settings, linger_ms=0)
    made.append(pub)
    sock = pub._streams.all[0].socket  # noqa: SLF001 - the socket's own options
    assert sock.getsockopt(zmq.MECHANISM) == zmq.CURVE
    plain = open_client(made, nowhere())._streams.all[0].socket  # noqa: SLF001
    assert plain.getsockopt(zmq.MECHANISM) == zmq.NULL


def test_batch_size_one_takes_the_sockets_in_turn(made: list[Publisher], wire: Wire) -> None:
    (a, address_a), (b, address_b) = wire.pull(), wire.pull()
    pub = connected(open_client(made, [address_a, address_b], batch_size=1))
    for i in range(4):
        assert pub.trade("buy", float(i)) is True
    got_a = [(e["qty"], e["seq"]) for e in map(single, Wire.drain(a, 2))]
    got_b = [(e["qty"], e["seq"]) for e in map(single, Wire.drain(b, 2))]
    assert (got_a, got_b) == ([(0.0, 0), (2.0, 1)], [(1.0, 0), (3.0, 1)])


def test_an_event_queued_during_a_flush_wakes_an_idle_flusher(
    made: list[Publisher], wire: Wire
) -> None:
    """batch_size=1, the lock busy: the event is left to the flusher, which must be
    woken if it sleeps (nobody else would ever send it)."""
    pull, address = wire.pull()
    pub = connected(open_client(made, address, batch_size=1, max_delay_s=0.004))
    wait_until(lambda: pub._idle, "the flusher fell asleep")  # noqa: SLF001
    with pub._lock:  # noqa: SLF001 - a flush in progress
        assert pub.trade("sell", 9.0) is True
    frame = Wire.recv(pull)
    assert frame is not None and single(frame)["qty"] == 9.0


def test_the_flusher_gives_the_gil_away_in_a_backlog(
    made: list[Publisher], wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background flush of a large backlog lets the trading thread run between
    holds (flush.py: HOLD_EVENTS at least, more as the backlog grows); an explicit
    flush() never does."""
    hand_offs: list[int] = []
    monkeypatch.setattr(flush_module, "_give_gil_away", lambda: hand_offs.append(1))
    pull, address = wire.pull()
    pull.rcvhwm = 0
    pub = connected(open_client(made, address, max_delay_s=0.2))
    total = (CATCH_UP + 1) * HOLD_EVENTS
    with pub._lock:  # noqa: SLF001 - the flusher takes the whole backlog in one flush
        for _ in range(total):
            pub.trade("buy", 1.0)
    wait_until(lambda: pub.sent == total, "the flusher sent the backlog")
    assert 1 <= len(hand_offs) < CATCH_UP  # holds of a quarter of what is behind, or more
    assert sum(len(columns(f).qty) for f in Wire.drain(pull, total)) == total
