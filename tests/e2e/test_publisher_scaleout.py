"""Batched publishing into real sidecars: exact sums, exact loss accounting, bounded memory.

Real ``trading-sidecar`` processes on loopback. The sidecar counts loss per
(src, stream) and epoch (docs/contract.md); the publisher gives each endpoint its own
stream, so spreading events over several sidecars reports no loss that did not happen,
and every event the client drops shows up as lost exactly once.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Sidecar, free_port, new_sidecar, value, wait_for
from telemetry_contract import metric_names as names
from trading_publisher.client import DEFAULT_MAX_QUEUE_BYTES, Publisher


@pytest.fixture
def three_sidecars(tmp_path: Path) -> Iterator[list[Sidecar]]:
    started: list[Sidecar] = []
    try:
        for _ in range(3):
            started.append(new_sidecar().start(tmp_path))
        yield started
    finally:
        for sidecar in started:
            sidecar.stop()


def totals(sidecars: list[Sidecar]) -> tuple[float, float]:
    """(trades over both sides, events lost) summed over the sidecars."""
    trades = lost = 0.0
    for sidecar in sidecars:
        s = sidecar.scrape()
        trades += value(s, names.TRADES, side="buy") + value(s, names.TRADES, side="sell")
        lost += value(s, names.LOST)
    return trades, lost


def all_connected(pub: Publisher) -> bool:
    with pub._lock:  # noqa: SLF001 - the per-socket connection state
        pub._streams.poll()  # noqa: SLF001
        return all(s.peers for s in pub._streams.all)  # noqa: SLF001


@pytest.mark.parametrize("batch_size", [64, 1])
def test_sums_on_metrics_are_exact(sidecar: Sidecar, batch_size: int) -> None:
    rng = random.Random(batch_size)
    # Multiples of 1/4 are exact in binary floating point: the sums are exact too.
    trades = [(rng.choice(("buy", "sell")), rng.randrange(0, 40_000) / 4) for _ in range(3_000)]
    with Publisher(sidecar.zmq_address, source=f"sums-{batch_size}", batch_size=batch_size) as pub:
        for side, qty in trades:
            pub.trade(side, qty)
    for side in ("buy", "sell"):
        mine = [qty for s, qty in trades if s == side]

        def counted(side: str = side, expected: int = len(mine)) -> bool:
            return value(sidecar.scrape(), names.TRADES, side=side) == expected

        wait_for(counted, what=f"{side} trades counted")
        assert value(sidecar.scrape(), names.VOLUME, side=side) == sum(mine)
    assert value(sidecar.scrape(), names.LOST) == 0


def test_three_sidecars_see_every_event_and_no_false_loss(three_sidecars: list[Sidecar]) -> None:
    addresses = ",".join(s.zmq_address for s in three_sidecars)
    with Publisher(addresses, source="fan-out") as pub:
        wait_for(lambda: all_connected(pub), what="three connections")
        for i in range(30_000):
            pub.trade("buy" if i % 3 else "sell", 1.0)
        pub.flush()
        assert pub.dropped == 0
    wait_for(lambda: totals(three_sidecars)[0] == 30_000, timeout=60, what="30,000 counted")
    per_sidecar = [value(s.scrape(), names.TRADES, side="buy") for s in three_sidecars]
    assert all(count > 0 for count in per_sidecar)  # spread over all three
    assert totals(three_sidecars) == (30_000, 0)


def test_dropped_events_are_lost_exactly_once(three_sidecars: list[Sidecar]) -> None:
    """A queue far too small for a tight loop: the sidecars' lost sum is the drop count."""
    addresses = ",".join(s.zmq_address for s in three_sidecars)
    with Publisher(addresses, source="tiny", max_queue_bytes=8 * 1024, sndhwm=1) as pub:
        wait_for(lambda: all_connected(pub), what="three connections")

        def probe_each_stream() -> None:
            # One frame per stream (round-robin): baselines each sidecar's stream before
            # the drops, and afterwards reveals every gap (a gap shows with the next seq).
            for _ in range(3):
                pub.trade("sell", 1.0)
                pub.flush()

        probe_each_stream()
        wait_for(lambda: totals(three_sidecars)[0] == 3, what="probes counted")
        for _ in range(30_000):
            pub.trade("buy", 1.0)
        pub.flush()

        def drained() -> bool:
            pub.flush()
            return pub.queued == 0

        wait_for(drained, what="queue drained")
        assert pub.dropped > 0, "the queue was not small enough to force drops"
        sent_before_probes = pub.sent
        probe_each_stream()
        wait_for(lambda: pub.sent == sent_before_probes + 3, what="closing probes sent")
        sent, dropped = pub.sent, pub.dropped
    wait_for(lambda: totals(three_sidecars)[0] == sent, timeout=60, what="all sent counted")
    assert sent + dropped == 30_006
    assert totals(three_sidecars) == (sent, dropped)


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from trading_publisher.client import DEFAULT_MAX_QUEUE_BYTES, Publisher

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    address, events = sys.argv[1], int(sys.argv[2])
    pub = Publisher(address, source="absent", linger_ms=0)
    before = rss()
    trade = pub.trade
    for i in range(events):
        trade("buy", 1.0)
    pub.flush()
    grown = rss() - before
    print(json.dumps({"grown": grown, "dropped": pub.dropped, "queued": pub.queued,
                      "sent": pub.sent}))
    pub.close()
    """
)


def test_memory_stays_bounded_while_the_sidecar_is_away(tmp_path: Path) -> None:
    """Twice the default budget's worth of events into a sidecar that is not there.

    Memory only: the time of each call while the sidecar is away is bounded in
    test_trade_never_blocks.py (with this default budget too), where the machine's load
    is told apart from a call that blocks."""
    per_event_wire = 100  # bytes of one encoded trade, about
    events = 2 * DEFAULT_MAX_QUEUE_BYTES // per_event_wire
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, f"tcp://127.0.0.1:{free_port()}", str(events)],
        capture_output=True,
        text=True,
        timeout=600,  # a blocking trade() would hang here, not merely be slow
    )
    assert done.returncode == 0, done.stderr  # trade() never raised
    result = json.loads(done.stdout)
    margin = 16 * 1024 * 1024
    assert result["grown"] < DEFAULT_MAX_QUEUE_BYTES + margin, result
    assert result["sent"] == 0 and result["dropped"] > 0
    assert result["dropped"] + result["queued"] == events
