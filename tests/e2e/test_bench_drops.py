"""Forced drops: what the burst row reports must be what really happened.

The sidecar is frozen with SIGSTOP (its process, ZMQ I/O thread included, stops
reading), the client has a tiny high-water mark and a 1 MiB memory budget, and the
burst runs into it: the kernel's socket buffers, ZeroMQ's queue and the client's own
fill up and everything after is dropped. Thawed, the sidecar receives exactly what was
queued (what waited in the client goes out then too). The seq numbers then
tell the relationship between the two counts:

* the client's ``sent + dropped`` is every call, and ``received == sent`` (TCP loses
  nothing that was queued);
* the client stamps seq when it sends, and dropped events consume seq numbers, so the
  events that waited in the client while the sidecar was frozen go out after the
  dropped numbers and reveal every gap: ``lost == dropped``;
* one more event from the same client changes nothing: no gap is counted twice.

The publisher's ``src`` carries the benchmark prefix, as every benchmark's does, so all
of this lands in the sidecar's benchmark counters and none of it in ``trades_total``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from support import Sidecar, wait_for
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
    with Publisher(
        frozen.zmq_address,
        source=BENCH_SOURCE_PREFIX + "forced-drops",
        sndhwm=ctx.sndhwm,
        max_queue_bytes=1024 * 1024,
    ) as pub:
        # One delivered frame first: the sidecar baselines the stream at its first seq,
        # so drops before any delivery would have nothing to be a gap after.
        wait_for(lambda: pub.connected, what="connected")
        pub.trade("sell", 1.0)
        pub.flush()
        reader.settle(before.received + 1, timeout_s=30)
        os.kill(pid, signal.SIGSTOP)
        sent = burst.send(ctx, pub, EVENTS)
        assert sent.dropped > 0, "the frozen sidecar and a 1 MiB budget must force drops"
        assert sent.sent + sent.dropped + sent.queued == EVENTS
        os.kill(pid, signal.SIGCONT)

        def sent_all() -> bool:
            pub.flush()
            return pub.queued == 0

        wait_for(sent_all, what="client queue sent")
        after = reader.settle(before.received + pub.sent, timeout_s=60)
        row = burst.row(ctx, sent, before, after, drained_s=1.0).result

        assert row.received == pub.sent  # everything queued anywhere arrived
        assert pub.sent + pub.dropped == EVENTS + 1 and pub.dropped == row.dropped
        # What waited in the client is stamped when it goes, after the dropped seqs:
        # it reveals every gap already.
        assert row.lost == row.dropped

        assert pub.trade("buy", 1.0)  # one past every dropped seq: nothing more to see
        pub.flush()
        final = reader.settle(after.received + 1, timeout_s=30)
    delta = final.minus(before)
    assert delta.received == pub.sent
    assert delta.lost == pub.dropped
    assert delta.trading_trades == 0  # benchmark traffic never counts as trading
