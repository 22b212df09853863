"""``receiver``: the receive loop on inproc sockets. It drains what is queued when stopped,
and cannot die: an injected fault is counted as internal_error and the next frame counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
import zmq
from support import wait_for
from telemetry_contract.codec import TradeEncoder
from telemetry_contract.events import Event
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.receiver import Receiver


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
        for seq in range(3):
            push.send(encode.now("buy", 1.0, seq))
            wait_for(
                lambda n=seq + 1: metrics.invalid["internal_error"] + metrics.trades["buy"] == n,
                what=f"frame {seq} handled",
            )
        wait_for(lambda: metrics.trades["buy"] == 1, what="the frame after the faults")
        assert metrics.invalid["internal_error"] == 2
        assert receiver.alive(5.0)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1 and "injected fault" in str(tracebacks[0].exc_info)
    finally:
        receiver.stop()
        push.close(linger=0)
        ctx.term()
