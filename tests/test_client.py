"""The publisher client's promises: never blocks, never raises for transport, counts drops."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import zmq
from support import Sidecar, free_port, value, wait_for
from telemetry_contract import metric_names as names
from trading_publisher.client import Publisher, default_source


def test_full_queue_drops_and_counts_without_blocking_or_raising() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nobody listens here
    with Publisher(address, source="full", sndhwm=10, linger_ms=0) as pub:
        started = time.monotonic()
        results = [pub.trade("buy", 1.0) for _ in range(5000)]
        # Not a speed assertion: a blocking send would hang here forever, not be slow.
        assert time.monotonic() - started < 60
        assert pub.sent + pub.dropped == 5000
        assert results.count(True) == pub.sent
        assert pub.dropped > 0
        assert pub.stats().connected is False


def test_closed_client_counts_drops_instead_of_raising() -> None:
    pub = Publisher(f"tcp://127.0.0.1:{free_port()}", source="closed", linger_ms=0)
    pub.close()
    assert pub.trade("sell", 2.0) is False
    assert pub.dropped == 1
    assert pub.connected is False


def test_bad_arguments_are_caller_bugs_and_do_raise() -> None:
    with Publisher(f"tcp://127.0.0.1:{free_port()}", linger_ms=0) as pub:
        for side, qty in (("hold", 1.0), ("buy", -1.0), ("buy", float("nan"))):
            with pytest.raises(ValueError):
                pub.trade(side, qty)
        assert pub.sent == pub.dropped == 0


def test_default_source_is_a_valid_src() -> None:
    src = default_source()
    assert 0 < len(src) <= 64 and src.endswith(f"-{os.getpid()}")


def test_a_million_event_burst_at_default_settings_loses_nothing(sidecar: Sidecar) -> None:
    """The seed's default high-water mark lost over half of a 1,000-event burst."""
    total = 1_000_000
    with Publisher(sidecar.zmq_address, source="burst") as pub:
        trade = pub.trade
        for _ in range(total):
            trade("buy", 1.0)
        assert pub.dropped == 0 and pub.sent == total
    wait_for(
        lambda: value(sidecar.scrape(), names.TRADES, side="buy") == total,
        timeout=120,
        interval=0.5,
        what="all 1,000,000 events counted",
    )
    s = sidecar.scrape()
    assert value(s, names.LOST) == 0
    assert value(s, names.VOLUME, side="buy") == float(total)


def test_publisher_survives_sidecar_restart(sidecar: Sidecar, tmp_path: Path) -> None:
    with Publisher(sidecar.zmq_address, source="restart") as pub:
        wait_for(lambda: pub.connected, what="connected")
        assert sidecar.stop() == 0
        wait_for(lambda: not pub.connected, what="disconnect noticed")
        assert pub.trade("sell", 1.0)  # queued while the sidecar is away
        sidecar.start(tmp_path)
        wait_for(lambda: pub.connected, what="reconnected")
        assert pub.trade("sell", 1.0)
        wait_for(lambda: value(sidecar.scrape(), names.TRADES, side="sell") == 2)


def test_raw_context_is_released() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(f"tcp://127.0.0.1:{free_port()}", context=ctx, linger_ms=0)
    pub.close()
    ctx.term()  # hangs if the client leaked a socket on a shared context
