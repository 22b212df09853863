"""``flush.Outbox``: what trade() appended, as frames on the wire, held, or dropped.

Driven directly (no flusher thread, so every step is deterministic): events are
appended to ``Outbox.flat`` exactly as ``trade()`` appends them, ``flush()`` is called,
and the frames a real PULL socket receives are decoded by the contract. Pinned: frames
of at most ``batch_size`` events with consecutive seqs, held chunks first, the memory
budget (oldest dropped first, their seqs consumed), what a closed outbox does, and the
bounded work per GIL hold (``HOLD_EVENTS``) with ``queued`` still counting the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import zmq
from client_wire import Wire, columns, rows, single, wait_until, writable
from support import free_port
from trading_publisher import flush as flush_module
from trading_publisher.flush import CATCH_UP, DRAIN_SHARE, HOLD_EVENTS, Outbox
from trading_publisher.streams import Streams

#: Each test takes well under a second; a client that hangs (a wait that never ends)
#: fails here instead of at the suite's 300 s ceiling.
pytestmark = pytest.mark.timeout(30)

TS = 1_700_000_000_000_000_000


@dataclass
class Rig:
    """Streams and an Outbox on them, with a count of the outbox's wake-up calls."""

    ctx: zmq.Context[zmq.Socket[bytes]]
    wire: Wire
    made: list[Streams] = field(default_factory=list)
    wakes: int = 0

    def outbox(
        self, addresses: list[str], batch_size: int = 4, max_held: int = 1_000, sndhwm: int = 1000
    ) -> Outbox:
        streams = Streams(self.ctx, addresses, sndhwm=sndhwm, linger_ms=0, curve=None)
        self.made.append(streams)

        def wake() -> None:
            self.wakes += 1

        return Outbox(streams, "src-1", batch_size, max_held, wake)

    def connected(self, outbox: Outbox) -> Outbox:
        """The outbox, once every socket has a connection that takes frames."""
        streams = outbox.streams
        wait_until(
            lambda: streams.connected and writable([s.socket for s in streams.all]), "connected"
        )
        return outbox


@pytest.fixture
def rig() -> Iterator[Rig]:
    wire = Wire()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    r = Rig(ctx, wire)
    yield r
    for s in r.made:
        s.close(0)
    ctx.term()
    wire.close()


def all_up(streams: Streams) -> bool:
    """Whether every socket has a TCP connection (its monitor read now)."""
    streams.poll()
    return all(s.peers for s in streams.all)


def add(outbox: Outbox, count: int, start: int = 0, code: str = "b") -> None:
    """``count`` events as trade() appends them: qty i, ts TS + i ns."""
    for i in range(start, start + count):
        outbox.flat.extend((code, float(i), TS + i))


def test_take_returns_columns_and_empties_the_list(rig: Rig) -> None:
    outbox = rig.outbox([f"tcp://127.0.0.1:{free_port()}"])
    assert outbox.take() is None
    outbox.flat.extend(("b", 1.5, TS, "s", 2.5, TS + 7))
    assert outbox.pending() == 2
    assert outbox.take() == ("bs", [1.5, 2.5], [TS, TS + 7])
    assert outbox.flat == [] and outbox.pending() == 0


def test_frames_of_batch_size_with_consecutive_seqs(rig: Rig) -> None:
    pull, address = rig.wire.pull()
    outbox = rig.connected(rig.outbox([address], batch_size=4))
    add(outbox, 5, code="s")
    add(outbox, 5, start=5)
    outbox.flush()
    assert (outbox.sent, outbox.dropped, outbox.pending()) == (10, 0, 0)
    frames = [Wire.recv(pull) for _ in range(3)]
    assert Wire.recv(pull, 0.05) is None
    stream = outbox.streams.all[0].stream
    got = [columns(f) for f in frames if f is not None]
    assert [(c.v, c.src, c.stream, c.epoch, c.seq) for c in got] == [
        (1, "src-1", stream, 0, 0),
        (1, "src-1", stream, 0, 4),
        (1, "src-1", stream, 0, 8),
    ]
    assert [c.side for c in got] == ["ssss", "sbbb", "bb"]
    assert [q for c in got for q in c.qty] == [float(i) for i in range(10)]
    assert [t for c in got for t in c.ts_ns] == [TS + i for i in range(10)]
    # What a sidecar reads: ten trades, seq 0..9, each at its own ns clock.
    decoded = [r for f in frames if f is not None for r in rows(f)]
    assert [r[4] for r in decoded] == list(range(10))
    assert decoded[0] == ("sell", 0.0, TS / 1e9, "src-1", 0, stream, 0)
    assert outbox.streams.describe()[0][3] == 10


def test_batch_size_one_sends_a_json_object_per_event(rig: Rig) -> None:
    pull, address = rig.wire.pull()
    outbox = rig.connected(rig.outbox([address], batch_size=1))
    add(outbox, 3)
    outbox.flush()
    got = [single(f) for f in Wire.drain(pull, 3)]
    stream = outbox.streams.all[0].stream
    assert got == [
        {
            "type": "trade",
            "side": "buy",
            "qty": float(i),
            "ts": (TS + i) / 1e9,
            "src": "src-1",
            "seq": i,
            "stream": stream,
            "epoch": 0,
        }
        for i in range(3)
    ]
    assert outbox.sent == 3


def test_no_route_holds_then_sends_held_chunks_first(rig: Rig) -> None:
    port = free_port()
    outbox = rig.outbox([f"tcp://127.0.0.1:{port}"], batch_size=4)
    add(outbox, 6)
    outbox.flush()
    assert (outbox.sent, outbox.held_count, len(outbox.held), outbox.pending()) == (0, 6, 2, 6)
    assert rig.wakes >= 1  # an idle flusher is told someone must retry
    add(outbox, 2, start=6)
    outbox.flush()  # still no route: queued behind the held ones
    assert (outbox.held_count, len(outbox.held), outbox.pending()) == (8, 3, 8)
    pull, _ = rig.wire.pull(port)
    rig.connected(outbox)
    add(outbox, 3, start=8)
    outbox.flush()
    assert (outbox.sent, outbox.held_count, len(outbox.held), outbox.pending()) == (11, 0, 0, 0)
    got = [columns(f) for f in Wire.drain(pull, 11)]
    assert [len(c.qty) for c in got] == [4, 2, 2, 3]
    assert [q for c in got for q in c.qty] == [float(i) for i in range(11)]
    assert [c.seq for c in got] == [0, 4, 6, 8]
    assert outbox.dropped == 0


def test_the_budget_drops_the_oldest_and_consumes_their_seqs(rig: Rig) -> None:
    port = free_port()
    outbox = rig.outbox([f"tcp://127.0.0.1:{port}"], batch_size=4, max_held=10)
    add(outbox, 25)
    outbox.flush()
    assert (outbox.dropped, outbox.held_count, outbox.pending()) == (15, 10, 10)
    assert outbox.streams.describe()[0][3] == 15
    add(outbox, 3, start=25)
    outbox.flush()  # held is full: the three new ones are the excess
    assert (outbox.dropped, outbox.held_count) == (18, 10)
    pull, _ = rig.wire.pull(port)
    rig.connected(outbox)
    outbox.flush()
    got = [columns(f) for f in Wire.drain(pull, 10)]
    # The newest ten of the first flush survived, after the 15 + 3 seqs given up.
    assert [q for c in got for q in c.qty] == [float(i) for i in range(15, 25)]
    assert [c.seq for c in got] == [18, 22, 26]
    assert (outbox.sent, outbox.dropped, outbox.pending()) == (10, 18, 0)


def test_exactly_the_budget_is_held_not_dropped(rig: Rig) -> None:
    outbox = rig.outbox([f"tcp://127.0.0.1:{free_port()}"], batch_size=4, max_held=8)
    add(outbox, 8)
    outbox.flush()
    assert (outbox.dropped, outbox.held_count) == (0, 8)
    add(outbox, 1, start=8)
    outbox.flush()
    assert (outbox.dropped, outbox.held_count) == (1, 8)


def test_drop_all_counts_held_and_new_events(rig: Rig) -> None:
    """What close() does with what it could not send: everything counted as dropped."""
    outbox = rig.outbox([f"tcp://127.0.0.1:{free_port()}"], batch_size=4)
    add(outbox, 6)
    outbox.flush()
    add(outbox, 3, start=6)
    outbox.drop_all()
    assert (outbox.dropped, outbox.held_count, outbox.pending(), outbox.sent) == (9, 0, 0, 0)
    assert not outbox.held and outbox.flat == []
    outbox.drop_all()  # nothing left: nothing more counted
    assert outbox.dropped == 9


def test_a_frame_the_first_socket_refuses_goes_to_the_next(rig: Rig) -> None:
    """A socket whose peer is up but cannot take the frame (no ZeroMQ handshake yet) is
    passed over for the next socket with a connection, within the same flush."""
    pull, live = rig.wire.pull()
    outbox = rig.outbox([rig.wire.silent(), live], batch_size=4)
    streams = outbox.streams
    wait_until(
        lambda: all_up(streams) and writable([streams.all[1].socket]),
        "both up",
    )
    add(outbox, 4)
    outbox.flush()
    got = [columns(f) for f in Wire.drain(pull, 4)]
    assert [(c.stream, c.seq, len(c.qty)) for c in got] == [(streams.all[1].stream, 0, 4)]
    assert streams.describe()[0][3] == 0  # the silent socket's seq was not taken
    assert outbox.sent == 4 and outbox.pending() == 0


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_refused_frame_on_every_socket_is_held(rig: Rig, batch_size: int) -> None:
    outbox = rig.outbox([rig.wire.silent(), rig.wire.silent()], batch_size=batch_size)
    streams = outbox.streams
    wait_until(lambda: all_up(streams), "both up")
    add(outbox, 4)
    outbox.flush()
    assert (outbox.sent, outbox.held_count, outbox.pending()) == (0, 4, 4)
    assert [seq for *_, seq in streams.describe()] == [0, 0]


def test_frames_alternate_between_sockets(rig: Rig) -> None:
    (a, address_a), (b, address_b) = rig.wire.pull(), rig.wire.pull()
    outbox = rig.outbox([address_a, address_b], batch_size=2)
    rig.connected(outbox)
    add(outbox, 8)
    outbox.flush()
    got_a = [columns(f) for f in Wire.drain(a, 4)]
    got_b = [columns(f) for f in Wire.drain(b, 4)]
    assert [(c.seq, c.qty) for c in got_a] == [(0, [0.0, 1.0]), (2, [4.0, 5.0])]
    assert [(c.seq, c.qty) for c in got_b] == [(0, [2.0, 3.0]), (2, [6.0, 7.0])]


@dataclass
class GiveWay:
    """Each time the flush lets the trading thread run: events sent and still pending."""

    outbox: Outbox | None = None
    seen: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self) -> None:
        assert self.outbox is not None
        self.seen.append((self.outbox.sent, self.outbox.pending()))


@pytest.fixture
def give_way(monkeypatch: pytest.MonkeyPatch) -> GiveWay:
    recorder = GiveWay()
    monkeypatch.setattr(flush_module, "_give_gil_away", recorder)
    return recorder


def test_a_held_backlog_is_sent_hold_events_per_gil_hold(rig: Rig, give_way: GiveWay) -> None:
    port = free_port()
    total = 3 * HOLD_EVENTS + 5
    outbox = rig.outbox([f"tcp://127.0.0.1:{port}"], batch_size=1, max_held=total, sndhwm=total)
    give_way.outbox = outbox
    add(outbox, total)
    outbox.flush(give_way=True)
    assert outbox.held_count == total and give_way.seen == []
    pull, _ = rig.wire.pull(port)
    rig.connected(outbox)
    outbox.flush(give_way=True)
    # After each HOLD_EVENTS sent while more are held (not after the last of them).
    assert give_way.seen == [(k * HOLD_EVENTS, total - k * HOLD_EVENTS) for k in (1, 2, 3)]
    assert outbox.sent == total
    assert len(Wire.drain(pull, total)) == total


def test_the_backlog_is_sent_in_one_hold_without_give_way(rig: Rig, give_way: GiveWay) -> None:
    port = free_port()
    held, new = 2 * HOLD_EVENTS + 1, CATCH_UP * HOLD_EVENTS + 1
    outbox = rig.outbox([f"tcp://127.0.0.1:{port}"], batch_size=1024, max_held=held + new)
    give_way.outbox = outbox
    add(outbox, held)
    outbox.flush()
    pull, _ = rig.wire.pull(port)
    pull.rcvhwm = 0
    rig.connected(outbox)
    add(outbox, new, start=held)
    outbox.flush()  # an explicit flush (close(), flush()): one hold, however much
    assert give_way.seen == [] and (outbox.sent, outbox.pending()) == (held + new, 0)


def _flushed_by_the_flusher(
    rig: Rig, give_way: GiveWay, count: int, batch_size: int
) -> tuple[Outbox, zmq.Socket[bytes]]:
    """``count`` new events flushed as the background flusher does (``give_way``)."""
    pull, address = rig.wire.pull()
    pull.rcvhwm = 0
    outbox = rig.connected(
        rig.outbox([address], batch_size=batch_size, max_held=count, sndhwm=count)
    )
    give_way.outbox = outbox
    add(outbox, count)
    outbox.flush(give_way=True)
    return outbox, pull


@pytest.mark.parametrize("batch_size", [1024, 1])
def test_one_ticks_worth_of_new_events_is_one_hold(
    rig: Rig, give_way: GiveWay, batch_size: int
) -> None:
    """Up to CATCH_UP * HOLD_EVENTS new events are one tick's worth: one hold."""
    count = CATCH_UP * HOLD_EVENTS
    outbox, pull = _flushed_by_the_flusher(rig, give_way, count, batch_size)
    assert give_way.seen == [] and (outbox.sent, outbox.pending()) == (count, 0)


@pytest.mark.parametrize("count", [(CATCH_UP + 1) * HOLD_EVENTS, 40 * HOLD_EVENTS + 5])
@pytest.mark.parametrize("batch_size", [1024, 1])
def test_a_backlog_is_sent_in_holds_that_grow_with_it(
    rig: Rig, give_way: GiveWay, count: int, batch_size: int
) -> None:
    """Beyond one tick's worth, a backlog: the trading thread gets the GIL back after
    each hold, the rest still counted as pending (``queued``) meanwhile. A hold is the
    first chunk boundary past both HOLD_EVENTS and a DRAIN_SHARE share of what is still
    behind, so a big backlog goes in few holds and never outgrows its budget."""
    outbox, pull = _flushed_by_the_flusher(rig, give_way, count, batch_size)
    assert give_way.seen, "a backlog gives the trading thread its turn"
    before = 0
    for sent, pending in give_way.seen:
        assert pending == count - sent > 0  # what is not sent yet still counts as queued
        hold = sent - before
        assert hold >= HOLD_EVENTS and hold * DRAIN_SHARE >= pending
        shorter = hold - batch_size  # one chunk less would not have done
        assert shorter < HOLD_EVENTS or shorter * DRAIN_SHARE < pending + batch_size
        before = sent
    assert len(give_way.seen) < count // HOLD_EVENTS - 1  # fewer holds than fixed ones
    assert (outbox.sent, outbox.pending(), outbox.in_flight) == (count, 0, 0)
    got = Wire.drain(pull, count)
    if batch_size == 1:
        assert len(got) == count
    else:
        assert sum(len(columns(f).qty) for f in got) == count


def test_gil_hand_off_sleeps_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand-off is ``time.sleep(0)``: it releases the GIL and returns at once."""
    calls: list[object] = []
    real = time.sleep

    def spy(seconds: float) -> None:
        calls.append(seconds)
        real(seconds)

    monkeypatch.setattr(time, "sleep", spy)
    flush_module._give_gil_away()  # noqa: SLF001 - the hand-off itself
    assert calls == [0]


def test_hold_events_and_catch_up_are_the_documented_bounds() -> None:
    assert (HOLD_EVENTS, CATCH_UP, DRAIN_SHARE) == (8192, 8, 4)
