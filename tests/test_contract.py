"""The wire contract: round trips, and every reject reason from a table of bad frames."""

from __future__ import annotations

import json
import math

import pytest
from telemetry_contract import (
    BenchmarkResult,
    InvalidMessage,
    Reason,
    TradeEvent,
    decode,
    encode,
    encode_trade,
)
from telemetry_contract.codec import MAX_FRAME_BYTES, TradeEncoder


@pytest.mark.parametrize(
    "event",
    [
        TradeEvent("buy", 1.0, 1_700_000_000.0),
        TradeEvent("sell", 0.0, 0.0),
        TradeEvent("buy", 0.1 + 0.2, 1_700_000_000.123456),
        TradeEvent("sell", 1e300, 1.5, src="desk-1", seq=0),
        TradeEvent("buy", 3.0, 2.0, src='quo"te\\ü', seq=2**40),
    ],
)
def test_trade_round_trip_is_exact(event: TradeEvent) -> None:
    frame = encode(event)
    assert decode(frame) == event
    assert json.loads(frame)["type"] == "trade"  # plain JSON any consumer can read


def test_encoded_frame_is_the_documented_shape() -> None:
    assert json.loads(encode_trade("buy", 3, 1700000000.5)) == {
        "type": "trade", "side": "buy", "qty": 3.0, "ts": 1700000000.5,
    }  # fmt: skip
    frame = TradeEncoder("p1")("sell", 2.0, 5.0, 7)
    assert json.loads(frame) == {
        "type": "trade", "side": "sell", "qty": 2.0, "ts": 5.0, "src": "p1", "seq": 7,
    }  # fmt: skip


def test_integer_qty_and_ts_decode_as_floats() -> None:
    event = decode(b'{"type":"trade","side":"buy","qty":3,"ts":1700000000}')
    assert event == TradeEvent("buy", 3.0, 1_700_000_000.0)
    assert isinstance(event, TradeEvent) and type(event.qty) is float


def test_extra_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    frame = b'{"type":"trade","side":"sell","qty":1,"ts":2,"venue":"X","src":"a","seq":1}'
    assert decode(frame) == TradeEvent("sell", 1.0, 2.0, "a", 1)


T = '{"type":"trade","side":"buy","qty":1,"ts":1%s}'
BAD: list[tuple[bytes, Reason]] = [
    (b" " * (MAX_FRAME_BYTES + 1), Reason.OVERSIZE),
    (b"\xff\xfe", Reason.NOT_UTF8),
    ('{"type":"trade"}'.encode("utf-16"), Reason.NOT_UTF8),
    (b"", Reason.MALFORMED_JSON),
    (b"{", Reason.MALFORMED_JSON),
    (b'{"type":"trade",}', Reason.MALFORMED_JSON),
    (b"[" * 100_000 + b"]" * 100_000, Reason.OVERSIZE),
    (b"[" * 30_000 + b"]" * 30_000, Reason.MALFORMED_JSON),  # too deep to parse safely
    (b"[]", Reason.NOT_OBJECT),
    (b'"trade"', Reason.NOT_OBJECT),
    (b"42", Reason.NOT_OBJECT),
    (b"null", Reason.NOT_OBJECT),
    (b"{}", Reason.MISSING_FIELD),
    (b'{"side":"buy","qty":1,"ts":1}', Reason.MISSING_FIELD),
    (b'{"type":"trade","qty":1,"ts":1}', Reason.MISSING_FIELD),
    (b'{"type":"trade","side":"buy","ts":1}', Reason.MISSING_FIELD),
    (b'{"type":"trade","side":"buy","qty":1}', Reason.MISSING_FIELD),
    (b'{"type":7,"side":"buy","qty":1,"ts":1}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":1,"qty":1,"ts":1}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":"1","ts":1}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":true,"ts":1}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":null,"ts":1}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":1,"ts":"now"}', Reason.WRONG_TYPE),
    (b'{"type":"order","side":"buy","qty":1,"ts":1}', Reason.UNKNOWN_TYPE),
    (b'{"type":"TRADE","side":"buy","qty":1,"ts":1}', Reason.UNKNOWN_TYPE),
    (b'{"type":"trade","side":"BUY","qty":1,"ts":1}', Reason.INVALID_SIDE),
    (b'{"type":"trade","side":"","qty":1,"ts":1}', Reason.INVALID_SIDE),
    (b'{"type":"trade","side":"buy","qty":-0.5,"ts":1}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":NaN,"ts":1}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":Infinity,"ts":1}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":-Infinity,"ts":1}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1e999,"ts":1}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1' + b"0" * 400 + b',"ts":1}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1,"ts":-1}', Reason.INVALID_TS),
    (b'{"type":"trade","side":"buy","qty":1,"ts":NaN}', Reason.INVALID_TS),
    (T.encode() % b',"src":5', Reason.INVALID_SRC),
    (T.encode() % b',"src":""', Reason.INVALID_SRC),
    (T.encode() % (b',"src":"' + b"x" * 65 + b'"'), Reason.INVALID_SRC),
    (T.encode() % b',"src":"a","seq":-1', Reason.INVALID_SEQ),
    (T.encode() % b',"src":"a","seq":1.5', Reason.INVALID_SEQ),
    (T.encode() % b',"src":"a","seq":"1"', Reason.INVALID_SEQ),
    (b'{"type":"benchmark","run_id":"r"}', Reason.MISSING_FIELD),
    (
        b'{"type":"benchmark","run_id":"bad id!","variant":"v","mode":"burst"}',
        Reason.INVALID_BENCHMARK,
    ),
]


@pytest.mark.parametrize(
    ("frame", "reason"), BAD, ids=[f"{r.value}-{i}" for i, (_, r) in enumerate(BAD)]
)
def test_every_invalid_frame_names_its_reason(frame: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(frame)
    assert caught.value.reason is reason
    assert str(caught.value).startswith(reason.value)


def test_every_reason_is_reachable_from_the_table_or_the_transport() -> None:
    covered = {reason for _, reason in BAD} | {Reason.MULTIPART}  # multipart: receiver test
    assert covered == set(Reason)


@pytest.mark.parametrize(
    ("side", "qty", "ts"),
    [("hold", 1, 1), ("buy", -1, 1), ("buy", math.nan, 1), ("buy", math.inf, 1), ("buy", 1, -1)],
)
def test_encoder_refuses_what_the_decoder_would_reject(side: str, qty: float, ts: float) -> None:
    with pytest.raises(ValueError):
        encode_trade(side, qty, ts)


def test_encoder_refuses_bad_source_and_orphan_seq() -> None:
    with pytest.raises(ValueError):
        TradeEncoder("x" * 65)
    with pytest.raises(ValueError):
        encode_trade("buy", 1, 1, seq=3)


def _bench(**changes: object) -> BenchmarkResult:
    fields: dict[str, object] = dict(
        run_id="run-1", mode="burst", variant="client", events=100, sent=99, dropped=1,
        received=99, lost=0, elapsed_s=0.5, rate=198.0, target_rate=0.0, p50_us=1.0,
        p90_us=2.0, p99_us=3.0, p999_us=4.0, max_us=9.5, started_at=1.0, finished_at=1.5,
    )  # fmt: skip
    fields.update(changes)
    return BenchmarkResult(**fields)  # type: ignore[arg-type]


def test_benchmark_result_round_trip() -> None:
    row = _bench()
    assert decode(encode(row)) == row
    assert decode(encode(_bench(received=-1, lost=-1))) == _bench(received=-1, lost=-1)


@pytest.mark.parametrize(
    "bad",
    [_bench(run_id="has space"), _bench(mode="fastest"), _bench(p99_us=math.nan), _bench(sent=-2)],
)
def test_benchmark_encoder_refuses_rows_the_sidecar_would_reject(bad: BenchmarkResult) -> None:
    with pytest.raises(InvalidMessage):
        encode(bad)
