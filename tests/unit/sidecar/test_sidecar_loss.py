"""The loss rule per (src, stream) with epochs (docs/contract.md), and a loop that
cannot die: table-driven on the real TradeMetrics, plus one publisher socket per stream
over the wire into a real sidecar, and an injected fault in the real receive loop."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
import zmq
from support import Sidecar, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX, TradeEncoder
from telemetry_contract.events import Event, Trade
from trading_sidecar.bench_metrics import BenchMetrics
from trading_sidecar.metrics import LossTracker, TradeMetrics, lost_between
from trading_sidecar.receiver import Receiver

NOW = 1_700_000_000.0


def t(seq: int, *, src: str = "p", stream: int | None = None, epoch: int | None = None) -> Trade:
    return Trade("buy", 1.0, NOW, src, seq, stream, epoch)


@pytest.mark.parametrize(
    ("last", "seq", "epoch", "lost"),
    [
        ((10, 0), 11, 0, 0),  # next in line
        ((10, 0), 14, 0, 3),  # drops in the same connection
        ((10, 0), 14, 1, 3),  # the next epoch: this replica saw the previous one
        ((10, 0), 14, 2, 0),  # epochs in between went elsewhere: re-baseline
        ((10, 3), 500, 9, 0),
        ((10, 0), 10, 0, 0),  # duplicate
        ((10, 0), 2, 0, 0),  # restart
        ((10, 2), 50, 1, 0),  # an older epoch: re-baseline, never loss
    ],
)
def test_the_rule_case_by_case(last: tuple[int, int], seq: int, epoch: int, lost: int) -> None:
    assert lost_between(last, seq, epoch) == lost


def test_streams_of_one_source_interleaved_report_no_false_loss() -> None:
    metrics = TradeMetrics()
    # One publisher, three sockets (streams) round-robin to the same sidecar.
    events = [t(seq, stream=stream) for seq in range(100) for stream in (7, 8, 2**53 - 1)]
    for start in range(0, len(events), 17):  # chunk borders anywhere
        metrics.record(events[start : start + 17], NOW)
    assert metrics.lost == 0 and metrics.trades["buy"] == 300
    # Without streams the same traffic would look like loss: they are what keeps it exact.
    naive = TradeMetrics()
    naive.record([t(seq) for seq in (0, 5, 1, 6, 2, 7)], NOW)
    assert naive.lost > 0


def test_epoch_plus_one_gap_is_counted_and_an_epoch_jump_re_baselines() -> None:
    metrics = TradeMetrics()
    metrics.record([t(0, stream=1, epoch=0), t(1, stream=1, epoch=0)], NOW)
    metrics.record([t(5, stream=1, epoch=1)], NOW)  # reconnected here; 2..4 lost
    assert metrics.lost == 3
    metrics.record([t(40, stream=1, epoch=4)], NOW)  # epochs 2, 3 went to other replicas
    assert metrics.lost == 3
    metrics.record([t(41, stream=1, epoch=4), t(45, stream=1, epoch=4)], NOW)  # drops
    assert metrics.lost == 6


def test_seq_gaps_from_drops_are_counted_per_stream() -> None:
    metrics = TradeMetrics()
    metrics.record([t(0, stream=1), t(0, stream=2), t(3, stream=1), t(10, stream=2)], NOW)
    assert metrics.lost == 2 + 9


def test_benchmark_traffic_is_counted_apart() -> None:
    counted = BenchMetrics()
    metrics = TradeMetrics(others=counted.record)
    bench = BENCH_SOURCE_PREFIX + "x"
    metrics.record([t(0, src=bench), t(4, src=bench), t(0), t(2)], NOW)
    assert (counted.lost, counted.trades) == (3, 2)
    assert (metrics.lost, metrics.trades["buy"]) == (1, 2)


def test_the_table_is_bounded_and_least_recently_seen_goes_first() -> None:
    tracker = LossTracker(capacity=3)
    for stream in (1, 2, 3):
        tracker.observe("p", stream, 0, 0)
    tracker.observe("p", 1, 1, 0)  # stream 1 is now the most recent
    tracker.observe("p", 4, 0, 0)  # the table is full: stream 2 goes
    assert set(tracker.positions) == {("p", 1), ("p", 3), ("p", 4)}
    metrics = TradeMetrics()
    metrics.record([t(0, src=f"s{i}") for i in range(metrics.streams.capacity + 50)], NOW)
    assert len(metrics.streams.positions) == metrics.streams.capacity


def test_snapshot_and_restore_carry_totals_and_positions() -> None:
    metrics = TradeMetrics()
    metrics.record([t(0, stream=1, epoch=0), t(1, stream=1, epoch=0)], NOW)
    state = metrics.snapshot()
    metrics.record([t(2, stream=1, epoch=0)], NOW)  # the snapshot is a copy
    restored = TradeMetrics()
    restored.restore(state)
    assert restored.trades["buy"] == 2 and restored.streams.positions == {("p", 1): (1, 0)}
    restored.record([t(5, stream=1, epoch=1)], NOW)  # a restart with its snapshot: epoch + 1
    assert restored.lost == 3


def test_streams_over_the_wire_into_one_sidecar(sidecar: Sidecar) -> None:
    """Three sockets of one publisher (three streams), interleaved, plus real drops."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socks = [ctx.socket(zmq.PUSH) for _ in range(3)]
    try:
        for sock in socks:
            sock.connect(sidecar.zmq_address)
        encoders = [TradeEncoder("wire-streams", stream=s, epoch=0) for s in (11, 12, 13)]
        sent = 0
        for seq in range(1000):
            for index, (sock, encode) in enumerate(zip(socks, encoders, strict=True)):
                if index == 2 and seq % 100 == 99:
                    continue  # stream 13 "drops" one event in a hundred: seq still advances
                sock.send(encode.now("buy", 1.0, seq))
                sent += 1
        wait_for(lambda: value(sidecar.scrape(), names.TRADES, side="buy") == sent)
        assert value(sidecar.scrape(), names.LOST) == 9  # the last drop has no successor
    finally:
        for sock in socks:
            sock.close(linger=0)
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
        for seq in range(3):
            push.send(encode.now("buy", 1.0, seq))
            time.sleep(0.2)  # one frame per drain: one fault each, then a good one
        wait_for(lambda: metrics.trades["buy"] == 1, what="the frame after the faults")
        assert metrics.invalid["internal_error"] == 2
        assert receiver.alive(5.0)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1 and "injected fault" in str(tracebacks[0].exc_info)
    finally:
        receiver.stop()
        push.close(linger=0)
        ctx.term()
