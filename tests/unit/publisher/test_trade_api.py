"""``trade_api``'s app in-process: Starlette's TestClient in front of a real PULL socket.

Every refused request must say why and send nothing; a good one must put exactly one
valid trade frame on the wire. "Nothing was sent" is checked by ordering: after the bad
requests, the next frame the socket receives must be the good request's trade.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from starlette.testclient import TestClient
from support import ZmqSockets, accepted_trade, wait_for
from telemetry_contract.codec import decode
from telemetry_contract.events import Trade
from telemetry_contract.ports import DEFAULT_PUBLISHER_HTTP_PORT
from trading_publisher.client import Publisher
from trading_publisher.settings import PublisherSettings
from trading_publisher.trade_api import MAX_BODY_BYTES, create_app

#: What a local caller's Host header says for the default port.
LOCAL = f"http://127.0.0.1:{DEFAULT_PUBLISHER_HTTP_PORT}"


class Api:
    def __init__(self, client: TestClient, pull: zmq.Socket[bytes]) -> None:
        self.client = client
        self.pull = pull

    def post(self, path: str, **kwargs: Any) -> Any:
        if "content" in kwargs and "headers" not in kwargs:
            # Raw bodies are JSON attempts here; the content-type rule has its own tests.
            kwargs["headers"] = {"content-type": "application/json"}
        return self.client.post(path, **kwargs)

    def next_trade(self) -> Trade:
        events = decode(self.pull.recv()).events
        assert len(events) == 1 and isinstance(events[0], Trade), events
        return events[0]


@pytest.fixture
def api(zmq_sockets: ZmqSockets) -> Iterator[Api]:
    pull, address = zmq_sockets.bind(zmq.PULL)
    publisher = Publisher(address, source="unit-test", batch_size=1, context=zmq_sockets.ctx)
    try:
        # Until the TCP connection is up the client keeps events back (ZMQ_IMMEDIATE) and
        # sends them later from its flusher: wait, so "sent" means sent in every test.
        wait_for(lambda: publisher.connected, timeout=10, what="the publisher connected")
        # The endpoint answers only Hosts it serves: loopback with its port by default.
        with TestClient(create_app(PublisherSettings(), publisher), base_url=LOCAL) as client:
            yield Api(client, pull)
    finally:
        publisher.close()


def test_post_buy_sends_one_trade_frame(api: Api) -> None:
    event = accepted_trade(api.post("/trade/buy", params={"qty": "2"}), "buy", 2.0, "unit-test")
    trade = api.next_trade()
    assert (trade.side, trade.qty, trade.src, trade.ts) == ("buy", 2.0, "unit-test", event["ts"])


def test_json_body_and_default_qty(api: Api) -> None:
    assert api.post("/trade/sell", json={"qty": 1.25}).status_code == 202
    no_qty = api.post("/trade/sell")
    assert no_qty.status_code == 202 and no_qty.json()["event"]["qty"] == 1.0
    assert (api.next_trade().qty, api.next_trade().qty) == (1.25, 1.0)


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("/trade/hold", {"params": {"qty": "1"}}, 404, "unknown side 'hold'"),
    ("/trade/BUY", {}, 404, "unknown side"),
    ("/trade/buy", {"params": {"qty": "abc"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": ""}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": "-1"}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": {"qty": "nan"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": "inf"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": "1e999"}}, 422, "qty must be a decimal number"),
    # float() takes all of these; a decimal in ASCII digits is what the endpoint promises.
    ("/trade/buy", {"params": {"qty": "1_000"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": "\u0661\u0662"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": "\uff13"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": " 3"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": "0x10"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"params": {"qty": "999999999999999999"}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": [("qty", "1"), ("qty", "2")]}, 422, "give qty once"),
    ("/trade/buy", {"json": {"qty": "3"}}, 422, "qty must be a number"),
    ("/trade/buy", {"json": {"qty": True}}, 422, "qty must be a number"),
    ("/trade/buy", {"json": {"qty": -0.5}}, 422, "finite number >= 0"),
    ("/trade/buy", {"json": {"qty": 10**400}}, 422, "finite number >= 0"),
    ("/trade/buy", {"json": {"qty": 1e15 + 2}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": {"qty": "2e15"}}, 422, "qty must be a decimal number"),
    ("/trade/buy", {"content": b'{"qty": NaN}'}, 422, "not valid JSON"),
    ("/trade/buy", {"content": b'{"qty": Infinity}'}, 422, "not valid JSON"),
    ("/trade/buy", {"content": b'{"qty": 1e309}'}, 422, "finite number >= 0"),
    ("/trade/buy", {"content": b'{"qty": {"a": 1}}'}, 422, "qty must be a number"),
    ("/trade/buy", {"content": b'{"qty": [[[[[[[[[[1]]]]]]]]]]}'}, 422, "qty must be a number"),
    ("/trade/buy", {"content": b"[" * 4000 + b"]" * 90}, 422, "JSON object"),
    ("/trade/buy", {"content": b'{"x":' * 680 + b"1" + b"}" * 680}, 422, "unknown field"),
    ("/trade/buy", {"content": b"qty=3"}, 422, "JSON object"),
    ("/trade/buy", {"json": [3]}, 422, "JSON object"),
    ("/trade/buy", {"json": {"qty": 1, "side": "sell"}}, 422, "unknown field"),
    ("/trade/buy", {"params": {"qty": "1"}, "json": {"qty": 1}}, 422, "not both"),
    ("/trade/buy", {"content": b" " * (MAX_BODY_BYTES + 904)}, 413, "larger than"),
    ("/trade/buy", {"content": b"[" * (MAX_BODY_BYTES + 904)}, 413, "larger than"),
]


@pytest.mark.parametrize(("path", "kwargs", "status", "message"), BAD_REQUESTS)
def test_bad_requests_say_why_and_send_nothing(
    api: Api, path: str, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = api.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    good = api.post("/trade/sell", params={"qty": "7"})
    assert good.status_code == 202
    trade = api.next_trade()
    assert (trade.side, trade.qty) == ("sell", 7.0), "a refused request put a frame on the wire"


def test_healthz_reports_the_publisher(api: Api) -> None:
    assert api.post("/trade/buy").status_code == 202
    health = api.client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["sent"] == 1 and health["dropped"] == 0
    assert health["sidecar_connected"] is True


def test_query_qty_takes_ascii_decimals(api: Api) -> None:
    for raw, qty in [("3", 3.0), ("0.5", 0.5), (".25", 0.25), ("2.", 2.0), ("+4", 4.0)]:
        assert api.post("/trade/buy", params={"qty": raw}).status_code == 202, raw
        assert api.next_trade().qty == qty


#: What a web page in the user's browser can send: each must book nothing.
CROSS_SITE: list[tuple[dict[str, Any], int, str]] = [
    # A JSON body without the JSON content type: a cross-site form can send text/plain.
    ({"content": b'{"qty": 3}', "headers": {"content-type": "text/plain"}}, 415, "content-type"),
    (
        {"content": b'{"qty": 3}', "headers": {"content-type": "text/plain; x=application/json"}},
        415,
        "content-type",
    ),
    # A form post with the quantity in the query and an (empty) form body.
    (
        {"params": {"qty": "3"}, "headers": {"content-type": "application/x-www-form-urlencoded"}},
        415,
        "content-type",
    ),
    # The classic CSRF: a form on another site, posted with the user's browser.
    (
        {
            "params": {"qty": "3"},
            "headers": {"origin": "http://evil.example", "content-type": "text/plain"},
        },
        403,
        "evil.example",
    ),
    ({"json": {"qty": 3}, "headers": {"origin": "http://evil.example"}}, 403, "evil.example"),
    ({"params": {"qty": "3"}, "headers": {"origin": "null"}}, 403, "cross-site"),
    # Another local port is the same site but not the same origin (another local app).
    ({"params": {"qty": "3"}, "headers": {"origin": "http://127.0.0.1:8501"}}, 403, "cross-site"),
    ({"params": {"qty": "3"}, "headers": {"sec-fetch-site": "cross-site"}}, 403, "cross-site"),
    ({"params": {"qty": "3"}, "headers": {"sec-fetch-site": "same-site"}}, 403, "cross-site"),
    # DNS rebinding: evil.example resolving to 127.0.0.1 still says Host: evil.example.
    ({"params": {"qty": "3"}, "headers": {"host": "evil.example:8002"}}, 403, "Host"),
    ({"params": {"qty": "3"}, "headers": {"host": "127.0.0.1:9999"}}, 403, "Host"),
]


@pytest.mark.parametrize(("kwargs", "status", "message"), CROSS_SITE)
def test_cross_site_requests_book_nothing(
    api: Api, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = api.post("/trade/buy", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert api.post("/trade/sell", params={"qty": "7"}).status_code == 202
    trade = api.next_trade()
    assert (trade.side, trade.qty) == ("sell", 7.0), "a refused request put a frame on the wire"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts: no browser headers at all
        {"origin": LOCAL},  # a page served by the endpoint's own origin
        {"sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "none"},  # typed by the user
        {"host": "localhost:8002"},
        {"host": "[::1]:8002"},
    ],
)
def test_same_origin_and_non_browser_callers_are_served(api: Api, headers: dict[str, str]) -> None:
    assert api.post("/trade/buy", params={"qty": "1"}, headers=headers).status_code == 202
    assert api.next_trade().qty == 1.0


def test_allowed_hosts_and_origins_are_settings(zmq_sockets: ZmqSockets) -> None:
    pull, address = zmq_sockets.bind(zmq.PULL)
    publisher = Publisher(address, source="unit-test", batch_size=1, context=zmq_sockets.ctx)
    settings = PublisherSettings(
        http_allowed_hosts="trading.internal, 10.0.0.5:8002",
        http_allowed_origins="https://desk.example",
    )
    try:
        app = create_app(settings, publisher)
        with TestClient(app, base_url="http://trading.internal:8080") as client:
            assert client.post("/trade/buy").status_code == 202  # host alone: any port
            ok = client.post("/trade/buy", headers={"origin": "https://desk.example"})
            assert ok.status_code == 202
            evil = client.post("/trade/buy", headers={"origin": "https://evil.example"})
            assert evil.status_code == 403
            for host in ("10.0.0.5:8002", "10.0.0.5:9000", "127.0.0.1:8002"):
                status = client.post("/trade/buy", headers={"host": host}).status_code
                assert status == (202 if host == "10.0.0.5:8002" else 403), host
    finally:
        publisher.close()
        pull.close()
