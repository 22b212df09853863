"""``receiver``: the receive loop on inproc sockets. It drains what is queued when stopped,
and cannot die: an injected fault is counted as internal_error and the next frame counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
import zmq
from support import wait_for
from telemetry_contract.codec import TradeEncoder
from telemetry_contract.errors import InvalidMessage, Reason
from telemetry_contract.events import Event
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.receiver import COUNT_CHUNK, DRAIN_BATCH, Receiver, drain


def test_stop_counts_every_frame_already_queued() -> None:
    """SIGTERM's path: frames queued before stop() are counted, not thrown away."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    metrics = TradeMetrics()
    receiver = Receiver("inproc://drain", metrics, context=ctx, poll_ms=10_000)
    receiver.start()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.connect("inproc://drain")
    encode = TradeEncoder("drain")
    try:
        for seq in range(20_000):
            push.send(encode("buy", 1.0, time.time(), seq))
        receiver.stop(timeout=30)
        assert metrics.trades["buy"] == 20_000
        assert metrics.lost == 0
        assert not receiver.running
    finally:
        push.close(linger=0)
        ctx.term()


def test_an_unexpected_exception_is_counted_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    faults = [RuntimeError("injected fault"), RuntimeError("second fault")]

    class Flaky(TradeMetrics):
        """The real metrics, whose first two chunks raise (a bug that input triggers)."""

        def record(self, events: Sequence[Event], received_at: float) -> None:
            if faults:
                raise faults.pop(0)
            super().record(events, received_at)

    metrics = Flaky()
    receiver = Receiver("inproc://faulty", metrics, context=ctx, poll_ms=10)
    receiver.start()
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://faulty")
    encode = TradeEncoder("faulty")
    try:
        # One frame at a time, each handled before the next is sent: a fault each for
        # the first two, then a good one.
        def handled() -> float:
            return metrics.invalid["internal_error"] + metrics.trades["buy"]

        for seq in range(3):
            push.send(encode.now("buy", 1.0, seq))
            wait_for(lambda: handled() == seq + 1, what=f"frame {seq} handled")  # noqa: B023
        wait_for(lambda: metrics.trades["buy"] == 1, what="the frame after the faults")
        assert metrics.invalid["internal_error"] == 2
        assert receiver.alive(5.0)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1 and "injected fault" in str(tracebacks[0].exc_info)
        assert tracebacks[0].getMessage() == (
            "unexpected error in the receive loop (counted, going on)"
        )
        # The second is not a traceback again, but a (throttled) line that names it.
        assert any("second fault" in r.getMessage() for r in caplog.records if not r.exc_info)
    finally:
        receiver.stop()
        push.close(linger=0)
        ctx.term()


# --- drain(): the per-frame work, on a socket of its own (what the benchmark times) ----


class _Wire:
    """A PULL socket with a PUSH connected to it over inproc, on a fresh context."""

    def __init__(self, name: str) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.bind(f"inproc://{name}")
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 0)
        self.push.connect(f"inproc://{name}")
        self.encode = TradeEncoder(name)

    def trades(self, count: int, first_seq: int = 0) -> None:
        for seq in range(first_seq, first_seq + count):
            self.push.send(self.encode.now("buy", 1.0, seq))

    def close(self) -> None:
        self.push.close(linger=0)
        self.pull.close(linger=0)
        self.ctx.term()


@pytest.fixture
def wire(request: pytest.FixtureRequest) -> Iterator[_Wire]:
    made = _Wire(f"wire-{id(request)}")
    yield made
    made.close()


class _Rejects(list[InvalidMessage]):
    """The reject callback: keeps what it was given (a None fails at ``.reason``)."""

    def __call__(self, exc: InvalidMessage) -> None:
        assert exc.reason in Reason
        self.append(exc)


def test_drain_stops_at_the_limit_and_says_how_many_it_handled(wire: _Wire) -> None:
    metrics, rejects = TradeMetrics(), _Rejects()
    wire.trades(10)
    wait_for(lambda: wire.pull.poll(0), what="frames queued")
    assert drain(wire.pull, metrics, rejects, 4) == 4
    assert (metrics.received, metrics.trades["buy"]) == (4, 4)
    assert drain(wire.pull, metrics, rejects, None) == 6  # the queue ran dry first
    assert (metrics.received, metrics.trades["buy"]) == (10, 10)
    assert drain(wire.pull, metrics, rejects, None) == 0
    assert not rejects and metrics.lost == 0


def test_a_multipart_frame_is_one_rejected_frame_and_the_next_still_counts(
    wire: _Wire,
) -> None:
    metrics, rejects = TradeMetrics(), _Rejects()
    wire.trades(2)
    wait_for(lambda: wire.pull.poll(0), what="frames queued")
    assert drain(wire.pull, metrics, rejects, 2) == 2
    wire.push.send_multipart([wire.encode.now("buy", 1.0, 2), b"part two", b"part three"])
    wire.trades(1, first_seq=3)
    wait_for(lambda: wire.pull.poll(0), what="frames queued")
    assert drain(wire.pull, metrics, rejects, None) == 2
    assert [(r.reason, str(r.detail)) for r in rejects] == [
        (Reason.MULTIPART, "expected a single-part frame")
    ]
    assert (metrics.received, metrics.trades["buy"]) == (4, 3)


def test_the_batch_decoder_handles_a_normal_chunk_alone(
    wire: _Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One decode_frames call per chunk; the one-frame decoder is only the fallback for
    a bug in it, so a wrong call to decode_frames cannot hide behind the fallback."""
    from trading_sidecar import receiver as module

    one_by_one: list[bytes] = []

    def spy(frame: bytes, events: list[Event], now: float | None = None) -> list[InvalidMessage]:
        one_by_one.append(frame)
        return []

    monkeypatch.setattr(module, "decode_into", spy)
    metrics = TradeMetrics()
    wire.trades(3)
    wire.push.send(b"{not json")
    wait_for(lambda: wire.pull.poll(0), what="frames queued")
    rejects = _Rejects()
    assert drain(wire.pull, metrics, rejects, None) == 4
    assert not one_by_one
    assert metrics.trades["buy"] == 3 and [r.reason for r in rejects] == [Reason.MALFORMED_JSON]


class _FailsOnce(TradeMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def record(self, events: Sequence[Event], received_at: float) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("first chunk")
        super().record(events, received_at)


def test_a_full_chunk_reports_its_rejects_and_faults_like_the_last(
    wire: _Wire, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = _FailsOnce()
    wire.push.send(b"{not json")
    wire.trades(COUNT_CHUNK + 1, first_seq=0)
    wait_for(lambda: wire.pull.poll(0), what="frames queued")
    rejects = _Rejects()
    with caplog.at_level(logging.ERROR):
        assert drain(wire.pull, metrics, rejects, None) == COUNT_CHUNK + 2
    assert [r.reason for r in rejects] == [Reason.MALFORMED_JSON]
    # The first (full) chunk's record() raised: counted, and the last chunk still counts.
    assert metrics.invalid[Reason.INTERNAL_ERROR] == 1
    assert metrics.trades["buy"] == 2


class _Chunks(TradeMetrics):
    """Real metrics that also remember how many events each record() call carried."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def record(self, events: Sequence[Event], received_at: float) -> None:
        self.sizes.append(len(events))
        super().record(events, received_at)


def test_frames_are_counted_in_chunks_of_count_chunk(wire: _Wire) -> None:
    """The chunk bounds how long an event waits and how many objects a chunk holds."""
    metrics = _Chunks()
    total = 2 * COUNT_CHUNK + 5
    wire.trades(total)
    wait_for(lambda: wire.pull.poll(0), what="frames queued")
    assert drain(wire.pull, metrics, _Rejects(), None) == total
    assert metrics.sizes == [COUNT_CHUNK, COUNT_CHUNK, 5]
    assert metrics.trades["buy"] == total


def test_a_bug_in_batch_decoding_costs_only_its_own_frame(
    wire: _Wire, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """decode_frames raising falls back to one frame at a time: good frames count, bad
    ones keep their reason, and a frame that breaks the decoder is internal_error."""
    from trading_sidecar import receiver as module

    def broken_batch(*_: object) -> list[InvalidMessage]:
        raise RuntimeError("batch decoder bug")

    from telemetry_contract.codec import decode_into as real_one

    poison = b'{"poison": true}'

    def one(frame: bytes, events: list[Event], now: float) -> Sequence[InvalidMessage]:
        if frame == poison:
            raise RuntimeError("single decoder bug")
        return real_one(frame, events, now)

    monkeypatch.setattr(module, "decode_frames", broken_batch)
    monkeypatch.setattr(module, "decode_into", one)
    metrics, rejects = TradeMetrics(), _Rejects()
    wire.trades(1)
    wire.push.send(b"{not json")
    wire.push.send(poison)
    wire.trades(1, first_seq=1)
    wait_for(lambda: wire.pull.poll(0), what="frames queued")
    with caplog.at_level(logging.ERROR):
        assert drain(wire.pull, metrics, rejects, None) == 4
    assert metrics.trades["buy"] == 2 and metrics.received == 4
    assert [r.reason for r in rejects] == [Reason.MALFORMED_JSON]
    # No Receiver here (the benchmark's case): the default counts and logs each one.
    assert metrics.invalid[Reason.INTERNAL_ERROR] == 1
    logged = [r for r in caplog.records if r.exc_info]
    assert [r.getMessage() for r in logged] == [
        "unexpected error while counting (counted, going on)"
    ]
    assert "single decoder bug" in str(logged[0].exc_info)


# --- Receiver: the thread around drain() -----------------------------------------------


def test_receiver_start_configures_binds_and_runs_a_named_daemon_thread() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    configured: list[zmq.Socket[bytes]] = []
    receiver = Receiver(
        "tcp://127.0.0.1:*", TradeMetrics(), context=ctx, rcvhwm=123, configure=configured.append
    )
    assert not receiver.alive(60), "not started: not alive"
    receiver.start()
    try:
        assert len(configured) == 1 and configured[0].getsockopt(zmq.RCVHWM) == 123
        assert receiver.bound_address.startswith("tcp://127.0.0.1:")
        assert not receiver.bound_address.endswith(":*")
        threads = [t for t in threading.enumerate() if t.name == "zmq-pull"]
        # A daemon: a sidecar whose stop() was never reached still exits.
        assert len(threads) == 1 and threads[0].daemon
        wait_for(lambda: receiver.alive(60), what="alive")
        assert receiver.running
    finally:
        receiver.stop()
    assert not receiver.alive(60), "stopped: not alive, however recent its last heartbeat"
    ctx.term()


def test_the_loop_checks_in_between_bounded_drains() -> None:
    """Frames already queued are taken DRAIN_BATCH at a time, with the checkpoint (state
    snapshots) and the stop flag looked at in between, not after the whole backlog."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    metrics = TradeMetrics()
    seen: list[float] = []
    gate = threading.Event()

    def checkpoint() -> None:
        seen.append(metrics.trades["buy"])
        gate.wait(30)  # the first one holds the loop while the backlog is queued

    receiver = Receiver("inproc://bounded", metrics, context=ctx, poll_ms=10, checkpoint=checkpoint)
    receiver.start()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.connect("inproc://bounded")
    encode = TradeEncoder("bounded")
    try:
        wait_for(lambda: seen, what="the first checkpoint")
        for seq in range(3 * DRAIN_BATCH + 1):
            push.send(encode.now("buy", 1.0, seq))
        gate.set()
        wait_for(lambda: metrics.trades["buy"] == 3 * DRAIN_BATCH + 1, what="all counted")
        wait_for(lambda: seen[-1] == 3 * DRAIN_BATCH + 1, what="a checkpoint after the last")
        steps = [b - a for a, b in zip(seen, seen[1:], strict=False) if b > a]
        assert max(steps) <= DRAIN_BATCH, steps
    finally:
        receiver.stop()
        push.close(linger=0)
        ctx.term()


class _Held(TradeMetrics):
    """Real metrics whose first record() call waits for ``gate`` (a busy loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.holding = threading.Event()

    def record(self, events: Sequence[Event], received_at: float) -> None:
        if not self.holding.is_set():
            self.holding.set()
            self.gate.wait(30)
        super().record(events, received_at)


def test_stop_returns_in_time_and_the_loop_then_counts_the_backlog() -> None:
    """stop(timeout) never hangs shutdown on a busy loop; the loop, once free, still
    counts every frame that had reached the socket before it closes."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    metrics = _Held()
    receiver = Receiver("inproc://backlog", metrics, context=ctx, poll_ms=10)
    receiver.start()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.connect("inproc://backlog")
    encode = TradeEncoder("backlog")
    total = 3 * DRAIN_BATCH + 1
    try:
        push.send(encode.now("buy", 1.0, 0))
        assert metrics.holding.wait(10)
        for seq in range(1, total):
            push.send(encode.now("buy", 1.0, seq))
        stopper = threading.Thread(target=receiver.stop, kwargs={"timeout": 0.2})
        stopper.start()
        stopper.join(10)
        assert not stopper.is_alive(), "stop() waited past its timeout"
        assert not receiver.running
        metrics.gate.set()
        wait_for(lambda: metrics.trades["buy"] == total, what="the backlog counted at stop")
        receiver.stop()
        assert not receiver.alive(60)
    finally:
        metrics.gate.set()
        push.close(linger=0)
        ctx.term()


def test_a_fault_outside_counting_is_internal_error_and_rejects_keep_their_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    metrics = TradeMetrics()
    faults = [RuntimeError("checkpoint bug")]

    def checkpoint() -> None:
        if faults:
            raise faults.pop()

    receiver = Receiver("inproc://outside", metrics, context=ctx, poll_ms=10, checkpoint=checkpoint)
    receiver.start()
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://outside")
    try:
        wait_for(lambda: metrics.invalid[Reason.INTERNAL_ERROR] == 1, what="the fault counted")
        push.send(b"{not json")
        push.send(TradeEncoder("outside").now("sell", 2.0, 0))
        wait_for(lambda: metrics.trades["sell"] == 1, what="the loop went on")
        assert metrics.invalid[Reason.MALFORMED_JSON] == 1
        assert metrics.invalid[Reason.INTERNAL_ERROR] == 1
        assert receiver.alive(5.0)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1 and "checkpoint bug" in str(tracebacks[0].exc_info)
        assert any("malformed_json" in r.getMessage() for r in caplog.records)
    finally:
        receiver.stop()
        push.close(linger=0)
        ctx.term()


def test_frames_that_arrive_while_the_stop_drains_are_counted_until_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On stop the socket closes only once no frame has come for QUIET_MS: frames that
    reach it while the final drain is counting are counted too, and the log says how
    many frames the stop counted."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    encode = TradeEncoder("late")
    holding, gate = threading.Event(), threading.Event()

    def checkpoint() -> None:  # holds the loop until the stop flag is set
        if not gate.is_set():
            holding.set()
            gate.wait(30)

    class Late(TradeMetrics):
        """Sends ten more frames from inside the final drain's first count (the loop
        is past its last wake-up then: only the quiet window can still take them)."""

        sent_late = False

        def record(self, events: Sequence[Event], received_at: float) -> None:
            super().record(events, received_at)
            if gate.is_set() and not self.sent_late:
                self.sent_late = True
                for seq in range(1, 11):
                    push.send(encode.now("buy", 1.0, seq))

    metrics = Late()
    receiver = Receiver("inproc://late", metrics, context=ctx, poll_ms=10, checkpoint=checkpoint)
    receiver.start()
    push.connect("inproc://late")
    try:
        assert holding.wait(10)
        push.send(encode.now("buy", 1.0, 0))  # from here on, push belongs to the receiver
        stopper = threading.Thread(target=receiver.stop, kwargs={"timeout": 30})
        with caplog.at_level(logging.INFO, logger="trading_sidecar.receiver"):
            stopper.start()
            wait_for(lambda: not receiver.running, what="the stop flag")
            gate.set()
            stopper.join(30)
        assert metrics.sent_late and metrics.trades["buy"] == 11
        assert "stopping: counted 11 frames that were already queued" in caplog.messages
    finally:
        gate.set()
        push.close(linger=0)
        ctx.term()
