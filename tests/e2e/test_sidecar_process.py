"""The sidecar as a real process: exact sums from the real client, bad input survived."""

from __future__ import annotations

import random
import time
from importlib.metadata import version
from pathlib import Path

import httpx2 as httpx
import zmq
from support import BIN, Sidecar, free_port, new_sidecar, start_process, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.codec import MAX_FRAME_BYTES
from telemetry_contract.transport import ZMQ_MAX_MSG_BYTES
from trading_publisher.client import DEFAULT_BATCH_SIZE, Publisher


def test_exact_sums_from_the_real_client(sidecar: Sidecar) -> None:
    rng = random.Random(7)
    sent = {"buy": [0, 0.0], "sell": [0, 0.0]}
    last_ts = 0.0
    with Publisher(sidecar.zmq_address, source="exact") as pub:
        for i in range(5000):
            side = rng.choice(("buy", "sell"))
            qty = round(rng.uniform(0, 100), 3)
            last_ts = 1_700_000_000.0 + i * 0.001
            assert pub.trade(side, qty, ts=last_ts)
            sent[side][0] += 1
            sent[side][1] += qty
        assert pub.dropped == 0

    def settled() -> bool:
        s = sidecar.scrape()
        total = value(s, names.TRADES, side="buy") + value(s, names.TRADES, side="sell")
        return total == 5000

    wait_for(settled, what="all 5000 trades counted")
    s = sidecar.scrape()
    for side, (count, volume) in sent.items():
        assert value(s, names.TRADES, side=side) == count
        assert abs(value(s, names.VOLUME, side=side) - volume) < 1e-6
    assert value(s, names.LAST_TRADE_TS) == last_ts
    # Frames, not events: the client batches (at most DEFAULT_BATCH_SIZE per frame).
    assert -(-5000 // DEFAULT_BATCH_SIZE) <= value(s, names.RECEIVED) <= 5000
    assert value(s, names.LOST) == 0
    assert value(s, names.E2E_LATENCY + "_count") == 5000
    assert not any(name.endswith("_created") for name, _ in s)


BAD_FRAMES: list[tuple[list[bytes], str]] = [
    ([b"{not json"], "malformed_json"),
    ([b"\xff\xfe\x00garbage"], "not_utf8"),
    ([b"42"], "not_object"),
    ([b'{"type":"trade","side":"buy","ts":1700000000}'], "missing_field"),
    ([b'{"type":"trade","side":"buy","qty":"3","ts":1700000000}'], "wrong_type"),
    ([b'{"type":"trade","side":"hold","qty":3,"ts":1700000000}'], "invalid_side"),
    ([b'{"type":"trade","side":"buy","qty":-1,"ts":1700000000}'], "invalid_qty"),
    ([b'{"type":"trade","side":"buy","qty":NaN,"ts":1700000000}'], "malformed_json"),
    ([b'{"type":"trade","side":"buy","qty":1e309,"ts":1700000000}'], "invalid_qty"),
    ([b'{"type":"trade","side":"sell","qty":1,"ts":-5}'], "invalid_ts"),
    ([b'{"type":"trade","side":"sell","qty":1,"ts":1.7e12}'], "ts_milliseconds"),
    ([b'{"type":"quote","side":"buy","qty":1,"ts":1700000000}'], "unknown_type"),
    ([b'{"type":"trade","side":"buy"}', b"second part"], "multipart"),
    ([b" " * (MAX_FRAME_BYTES + 1)], "oversize"),
]


def test_malformed_frames_are_counted_and_never_stop_the_loop(sidecar: Sidecar) -> None:
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUSH)
    raw.connect(sidecar.zmq_address)
    expected: dict[str, int] = {}
    good = 0
    try:
        for i in range(1300):
            parts, reason = BAD_FRAMES[i % len(BAD_FRAMES)]
            raw.send_multipart(parts)
            expected[reason] = expected.get(reason, 0) + 1
            raw.send(b'{"type":"trade","side":"buy","qty":2.5,"ts":%d}' % (1_700_000_000 + i))
            good += 1
            if i % 200 == 0:
                assert httpx.get(f"{sidecar.url}/healthz").status_code == 200
        wait_for(
            lambda: value(sidecar.scrape(), names.TRADES, side="buy") == good,
            what="every good frame counted",
        )
        s = sidecar.scrape()
        assert value(s, names.VOLUME, side="buy") == 2.5 * good
        for reason, count in expected.items():
            assert value(s, names.INVALID, reason=reason) == count, reason
        assert value(s, names.RECEIVED) == good + sum(expected.values())
        assert httpx.get(f"{sidecar.url}/healthz").status_code == 200
        # The next good message after all that still counts.
        raw.send(b'{"type":"trade","side":"sell","qty":1,"ts":1700000000}')
        wait_for(lambda: value(sidecar.scrape(), names.TRADES, side="sell") == 1)
    finally:
        raw.close(linger=0)
        ctx.term()
    assert sidecar.proc is not None
    log = sidecar.proc.log()
    # Throttled: 1,300 rejects must not mean 1,300 log lines.
    assert log.count("dropped invalid frame") <= 2 * len(expected)


def test_frame_over_the_zmq_cap_costs_only_its_own_connection(sidecar: Sidecar) -> None:
    """Above ZMQ_MAX_MSG_BYTES libzmq drops the sender's connection, not the sidecar."""
    ctx = zmq.Context()
    giant = ctx.socket(zmq.PUSH)
    giant.connect(sidecar.zmq_address)
    try:
        giant.send(b"x" * (2 * ZMQ_MAX_MSG_BYTES))
        with Publisher(sidecar.zmq_address, source="after-giant") as pub:
            assert pub.trade("sell", 7.0)
        wait_for(lambda: value(sidecar.scrape(), names.VOLUME, side="sell") == 7.0)
        assert httpx.get(f"{sidecar.url}/healthz").status_code == 200
        # Never received, so never counted as a frame (see docs/contract.md).
        assert value(sidecar.scrape(), names.INVALID, reason="oversize") == 0
    finally:
        giant.close(linger=0)
        ctx.term()


def test_seq_gap_shows_as_lost_events(sidecar: Sidecar) -> None:
    ctx = zmq.Context()
    raw = ctx.socket(zmq.PUSH)
    raw.connect(sidecar.zmq_address)
    try:
        for seq in (0, 1, 2, 6, 7, 10):  # 3 missing, then 2 missing
            raw.send(b'{"type":"trade","side":"buy","qty":1,"ts":1e9,"src":"gap","seq":%d}' % seq)
        # Another publisher's stream is tracked on its own.
        for seq in (0, 1):
            raw.send(
                b'{"type":"trade","side":"sell","qty":1,"ts":1e9,"src":"other","seq":%d}' % seq
            )
        wait_for(lambda: value(sidecar.scrape(), names.TRADES, side="sell") == 2)
        assert value(sidecar.scrape(), names.LOST) == 5
    finally:
        raw.close(linger=0)
        ctx.term()


def test_client_reports_absent_sidecar_then_counts_after_start(tmp_path: Path) -> None:
    late = Sidecar(zmq_port=free_port())  # promised to the publisher before it listens
    with Publisher(late.zmq_address, source="late") as pub:
        assert pub.trade("buy", 1.0) is True  # queued by ZeroMQ, not an error
        time.sleep(0.3)
        assert pub.connected is False
        late.start(tmp_path)
        try:
            wait_for(lambda: pub.connected, what="client sees the sidecar")
            assert pub.trade("sell", 4.0)
            wait_for(
                lambda: value(late.scrape(), names.TRADES, side="sell") == 1,
                what="event after start counted",
            )
            s = late.scrape()
            assert value(s, names.VOLUME, side="sell") == 4.0
            assert value(s, names.TRADES, side="buy") == 1  # the queued one arrived too
        finally:
            assert late.stop() == 0
        wait_for(lambda: not pub.connected, what="client notices the sidecar left")
        assert pub.stats().connected is False


# --- exporter basics and the probe-only port, on the real process ----------------------


def test_process_serves_every_new_series_and_probes_on_their_own_port(sidecar: Sidecar) -> None:
    samples = sidecar.scrape()
    assert value(samples, names.RECEIVER_HEALTHY) == 1
    assert value(samples, names.BUILD_INFO, version=version("trading-sidecar")) == 1
    assert value(samples, "process_start_time_seconds") > 0
    assert any(name == "python_info" for name, _ in samples)
    probe = f"http://127.0.0.1:{sidecar.probe_port}"
    assert httpx.get(f"{probe}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{probe}/readyz", timeout=5).status_code == 200
    for path in ("/metrics", "/", "/healthz/", "/nope"):
        response = httpx.get(f"{probe}{path}", timeout=5)
        assert response.status_code == 404, path
        assert "trades_total" not in response.text
    # The main port still serves everything.
    assert httpx.get(f"{sidecar.url}/", timeout=5).status_code == 200


def test_probe_port_zero_opens_no_second_listener(tmp_path: Path) -> None:
    running = new_sidecar()
    running.probe_port = 0
    running.start(tmp_path)
    try:
        assert running.proc is not None
        log = running.proc.log().splitlines()
        listening = [line for line in log if "listening on http://" in line]
        assert len(listening) == 1, log
    finally:
        assert running.stop() == 0


def test_probe_port_equal_to_http_port_is_refused(tmp_path: Path) -> None:
    port = free_port()
    proc = start_process(
        [str(BIN / "trading-sidecar")],
        tmp_path / "sidecar.log",
        {"TT_SIDECAR_HTTP_PORT": str(port), "TT_SIDECAR_PROBE_PORT": str(port),
         "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{free_port()}"},
    )  # fmt: skip
    wait_for(lambda: proc.process.poll() is not None, timeout=30, what="sidecar to refuse")
    assert proc.process.returncode == 2
    assert "probe port must differ" in proc.log()
