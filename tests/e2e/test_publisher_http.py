"""The real ``trading-publisher-http`` process in front of a real sidecar.

One sidecar and one endpoint process serve the whole module (start-up is the slow
part); each test compares the sidecar's counters before and after what it sends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from support import (
    BIN,
    Proc,
    Samples,
    Sidecar,
    accepted_trade,
    free_port,
    new_sidecar,
    start_process,
    value,
    wait_http_ok,
)
from support import wait_for as wait_until
from telemetry_contract import metric_names as names


@dataclass
class Endpoint:
    proc: Proc
    url: str
    sidecar: Sidecar

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        if "content" in kwargs and "headers" not in kwargs:
            kwargs["headers"] = {"content-type": "application/json"}
        return httpx.post(f"{self.url}{path}", timeout=5, **kwargs)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    logs = tmp_path_factory.mktemp("publisher-http")
    sidecar = new_sidecar().start(logs)
    port = free_port()
    proc = start_process(
        [str(BIN / "trading-publisher-http")],
        logs / "publisher-http.log",
        {
            "TT_PUBLISHER_ZMQ_CONNECT": sidecar.zmq_address,
            "TT_PUBLISHER_HTTP_PORT": str(port),
            "TT_PUBLISHER_SOURCE": "http-test",
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc, f"{url}/healthz")
        yield Endpoint(proc, url, sidecar)
    finally:
        code = proc.stop()
        sidecar_code = sidecar.stop()
    assert code == 0, f"trading-publisher-http exited {code} on SIGTERM:\n{proc.log()}"
    assert sidecar_code == 0


def _totals(samples: Samples) -> dict[str, float]:
    totals = {
        f"{metric}:{side}": value(samples, metric, side=side)
        for metric in (names.TRADES, names.VOLUME)
        for side in ("buy", "sell")
    }
    totals["invalid"] = sum(v for (name, _), v in samples.items() if name == names.INVALID)
    totals["lost"] = value(samples, names.LOST)
    return totals


def _wait_for_totals(sidecar: Sidecar, expected: dict[str, float]) -> None:
    wait_until(lambda: _totals(sidecar.scrape()) == expected, what=f"sidecar totals {expected}")


def test_post_buy_counts_in_the_sidecar(endpoint: Endpoint) -> None:
    expected = _totals(endpoint.sidecar.scrape())
    event = accepted_trade(
        endpoint.post("/trade/buy", params={"qty": "2"}), "buy", 2.0, "http-test"
    )
    expected[f"{names.TRADES}:buy"] += 1
    expected[f"{names.VOLUME}:buy"] += 2
    _wait_for_totals(endpoint.sidecar, expected)
    assert value(endpoint.sidecar.scrape(), names.LAST_TRADE_TS) == event["ts"]


def test_json_body_and_default_qty(endpoint: Endpoint) -> None:
    expected = _totals(endpoint.sidecar.scrape())
    assert endpoint.post("/trade/sell", json={"qty": 1.25}).status_code == 202
    no_qty = endpoint.post("/trade/sell")
    assert no_qty.status_code == 202 and no_qty.json()["event"]["qty"] == 1.0
    expected[f"{names.TRADES}:sell"] += 2
    expected[f"{names.VOLUME}:sell"] += 2.25
    _wait_for_totals(endpoint.sidecar, expected)


#: A sample of refused requests; every refusal and its message is covered in-process in
#: tests/unit/publisher/test_trade_api.py. Here: through the real server, they reach nothing.
BAD_REQUESTS: list[tuple[str, dict[str, Any], int]] = [
    ("/trade/hold", {"params": {"qty": "1"}}, 404),
    ("/trade/buy", {"params": {"qty": "nan"}}, 422),
    ("/trade/buy", {"content": b'{"qty": 1e309}'}, 422),
    ("/trade/buy", {"content": b"[" * 4000 + b"]" * 90}, 422),
    ("/trade/buy", {"content": b" " * 5000}, 413),
    ("/trade/buy", {"params": {"qty": "1_000"}}, 422),
    # What a web page in the user's browser can send (tests/unit/publisher has them all).
    ("/trade/buy", {"content": b'{"qty": 3}', "headers": {"content-type": "text/plain"}}, 415),
    ("/trade/buy", {"params": {"qty": "3"}, "headers": {"origin": "http://evil.example"}}, 403),
    ("/trade/buy", {"params": {"qty": "3"}, "headers": {"host": "evil.example"}}, 403),
]


def test_after_bad_requests_a_good_one_still_counts(endpoint: Endpoint) -> None:
    expected = _totals(endpoint.sidecar.scrape())
    for path, kwargs, status in BAD_REQUESTS:
        assert endpoint.post(path, **kwargs).status_code == status
    response = endpoint.post("/trade/buy", params={"qty": "0.5"})
    assert response.status_code == 202 and response.json()["sent"] is True
    expected[f"{names.TRADES}:buy"] += 1
    expected[f"{names.VOLUME}:buy"] += 0.5
    # Nothing invalid reached the sidecar, and no seq was skipped by a refused request.
    _wait_for_totals(endpoint.sidecar, expected)


def test_healthz_reports_the_publisher(endpoint: Endpoint) -> None:
    """Alone or after the others: this test sends its own trade and reads the change."""

    def health() -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{endpoint.url}/healthz", timeout=5).json()
        return answer

    # The endpoint's publisher is connected to a live sidecar, so this must turn true.
    wait_until(
        lambda: health()["sidecar_connected"], what="/healthz to report the sidecar connected"
    )
    before = health()
    assert before["status"] == "ok" and before["dropped"] == 0
    assert endpoint.post("/trade/sell", params={"qty": "1"}).status_code == 202
    wait_until(
        lambda: health()["sent"] == before["sent"] + 1, what="/healthz to count the trade sent"
    )
    assert health()["dropped"] == 0


def test_main_exits_zero_on_sigterm(tmp_path: Path) -> None:
    """Without a sidecar at all: the endpoint still starts, serves, and stops cleanly."""
    port = free_port()
    proc = start_process(
        [str(BIN / "trading-publisher-http"), "--http-port", str(port)],
        tmp_path / "publisher-http.log",
        {"TT_PUBLISHER_ZMQ_CONNECT": f"tcp://127.0.0.1:{free_port()}"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc, f"{url}/healthz")
        response = httpx.post(f"{url}/trade/sell", params={"qty": "1"}, timeout=5)
        # Queued by ZeroMQ for a sidecar that may come later, not refused.
        assert response.status_code == 202 and response.json()["sent"] is True
        assert httpx.get(f"{url}/healthz", timeout=5).json()["sidecar_connected"] is False
    finally:
        code = proc.stop()
    assert code == 0, proc.log()


def test_non_ui_modules_do_not_import_streamlit() -> None:
    """Trading hosts import the client (and may run the endpoint) without Streamlit."""
    code = (
        "import sys, trading_publisher.client, trading_publisher.trade_api, "
        "trading_publisher.metrics_reader, trading_publisher.ui_launcher; "
        "sys.exit('streamlit' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
