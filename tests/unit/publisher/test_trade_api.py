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
from trading_publisher.client import Publisher
from trading_publisher.settings import PublisherSettings
from trading_publisher.trade_api import MAX_BODY_BYTES, create_app


class Api:
    def __init__(self, client: TestClient, pull: zmq.Socket[bytes]) -> None:
        self.client = client
        self.pull = pull

    def post(self, path: str, **kwargs: Any) -> Any:
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
        with TestClient(create_app(PublisherSettings(), publisher)) as client:
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
    ("/trade/buy", {"params": {"qty": "abc"}}, 422, "qty must be a number"),
    ("/trade/buy", {"params": {"qty": ""}}, 422, "qty must be a number"),
    ("/trade/buy", {"params": {"qty": "-1"}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": {"qty": "nan"}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": {"qty": "inf"}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": {"qty": "1e999"}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": [("qty", "1"), ("qty", "2")]}, 422, "give qty once"),
    ("/trade/buy", {"json": {"qty": "3"}}, 422, "qty must be a number"),
    ("/trade/buy", {"json": {"qty": True}}, 422, "qty must be a number"),
    ("/trade/buy", {"json": {"qty": -0.5}}, 422, "finite number >= 0"),
    ("/trade/buy", {"json": {"qty": 10**400}}, 422, "finite number >= 0"),
    ("/trade/buy", {"json": {"qty": 1e15 + 2}}, 422, "finite number >= 0"),
    ("/trade/buy", {"params": {"qty": "2e15"}}, 422, "finite number >= 0"),
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
