"""Forced drops: what the burst row reports must be what really happened.

The sidecar is frozen with SIGSTOP (its process, ZMQ I/O thread included, stops
reading), the client has a tiny high-water mark, and the burst runs into it: the
kernel's socket buffers and the client's queue fill up and everything after is
dropped. Thawed, the sidecar receives exactly what was queued. The seq numbers then
tell the relationship between the two counts:

* the client's ``sent + dropped`` is every call, and ``received == sent`` (TCP loses
  nothing that was queued);
* drops at the tail of the burst are *not* in the sidecar's ``lost``: no later seq
  reveals them; so right after the burst ``lost == 0`` although ``dropped > 0``;
* one more event from the same client then reveals all of them: ``lost == dropped``,
  because the client advances seq for dropped events too.

The publisher's ``src`` carries the benchmark prefix, as every benchmark's does, so all
of this lands in the sidecar's benchmark counters and none of it in ``trades_total``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from support import Sidecar
from telemetry_contract.codec import BENCH_SOURCE_PREFIX
from trading_bench import burst
from trading_bench.common import RunContext
from trading_bench.sidecar import MetricsReader
from trading_publisher.client import Publisher

EVENTS = 200_000  # ~20 MB of frames: more than loopback socket buffers can hide


@pytest.fixture
def frozen(sidecar: Sidecar) -> Iterator[Sidecar]:
    assert sidecar.proc is not None
    pid = sidecar.proc.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield sidecar
    finally:
        os.kill(pid, signal.SIGCONT)


def test_drops_and_seq_gaps_add_up(frozen: Sidecar) -> None:
    reader = MetricsReader(frozen.url)
    ctx = RunContext("drops", frozen.zmq_address, reader, progress=False, sndhwm=10)
    assert frozen.proc is not None
    pid = frozen.proc.process.pid
    os.kill(pid, signal.SIGCONT)
    before = reader.counts()
    os.kill(pid, signal.SIGSTOP)
    with Publisher(
        frozen.zmq_address, source=BENCH_SOURCE_PREFIX + "forced-drops", sndhwm=ctx.sndhwm
    ) as pub:
        sent = burst.send(ctx, pub, EVENTS)
        os.kill(pid, signal.SIGCONT)
        after = reader.settle(before.received + sent.sent, timeout_s=60)
        row = burst.row(ctx, sent, before, after, drained_s=1.0).result

        assert sent.dropped > 0, "the frozen sidecar and HWM 10 must force drops"
        assert row.sent + row.dropped == row.events == EVENTS
        assert (row.sent, row.dropped) == (pub.sent, pub.dropped)
        assert row.received == row.sent
        assert row.lost == 0  # every drop is at the tail: no later seq shows the gap

        assert pub.trade("buy", 1.0)  # seq = EVENTS: one past every dropped seq
        final = reader.settle(after.received + 1, timeout_s=30)
    delta = final.minus(before)
    assert delta.received == row.sent + 1
    assert delta.lost == row.dropped
    assert delta.trading_trades == 0  # benchmark traffic never counts as trading
