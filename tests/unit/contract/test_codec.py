"""The wire contract: round trips, batch frames, and every reject reason from a table."""

from __future__ import annotations

import json
import math
import re
import time

import pytest
from telemetry_contract import (
    BenchmarkResult,
    InvalidMessage,
    Reason,
    Trade,
    decode,
    encode,
    encode_batch,
    encode_trade,
)
from telemetry_contract.codec import TradeEncoder, join_batch
from telemetry_contract.events import BENCH_VARIANTS, SUSTAINED_RATES, sustained_variant
from telemetry_contract.schema import wire_schema
from telemetry_contract.transport import MAX_BATCH_ITEMS, MAX_FRAME_BYTES

NOW = 1_700_000_000.0


def one(frame: bytes, now: float = NOW) -> object:
    """The single event of a single-object frame."""
    decoded = decode(frame, now)
    assert not decoded.rejects
    [event] = decoded.events
    return event


@pytest.mark.parametrize(
    "event",
    [
        Trade("buy", 1.0, 1_700_000_000.0),
        Trade("sell", 0.0, 946_684_800.0),
        Trade("buy", 0.1 + 0.2, 1_700_000_000.123456),
        Trade("sell", 1e15, 1_700_000_000.5, src="desk-1", seq=0),
        Trade("buy", 3.0, 1_700_000_002.0, src='quo"te\\~', seq=2**53 - 1),
        Trade("buy", 3.0, 1_700_000_002.0, src="s", seq=7, stream=2**53 - 1, epoch=3),
    ],
)
def test_trade_round_trip_is_exact(event: Trade) -> None:
    frame = encode(event)
    assert one(frame) == event
    assert json.loads(frame)["type"] == "trade"  # plain JSON any consumer can read


def test_encoded_frame_is_the_documented_shape() -> None:
    assert json.loads(encode_trade("buy", 3, 1700000000.5)) == {
        "type": "trade", "side": "buy", "qty": 3.0, "ts": 1700000000.5,
    }  # fmt: skip
    frame = TradeEncoder("p1")("sell", 2.0, NOW, 7)
    assert json.loads(frame) == {
        "type": "trade", "side": "sell", "qty": 2.0, "ts": NOW, "src": "p1", "seq": 7,
    }  # fmt: skip
    frame = TradeEncoder("p1", stream=9, epoch=2)("sell", 2.0, NOW, 7)
    assert one(frame) == Trade("sell", 2.0, NOW, "p1", 7, stream=9, epoch=2)
    event = one(TradeEncoder("p1", stream=9).with_epoch(3).now("buy", 1.5, 8), time.time())
    assert isinstance(event, Trade)
    assert (event.src, event.stream, event.epoch, event.seq) == ("p1", 9, 3, 8)
    assert abs(event.ts - time.time()) < 60


def test_integer_qty_and_ts_decode_as_floats() -> None:
    event = one(b'{"type":"trade","side":"buy","qty":3,"ts":1700000000}')
    assert event == Trade("buy", 3.0, 1_700_000_000.0)
    assert isinstance(event, Trade) and type(event.qty) is float


def test_extra_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    frame = b'{"type":"trade","side":"sell","qty":1,"ts":1e9,"venue":"X","src":"a","seq":1}'
    assert one(frame) == Trade("sell", 1.0, 1e9, "a", 1)


def test_the_seed_message_stays_valid() -> None:
    assert one(b'{"type": "trade", "side": "buy", "qty": 2, "ts": 1700000000.25}') == Trade(
        "buy", 2.0, 1_700_000_000.25
    )


def test_batch_frame_counts_every_item_in_order() -> None:
    enc = TradeEncoder("p", stream=1)
    items = [enc("buy" if i % 2 else "sell", float(i), NOW, i) for i in range(64)]
    decoded = decode(join_batch(items), NOW)
    assert decoded.rejects == []
    assert [e.seq for e in decoded.events] == list(range(64))  # type: ignore[union-attr]
    assert decode(encode_batch(decoded.events), NOW).events == decoded.events  # type: ignore[arg-type]


def test_batch_frame_with_bad_items_keeps_the_good_ones() -> None:
    good = encode_trade("buy", 1, NOW, "p", 0)
    frame = b"[%s,%s,5,%s,%s,%s]" % (
        good,
        b'{"type":"trade","side":"hold","qty":1,"ts":1700000000}',
        b'{"side":"sell","qty":2,"ts":1700000000}',  # "type" may be left out in a batch
        b'{"type":"trade","side":"buy","qty":1,"ts":1.7e12}',
        b'{"type":"benchmark","run_id":"r"}',
    )
    decoded = decode(frame, NOW)
    assert decoded.events == [Trade("buy", 1.0, NOW, "p", 0), Trade("sell", 2.0, NOW)]
    assert [r.reason for r in decoded.rejects] == [
        Reason.INVALID_SIDE, Reason.NOT_OBJECT, Reason.TS_MILLISECONDS,
        Reason.BATCH_ITEM_NOT_TRADE,
    ]  # fmt: skip
    assert decoded.rejects[0].detail.startswith("item 1:")


def test_batch_limits_are_whole_frame_problems() -> None:
    item = encode_trade("buy", 1, NOW)
    with pytest.raises(InvalidMessage) as caught:
        decode(b"[" + b",".join([item] * (MAX_BATCH_ITEMS + 1)) + b"]", NOW)
    assert caught.value.reason is Reason.BATCH_TOO_LARGE
    # A full batch of long items fits in one frame.
    enc = TradeEncoder("x" * 64, stream=2**53 - 1, epoch=2**53 - 1)
    full = join_batch([enc("sell", 123456.789012345, NOW + 0.123456789, 2**53 - 1)] * 1024)
    assert len(full) <= MAX_FRAME_BYTES
    assert len(decode(full, NOW).events) == MAX_BATCH_ITEMS
    with pytest.raises(ValueError):
        join_batch([])


@pytest.mark.parametrize(
    ("ts", "reason", "says"),
    [
        (1.7e12, Reason.TS_MILLISECONDS, "milliseconds"),
        (1.7e15, Reason.TS_MICROSECONDS, "microseconds"),
        (1.7e18, Reason.TS_NANOSECONDS, "nanoseconds"),
        (NOW + 2 * 86_400, Reason.INVALID_TS, "ahead"),
        (1e300, Reason.INVALID_TS, "ahead"),
        (0, Reason.INVALID_TS, ">="),
        (946_684_799.0, Reason.INVALID_TS, ">="),
    ],
)
def test_ts_window_against_the_receivers_clock(ts: float, reason: Reason, says: str) -> None:
    frame = b'{"type":"trade","side":"buy","qty":1,"ts":%r}' % ts
    with pytest.raises(InvalidMessage) as caught:
        decode(frame, NOW)
    assert caught.value.reason is reason
    assert says in caught.value.detail
    assert one(b'{"type":"trade","side":"buy","qty":1,"ts":%r}' % (NOW + 86_000)) is not None


T = '{"type":"trade","side":"buy","qty":1,"ts":1700000000%s}'
_BENCH_FIELDS: dict[str, object] = dict(
    run_id="run-1", mode="burst", variant="client", events=100, sent=99, dropped=1,
    received=99, lost=0, elapsed_s=0.5, rate=198.0, target_rate=0.0, p50_us=1.0,
    p90_us=2.0, p99_us=3.0, p999_us=4.0, max_us=9.5, started_at=1.0, finished_at=1.5,
)  # fmt: skip
BAD: list[tuple[bytes, Reason]] = [
    (b" " * (MAX_FRAME_BYTES + 1), Reason.OVERSIZE),
    (b"\xff\xfe", Reason.NOT_UTF8),
    ('{"type":"trade"}'.encode("utf-16"), Reason.NOT_UTF8),
    (b"", Reason.MALFORMED_JSON),
    (b"{", Reason.MALFORMED_JSON),
    (b'{"type":"trade",}', Reason.MALFORMED_JSON),
    (b"[" * 300_000 + b"]" * 300_000, Reason.OVERSIZE),
    (b'{"a":' * 60_000 + b"1" + b"}" * 60_000, Reason.MALFORMED_JSON),  # too deep to parse
    (b'{"type":"trade","side":"buy","qty":NaN,"ts":1700000000}', Reason.MALFORMED_JSON),
    (T.encode() % b',"x":"\xff"', Reason.NOT_UTF8),  # even in a string nobody reads
    (T.encode() % b',"\xc3":1', Reason.NOT_UTF8),  # or in an unknown key
    (T.encode() % (b',"x":' + b"[" * 33 + b"]" * 33), Reason.MALFORMED_JSON),  # 34 deep
    (b'{"type":"trade","side":"buy","qty":-1,"ts":1700000000,"qty":2}', Reason.DUPLICATE_KEY),
    (b'{"type":"trade","side":"buy","qty":2,"ts":1700000000,"qty":-1}', Reason.DUPLICATE_KEY),
    (b'{"type":"trade","side":"buy","qty":2,"ts":1700000000,"s\\u0069de":"buy"}',
     Reason.DUPLICATE_KEY),
    (T.encode() % b',"x":{"a":1,"a":1}', Reason.DUPLICATE_KEY),  # at any depth
    (b'{"type":"trade","side":1e309,"qty":1,"ts":1700000000}', Reason.WRONG_TYPE),
    (T.encode() % b',"src":1e309', Reason.WRONG_TYPE),
    (T.encode() % b',"src":-1e309', Reason.WRONG_TYPE),
    (T.encode() % b',"src":"a","seq":1e309', Reason.WRONG_TYPE),
    (b'{"type":1e309,"side":"buy","qty":1,"ts":1700000000}', Reason.WRONG_TYPE),
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "run_id": 0}}).encode().replace(
        b'"run_id": 0', b'"run_id": 1e309'), Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":Infinity,"ts":1700000000}', Reason.MALFORMED_JSON),
    (b'{"type":"trade","side":"buy","qty":-Infinity,"ts":1700000000}', Reason.MALFORMED_JSON),
    (b'"trade"', Reason.NOT_OBJECT),
    (b"42", Reason.NOT_OBJECT),
    (b"null", Reason.NOT_OBJECT),
    (b"{}", Reason.MISSING_FIELD),
    (b'{"side":"buy","qty":1,"ts":1700000000}', Reason.MISSING_FIELD),
    (b'{"type":"trade","qty":1,"ts":1700000000}', Reason.MISSING_FIELD),
    (b'{"type":"trade","side":"buy","ts":1700000000}', Reason.MISSING_FIELD),
    (b'{"type":"trade","side":"buy","qty":1}', Reason.MISSING_FIELD),
    (b'{"type":7,"side":"buy","qty":1,"ts":1700000000}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":1,"qty":1,"ts":1700000000}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":[],"qty":1,"ts":1700000000}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":{},"qty":1,"ts":1700000000}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":"1","ts":1700000000}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":true,"ts":1700000000}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":null,"ts":1700000000}', Reason.WRONG_TYPE),
    (b'{"type":"trade","side":"buy","qty":1,"ts":"now"}', Reason.WRONG_TYPE),
    (T.encode() % b',"src":5', Reason.WRONG_TYPE),
    (T.encode() % b',"src":"a","seq":1.5', Reason.WRONG_TYPE),
    (T.encode() % b',"src":"a","seq":"1"', Reason.WRONG_TYPE),
    (b'{"type":"order","side":"buy","qty":1,"ts":1700000000}', Reason.UNKNOWN_TYPE),
    (b'{"type":"TRADE","side":"buy","qty":1,"ts":1700000000}', Reason.UNKNOWN_TYPE),
    (b'{"type":"trade","side":"BUY","qty":1,"ts":1700000000}', Reason.INVALID_SIDE),
    (b'{"type":"trade","side":"","qty":1,"ts":1700000000}', Reason.INVALID_SIDE),
    (b'{"type":"trade","side":"buy","qty":-0.5,"ts":1700000000}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1e999,"ts":1700000000}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1e309,"ts":1700000000}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1.7e308,"ts":1700000000}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1000000000000001,"ts":1700000000}', Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1' + b"0" * 400 + b',"ts":1700000000}',
     Reason.INVALID_QTY),
    (b'{"type":"trade","side":"buy","qty":1,"ts":-1}', Reason.INVALID_TS),
    (b'{"type":"trade","side":"buy","qty":1,"ts":0}', Reason.INVALID_TS),
    (b'{"type":"trade","side":"buy","qty":1,"ts":1e999}', Reason.INVALID_TS),
    (b'{"type":"trade","side":"buy","qty":1,"ts":1.7e12}', Reason.TS_MILLISECONDS),
    (b'{"type":"trade","side":"buy","qty":1,"ts":1.7e15}', Reason.TS_MICROSECONDS),
    (b'{"type":"trade","side":"buy","qty":1,"ts":1700000000000000000}', Reason.TS_NANOSECONDS),
    (T.encode() % b',"src":""', Reason.INVALID_SRC),
    (T.encode() % (b',"src":"' + b"x" * 65 + b'"'), Reason.INVALID_SRC),
    (T.encode() % b',"src":"caf\\u00e9"', Reason.INVALID_SRC),
    (T.encode() % b',"src":"tab\\there"', Reason.INVALID_SRC),
    (T.encode() % b',"src":"a","seq":-1', Reason.INVALID_SEQ),
    (T.encode() % b',"src":"a","seq":9007199254740992', Reason.INVALID_SEQ),
    (T.encode() % (b',"src":"a","seq":1' + b"0" * 100), Reason.INVALID_SEQ),
    (T.encode() % b',"src":"a","seq":1,"stream":-1', Reason.INVALID_STREAM),
    (T.encode() % b',"src":"a","seq":1,"epoch":9007199254740992', Reason.INVALID_EPOCH),
    (b"[" + b",".join([T.encode() % b""] * (MAX_BATCH_ITEMS + 1)) + b"]", Reason.BATCH_TOO_LARGE),
    (b'{"type":"benchmark","run_id":"r"}', Reason.MISSING_FIELD),
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "run_id": "bad id!"}}).encode(),
     Reason.INVALID_BENCHMARK),
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "variant": "run-12345"}}).encode(),
     Reason.INVALID_BENCHMARK),
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "sent": -2}}).encode(),
     Reason.INVALID_BENCHMARK),
    # Python's `$` matches before a final newline: each of these was a new label value.
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "variant": "client\n"}}).encode(),
     Reason.INVALID_BENCHMARK),
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "run_id": "abc\n"}}).encode(),
     Reason.INVALID_BENCHMARK),
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "mode": "burst\n"}}).encode(),
     Reason.INVALID_BENCHMARK),
    (json.dumps({"type": "benchmark", **{**_BENCH_FIELDS, "variant": "\nclient"}}).encode(),
     Reason.INVALID_BENCHMARK),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frame", "reason"), BAD, ids=[f"{r.value}-{i}" for i, (_, r) in enumerate(BAD)]
)
def test_every_invalid_frame_names_its_reason(frame: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(frame, NOW)
    assert caught.value.reason is reason
    assert str(caught.value).startswith(reason.value)


def test_every_reason_is_reachable_from_the_table_or_the_transport() -> None:
    # multipart and internal_error: the receiver's tests; a benchmark in a batch: above;
    # invalid_columns: tests/unit/contract/test_frames.py (the columnar frame).
    covered = {reason for _, reason in BAD} | {
        Reason.MULTIPART, Reason.INTERNAL_ERROR, Reason.BATCH_ITEM_NOT_TRADE,
        Reason.INVALID_COLUMNS,
    }  # fmt: skip
    assert covered == set(Reason)


@pytest.mark.parametrize(
    ("side", "qty", "ts"),
    [
        ("hold", 1, NOW),
        ("buy", -1, NOW),
        ("buy", math.nan, NOW),
        ("buy", math.inf, NOW),
        ("buy", 2e15, NOW),
        ("buy", 1, -1),
        ("buy", 1, 0),
        ("buy", 1, math.inf),
    ],  # fmt: skip
)
def test_encoder_refuses_what_the_decoder_would_reject(side: str, qty: float, ts: float) -> None:
    with pytest.raises(ValueError):
        encode_trade(side, qty, ts)


def test_encoder_refuses_bad_source_and_orphan_seq() -> None:
    for bad in ("x" * 65, "", "caf\u00e9", "tab\there"):
        with pytest.raises(ValueError):
            TradeEncoder(bad)
    with pytest.raises(ValueError):
        encode_trade("buy", 1, NOW, seq=3)
    with pytest.raises(ValueError):
        TradeEncoder("p", stream=-1)
    with pytest.raises(ValueError):
        TradeEncoder("p")("buy", 1, NOW, 2**53)


def _bench(**changes: object) -> BenchmarkResult:
    fields = {**_BENCH_FIELDS, **changes}
    return BenchmarkResult(**fields)  # type: ignore[arg-type]


def test_benchmark_result_round_trip() -> None:
    row = _bench()
    assert one(encode(row)) == row
    assert one(encode(_bench(received=-1, lost=-1))) == _bench(received=-1, lost=-1)


@pytest.mark.parametrize(
    "bad",
    [
        _bench(run_id="has space"),
        _bench(mode="fastest"),
        _bench(p99_us=math.nan),
        _bench(sent=-2),
        _bench(variant="client-12345"),
        _bench(variant="made-up"),
        _bench(variant="client\n"),
        _bench(run_id="abc\n"),
    ],  # fmt: skip
)
def test_benchmark_encoder_refuses_rows_the_sidecar_would_reject(bad: BenchmarkResult) -> None:
    with pytest.raises(InvalidMessage):
        encode(bad)


def test_the_schema_lists_the_closed_variant_set_and_anchors_run_id_at_the_very_end() -> None:
    """A JSON Schema validator (ECMA regex) refuses what the decoder refuses."""
    row = wire_schema()["$defs"]["BenchmarkResult"]["properties"]
    assert sorted(row["variant"]["enum"]) == sorted(BENCH_VARIANTS)
    pattern = row["run_id"]["pattern"]
    assert re.search(pattern, "abc") and not re.search(pattern, "abc\n")


def test_every_variant_the_bench_names_is_in_the_closed_set() -> None:
    for rate in SUSTAINED_RATES:
        assert sustained_variant("client", rate) == f"client-{rate}" in BENCH_VARIANTS
        assert sustained_variant("e2e", float(rate)) == f"e2e-{rate}" in BENCH_VARIANTS
        # A rate that only rounds to a listed one is not that variant.
        assert sustained_variant("e2e", rate + 0.5) == "e2e-other"
    assert sustained_variant("client", 1234.5) == "client-other"
    assert sustained_variant("client", 7) == "client-other"  # whole, but not listed
    assert "client-other" in BENCH_VARIANTS
    for variant in BENCH_VARIANTS:
        assert one(encode(_bench(variant=variant))) == _bench(variant=variant)


@pytest.mark.parametrize("src", [None, "bench-1"])
def test_now_encoder_writes_what_the_decoder_reads(src: str | None) -> None:
    import time

    encoder = TradeEncoder(src)
    before = time.time()
    frame = encoder.now("sell", 12.5, 7)
    after = time.time()
    [event] = decode(frame).events
    assert isinstance(event, Trade)
    assert (event.side, event.qty) == ("sell", 12.5)
    assert before - 1e-6 <= event.ts <= after + 1e-6
    assert (event.src, event.seq) == ((src, 7) if src else (None, None))
    # Off the quick route: converted or refused exactly as __call__ does.
    assert isinstance(decode(encoder.now("buy", 3, 8)).events[0], Trade)
    for side, qty in (("hold", 1.0), ("buy", math.nan), ("buy", -1.0), ("buy", math.inf)):
        with pytest.raises(ValueError):
            encoder.now(side, qty, 9)
