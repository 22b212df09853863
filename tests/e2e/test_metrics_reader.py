"""The one /metrics reader: real sidecars (one and several), every way of not reaching
one without raising, restart detection and the UI's rate history."""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import Sidecar, free_port, new_sidecar, push_frames, wait_for
from telemetry_contract.codec import encode_trade
from trading_publisher.metrics_reader import (
    RateHistory,
    SidecarStatus,
    TotalsSource,
    detect_restarts,
    fetch_all,
    fetch_status,
    parse_samples,
    remembered,
    restart_origin,
    status_from_samples,
)


def parse_status(text: str) -> SidecarStatus:
    return status_from_samples(parse_samples(text))


def test_reads_the_real_sidecars_totals(sidecar: Sidecar) -> None:
    before = fetch_status(sidecar.url)
    assert before.reachable and before.error == ""
    assert dict(before.trades) == {"buy": 0, "sell": 0}
    assert before.last_trade_time is None

    push_frames(
        sidecar.zmq_address,
        encode_trade("buy", 2.5, 1_700_000_000.0, "status-test", 0),
        encode_trade("buy", 1.0, 1_700_000_001.0, "status-test", 1),
        # seq 2 and 3 never sent: the sidecar counts them as lost.
        encode_trade("sell", 4.0, 1_700_000_002.0, "status-test", 4),
        b"{not json",
        b'{"type":"trade","side":"hold","qty":1,"ts":1}',
    )
    wait_for(lambda: fetch_status(sidecar.url).invalid_total == 2, what="all five frames counted")
    status = fetch_status(sidecar.url)
    assert status.reachable
    assert dict(status.trades) == {"buy": 2, "sell": 1}
    assert dict(status.volume) == {"buy": 3.5, "sell": 4.0}
    assert status.last_trade_ts == 1_700_000_002.0
    assert status.last_trade_time is not None and status.last_trade_time.year == 2023
    assert status.lost == 2


def test_nothing_listening_is_unreachable_not_an_exception() -> None:
    status = fetch_status(f"http://127.0.0.1:{free_port()}")
    assert not status.reachable
    assert "refused" in status.error.lower()
    assert dict(status.trades) == {"buy": 0, "sell": 0}


def test_a_peer_that_never_answers_times_out_as_unreachable() -> None:
    # Listening but never accepting: the kernel completes the connect, nobody replies.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        status = fetch_status(f"http://127.0.0.1:{port}", timeout=0.2)
    assert not status.reachable
    assert "timed out" in status.error


def test_non_http_urls_are_refused() -> None:
    status = fetch_status("file:///etc")
    assert not status.reachable and "http" in status.error


class _Fixed(BaseHTTPRequestHandler):
    """Answers every GET with whatever the test put on the server."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        code, body = self.server.reply  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def fake() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fixed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        (503, b"down", "HTTP 503"),
        (200, b"<html>a login page</html>", "not Prometheus text"),
        (200, b"some_other_metric 1\n", "trading sidecar"),
        (200, b"\xff\xfe binary", "utf-8"),
    ],
)
def test_something_else_answering_is_unreachable(
    fake: ThreadingHTTPServer, code: int, body: bytes, expected: str
) -> None:
    fake.reply = (code, body)  # type: ignore[attr-defined]
    status = fetch_status(f"http://127.0.0.1:{fake.server_address[1]}")
    assert not status.reachable
    assert expected in status.error
    assert status.error.startswith(f"http://127.0.0.1:{fake.server_address[1]}/metrics: ")


def test_parse_status_sums_every_invalid_reason() -> None:
    text = "\n".join(
        [
            'trades_total{side="buy"} 3',
            'trades_total{side="sell"} 1',
            'volume_total{side="buy"} 7.5',
            'volume_total{side="sell"} 2',
            "last_trade_ts_seconds 1.7e9",
            'telemetry_messages_invalid_total{reason="oversize"} 2',
            'telemetry_messages_invalid_total{reason="invalid_qty"} 5',
            "telemetry_events_lost_total 4",
            "",
        ]
    )
    status = parse_status(text)
    assert dict(status.trades) == {"buy": 3, "sell": 1}
    assert dict(status.volume) == {"buy": 7.5, "sell": 2}
    assert status.last_trade_ts == 1.7e9
    assert status.invalid_total == 7
    assert status.lost == 4


def test_several_replicas_are_summed(sidecar: Sidecar, tmp_path: Path) -> None:
    other = new_sidecar().start(tmp_path)
    try:
        push_frames(sidecar.zmq_address, encode_trade("buy", 2.0, 1_700_000_000.0, "r1", 0))
        push_frames(
            other.zmq_address,
            encode_trade("buy", 3.0, 1_700_000_005.0, "r2", 0),
            encode_trade("sell", 1.0, 1_700_000_006.0, "r2", 2),
        )
        source = TotalsSource.from_settings(f"{sidecar.url}, {other.url}")
        assert source.sidecar_urls == (sidecar.url, other.url)

        def both_counted() -> SidecarStatus | None:
            status = source.read(timeout=5)
            return status if status.trades["sell"] == 1 else None

        status = wait_for(both_counted, what="both replicas counted")
        assert status.reachable and status.replicas_up == status.replicas == 2
        assert dict(status.trades) == {"buy": 2, "sell": 1}
        assert dict(status.volume) == {"buy": 5.0, "sell": 1.0}
        assert status.last_trade_ts == 1_700_000_006.0
        assert status.lost == 1

        # One replica away: the sum is flagged as partial, never passed off as whole.
        assert other.stop() == 0
        partial = source.read(timeout=5)
        assert not partial.reachable and partial.any_reachable
        assert partial.replicas_up == 1 and other.url in partial.error
        assert dict(partial.trades) == {"buy": 1, "sell": 0}
    finally:
        if other.proc is not None:
            other.stop()


def test_nothing_reachable_at_all() -> None:
    status = fetch_all([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"])
    assert not status.any_reachable and status.replicas == 2
    assert status.error.count("refused") == 2


def _status(started: dict[str, float], trades: dict[str, float]) -> SidecarStatus:
    return SidecarStatus(reachable=True, started=started, replica_trades=trades)


@pytest.mark.parametrize(
    ("before", "now", "restarted"),
    [
        (_status({"a": 1.0}, {"a": 5}), _status({"a": 1.0}, {"a": 6}), []),
        (_status({"a": 1.0}, {"a": 5}), _status({"a": 2.0}, {"a": 6}), ["a"]),
        (_status({}, {"a": 5}), _status({}, {"a": 0}), ["a"]),
        (_status({"a": 1.0}, {"a": 5}), _status({"a": 2.0}, {"a": 0}), ["a"]),
        (_status({}, {"a": 5}), _status({}, {"a": 5, "b": 0}), []),
        (_status({}, {"a": 5, "b": 3}), _status({}, {"a": 5, "b": 1}), ["b"]),
    ],
)
def test_detect_restarts(before: SidecarStatus, now: SidecarStatus, restarted: list[str]) -> None:
    assert detect_restarts(before, now) == restarted


def test_a_restart_is_seen_across_a_read_that_lacked_the_replica() -> None:
    """Killed, read while its series were gone (stale in Prometheus), then back with a new
    start time: compared with the last read alone, the restart would go unseen."""
    first = _status({"a": 1.0}, {"a": 5})
    gap = _status({}, {})  # reachable (Prometheus answers) but no series of replica a
    back = _status({"a": 2.0}, {"a": 5})
    assert detect_restarts(gap, back) == []  # what the UI compared before
    assert detect_restarts(remembered(remembered(None, first), gap), back) == ["a"]
    assert remembered(first, back).started == {"a": 2.0}


def test_rate_history_rates_by_side_and_resets() -> None:
    history = RateHistory(window_s=10, min_step_s=0.5)
    history.add(100.0, {"buy": 0, "sell": 0})
    history.add(100.2, {"buy": 99, "sell": 0})  # too soon: skipped
    history.add(101.0, {"buy": 10, "sell": 4})
    history.add(103.0, {"buy": 20, "sell": 4})
    history.add(104.0, {"buy": 3, "sell": 1})  # went down: a restart, counted from zero
    assert history.points() == [
        (101.0, {"buy": 10.0, "sell": 4.0}),
        (103.0, {"buy": 5.0, "sell": 0.0}),
        (104.0, {"buy": 3.0, "sell": 1.0}),
    ]
    history.add(112.0, {"buy": 3, "sell": 1})
    assert [t for t, _ in history.points()] == [103.0, 104.0, 112.0]


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        (200, b'{"counts_from": "saved_state", "state_kept": true}', "restored from saved state"),
        (200, b'{"counts_from": "zero", "state_kept": true}', "no saved state to restore"),
        (200, b'{"counts_from": "zero", "state_kept": false}', "it keeps no state"),
        (200, b'{"service": "trading-sidecar"}', "not known"),  # an older sidecar
        (200, b"[1, 2]", "not known"),
        (200, b"not json", "not known"),
        (503, b"down", "not known"),
    ],
    ids=["restored", "zero", "not-kept", "older", "list", "not-json", "down"],
)
def test_restart_origin_says_what_the_sidecar_says_and_never_guesses(
    fake: ThreadingHTTPServer, code: int, body: bytes, expected: str
) -> None:
    fake.reply = (code, body)  # type: ignore[attr-defined]
    said = restart_origin(f"http://127.0.0.1:{fake.server_address[1]}")
    assert expected in said, said


def test_restart_origin_of_a_prometheus_instance_label_is_not_known() -> None:
    assert "not known" in restart_origin("127.0.0.1:8001")


class _BusyThenServed(BaseHTTPRequestHandler):
    """503 (too many scrapes at once) for the first ``busy`` GETs, then a sidecar's page."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        server = self.server
        server.seen += 1  # type: ignore[attr-defined]
        busy = server.seen <= server.busy  # type: ignore[attr-defined]
        body = b"busy\n" if busy else server.page  # type: ignore[attr-defined]
        self.send_response(503 if busy else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.mark.parametrize(("busy", "reachable"), [(2, True), (3, False)])
def test_a_busy_sidecar_is_asked_again(sidecar: Sidecar, busy: int, reachable: bool) -> None:
    """The sidecar answers a scrape beyond its concurrent renders with 503 at once: the
    reader tries twice more before calling it unreachable."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BusyThenServed)
    server.seen, server.busy = 0, busy  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"{sidecar.url}/metrics", timeout=5) as real:
        server.page = real.read()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status = fetch_status(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert status.reachable is reachable, status.error
    assert server.seen == 3  # type: ignore[attr-defined]
