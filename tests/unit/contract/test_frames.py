"""Every frame format the contract spells: decode(encode(x)) == x, and the columnar
frame's rules, each bad case with its reason."""

from __future__ import annotations

import time

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telemetry_contract import InvalidMessage, Reason, Trade, decode, encode, encode_batch
from telemetry_contract.events import (
    COLUMNS_VERSION,
    MAX_QTY,
    MAX_SAFE_INT,
    MIN_TS,
    MIN_TS_NS,
    SIDE_CODES,
    SIDES,
    Event,
    Side,
    TradeColumns,
)
from telemetry_contract.frames import (
    COLUMNS_KEYS,
    TradeEncoder,
    columns_frame,
    decode_columns,
    encode_columns,
    encode_trade,
    is_columns,
    join_batch,
    trade_frame,
)
from telemetry_contract.transport import MAX_BATCH_ITEMS

NOW = 1_700_000_000.0
NOW_NS = 1_700_000_000 * 10**9

sides: st.SearchStrategy[Side] = st.sampled_from(SIDES)
qtys = st.floats(min_value=0.0, max_value=MAX_QTY, allow_nan=False)
timestamps = st.floats(min_value=MIN_TS, max_value=NOW, allow_nan=False)
sources = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=64
)
safe_ints = st.integers(min_value=0, max_value=MAX_SAFE_INT)
trades = st.builds(
    Trade,
    sides,
    qtys,
    timestamps,
    st.none() | sources,
    st.none() | safe_ints,
    st.none() | safe_ints,
    st.none() | safe_ints,
)


@st.composite
def columns(draw: st.DrawFn) -> TradeColumns:
    count = draw(st.integers(min_value=1, max_value=40))
    seq = draw(st.integers(min_value=0, max_value=MAX_SAFE_INT - count + 1))
    return TradeColumns(
        COLUMNS_VERSION,
        draw(sources),
        draw(safe_ints),
        draw(safe_ints),
        seq,
        "".join(draw(st.lists(st.sampled_from("bs"), min_size=count, max_size=count))),
        draw(st.lists(qtys, min_size=count, max_size=count)),
        draw(
            st.lists(
                st.integers(min_value=MIN_TS_NS, max_value=NOW_NS),
                min_size=count,
                max_size=count,
            )
        ),
    )


def expanded(c: TradeColumns) -> list[Trade]:
    """What a columnar frame means, written the slow, obvious way."""
    side_of = {code: side for side, code in SIDE_CODES.items()}
    return [
        Trade(side_of[c.side[i]], c.qty[i], c.ts_ns[i] / 10**9, c.src, c.seq + i, c.stream, c.epoch)
        for i in range(len(c.qty))
    ]


@settings(max_examples=100, deadline=None)
@given(trades)
def test_single_object_round_trips(trade: Trade) -> None:
    assert decode(encode(trade), NOW).events == [trade]


@settings(max_examples=100, deadline=None)
@given(st.lists(trades, min_size=1, max_size=20))
def test_json_batch_round_trips(batch: list[Trade]) -> None:
    assert decode(encode_batch(batch), NOW).events == batch


@settings(max_examples=100, deadline=None)
@given(sides, qtys, timestamps, sources, safe_ints, safe_ints, safe_ints)
def test_trade_encoder_round_trips(
    side: Side, qty: float, ts: float, src: str, seq: int, stream: int, epoch: int
) -> None:
    frame = TradeEncoder(src, stream=stream, epoch=epoch)(side, qty, ts, seq)
    assert decode(frame, NOW).events == [Trade(side, qty, ts, src, seq, stream, epoch)]
    assert (
        decode(join_batch([frame, frame]), NOW).events
        == [Trade(side, qty, ts, src, seq, stream, epoch)] * 2
    )


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from("bs"),
    qtys,
    st.integers(min_value=MIN_TS_NS, max_value=NOW_NS),
    sources,
    safe_ints,
    safe_ints,
    safe_ints,
)
def test_publisher_single_frame_round_trips(
    code: str, qty: float, ts_ns: int, src: str, seq: int, stream: int, epoch: int
) -> None:
    frame = trade_frame(code, qty, ts_ns, src, seq, stream, epoch)
    side: Side = "buy" if code == "b" else "sell"
    assert decode(frame, NOW).events == [Trade(side, qty, ts_ns / 1e9, src, seq, stream, epoch)]


@settings(max_examples=100, deadline=None)
@given(columns())
def test_columnar_round_trips(c: TradeColumns) -> None:
    frame = encode_columns(c.src, c.stream, c.epoch, c.seq, c.side, c.qty, c.ts_ns)
    assert is_columns(frame)
    assert frame == columns_frame(c)
    assert msgspec.msgpack.decode(frame, type=TradeColumns) == c
    assert decode(frame, NOW).events == expanded(c)


def test_a_ns_timestamp_reads_back_as_the_float_a_json_reader_gets() -> None:
    # ns / 1e9 in integers is correctly rounded: the same float as parsing "<ns>e-9".
    ns = time.time_ns()
    frame = encode_columns("a", 0, 0, 0, "b", [1.0], [ns])
    [event] = decode(frame).events
    assert isinstance(event, Trade)
    assert event.ts == float(f"{ns}e-9")


def test_json_frames_are_never_taken_for_columnar_ones() -> None:
    assert not is_columns(b'{"type":"trade"}')
    assert not is_columns(b"[]")
    assert not is_columns(b" {")
    assert not is_columns(b"")


def _frame(**change: object) -> bytes:
    fields: dict[str, object] = {
        "type": "columns",
        "v": COLUMNS_VERSION,
        "src": "desk",
        "stream": 1,
        "epoch": 0,
        "seq": 5,
        "side": "bs",
        "qty": [1.0, 2.0],
        "ts_ns": [NOW_NS, NOW_NS],
    }
    fields.update(change)
    return msgspec.msgpack.encode({k: v for k, v in fields.items() if v is not None})


BAD = [
    (_frame(v=2), Reason.INVALID_COLUMNS),
    (_frame(side="b"), Reason.INVALID_COLUMNS),
    (_frame(ts_ns=[NOW_NS]), Reason.INVALID_COLUMNS),
    (b"\x89\xc1", Reason.INVALID_COLUMNS),
    (b"\x81\x01\x02", Reason.INVALID_COLUMNS),
    (_frame(type="nope"), Reason.INVALID_COLUMNS),
    (_frame(side="bx"), Reason.INVALID_SIDE),
    (_frame(side=""), Reason.INVALID_SIDE),
    (_frame(qty=[1.0, -1.0]), Reason.INVALID_QTY),
    (_frame(qty=[1.0, 2e15]), Reason.INVALID_QTY),
    (_frame(qty=[1.0, "2"]), Reason.WRONG_TYPE),
    (_frame(ts_ns=[NOW_NS, 5]), Reason.INVALID_TS),
    (_frame(ts_ns=[NOW_NS, NOW_NS + 2 * 86_400 * 10**9]), Reason.INVALID_TS),
    (_frame(src=""), Reason.INVALID_SRC),
    (_frame(src="a\x7f"), Reason.INVALID_SRC),
    (_frame(seq=MAX_SAFE_INT), Reason.INVALID_SEQ),
    (_frame(seq=-1), Reason.INVALID_SEQ),
    (_frame(stream=2**53), Reason.INVALID_STREAM),
    (_frame(epoch=-1), Reason.INVALID_EPOCH),
    (_frame(seq=None), Reason.MISSING_FIELD),
    (_frame(side="b" * (MAX_BATCH_ITEMS + 1)), Reason.INVALID_SIDE),
]


@pytest.mark.parametrize(("frame", "reason"), BAD)
def test_a_bad_columnar_frame_is_refused_whole_with_its_reason(
    frame: bytes, reason: Reason
) -> None:
    out: list[object] = []
    with pytest.raises(InvalidMessage) as caught:
        decode_columns(frame, out, NOW + 86_400)  # type: ignore[arg-type]
    assert caught.value.reason is reason, caught.value
    assert out == []  # all or nothing
    with pytest.raises(InvalidMessage):
        decode(frame, NOW)


def test_columns_frame_refuses_what_the_decoder_would() -> None:
    with pytest.raises(InvalidMessage):
        columns_frame(TradeColumns(COLUMNS_VERSION, "a", 0, 0, 0, "bb", [1.0], [NOW_NS]))


# --- hostile columnar frames: the same promises as JSON frames (docs/contract.md) --------


def _columns_body() -> bytes:
    """A valid columnar frame without its map header byte (0x89: nine entries)."""
    frame = encode_columns("desk", 0, 0, 5, "bs", [1.0, 2.0], [NOW_NS, NOW_NS])
    assert frame[0] == 0x89
    return frame[1:]


def _refusal(frame: bytes) -> str:
    with pytest.raises(InvalidMessage) as caught:
        decode_columns(frame, [], NOW + 60)
    return caught.value.reason.value


def test_invalid_utf8_in_a_columnar_string_is_not_utf8() -> None:
    frame = b"\x89" + _columns_body().replace(b"desk", b"d\xffsk")
    assert _refusal(frame) == Reason.NOT_UTF8.value
    with pytest.raises(InvalidMessage):
        decode(frame, NOW + 60)


@pytest.mark.parametrize("value", [7, -1, "x"])
def test_a_repeated_key_is_never_counted_whichever_copy_is_good(value: object) -> None:
    """Ten entries (seq twice): refused before any value is read, as invalid_columns."""
    extra = msgspec.msgpack.encode("seq") + msgspec.msgpack.encode(value)
    assert _refusal(b"\x8a" + _columns_body() + extra) == Reason.INVALID_COLUMNS.value


def _pairs() -> dict[str, bytes]:
    """A valid columnar frame's entries, each key with its value, encoded."""
    frame = encode_columns("desk", 0, 0, 5, "bs", [1.0, 2.0], [NOW_NS, NOW_NS])
    decoded = msgspec.msgpack.decode(frame)
    return {k: msgspec.msgpack.encode(k) + msgspec.msgpack.encode(v) for k, v in decoded.items()}


def _map(pairs: list[bytes]) -> bytes:
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(pairs)


@pytest.mark.parametrize("first", [5, -1, "x", [1.0]])
@pytest.mark.parametrize("dropped", ["type", "v", "side", "ts_ns"])
def test_a_repeated_key_within_nine_entries_is_duplicate_key(first: object, dropped: str) -> None:
    """A repeat that leaves another key missing is duplicate_key, as in JSON frames, not
    the missing_field it causes nor the first copy's own reason (good copy or bad)."""
    pairs = _pairs()
    again = msgspec.msgpack.encode("seq") + msgspec.msgpack.encode(first)
    kept = [p for k, p in pairs.items() if k != dropped]
    assert _refusal(_map([again, *kept])) == Reason.DUPLICATE_KEY.value
    assert _refusal(_map([*kept, again])) == Reason.DUPLICATE_KEY.value
    # Eight entries, a repeat and two keys missing: still the repeat.
    assert _refusal(_map([again, *kept[1:]])) == Reason.DUPLICATE_KEY.value
    # Without the repeat the same gap is what it is.
    assert _refusal(_map(kept)) == Reason.MISSING_FIELD.value


def test_an_unknown_key_is_refused_without_reading_its_value_at_any_stack_depth() -> None:
    deep = msgspec.msgpack.encode("zz") + b"\x91" * 100_000 + b"\xc0"
    ten = b"\x8a" + _columns_body() + deep
    nine = b"\x89" + deep + _columns_body()

    def nested(levels: int, frame: bytes) -> str:
        return nested(levels - 1, frame) if levels else _refusal(frame)

    for frame in (ten, nine):
        reasons = {_refusal(frame), nested(400, frame)}
        assert reasons == {Reason.INVALID_COLUMNS.value}, reasons


# --- the encoders refuse what the decoder would refuse, and say which rule ------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TradeEncoder(None, stream=1), "only meaningful together with src"),
        (lambda: TradeEncoder(None, epoch=1), "only meaningful together with src"),
        (lambda: TradeEncoder("bad\x00src"), "printable ASCII characters, got 'bad\\x00src'"),
        (lambda: TradeEncoder(""), "src must be 1.."),
        (lambda: TradeEncoder("p", stream=-1), "stream must be an integer in [0, 2**53)"),
        (lambda: TradeEncoder("p", epoch=2**53), "epoch must be an integer in [0, 2**53)"),
        (lambda: TradeEncoder("p", stream=True), "stream must be an integer"),
        (lambda: TradeEncoder("p")("hold", 1.0, NOW), "side must be one of ('buy', 'sell')"),
        (lambda: TradeEncoder("p")("buy", True, NOW), "not a bool"),
        (lambda: TradeEncoder("p")("buy", -1.0, NOW), "qty must be a finite number in [0,"),
        (lambda: TradeEncoder("p")("buy", float("nan"), NOW), "qty must be a finite number"),
        (lambda: TradeEncoder("p")("buy", 1.0, 5.0), "ts must be finite epoch seconds >="),
        (lambda: TradeEncoder("p")("buy", 1.0, NOW, -3), "seq must be an integer in [0, 2**53)"),
        (
            lambda: encode_trade("buy", 1.0, NOW, None, 4),
            "seq is only meaningful together with src",
        ),
        (lambda: join_batch([]), f"a batch frame holds 1..{MAX_BATCH_ITEMS} trades, got 0"),
        (lambda: join_batch([b"{}"] * (MAX_BATCH_ITEMS + 1)), "trades, got 1025"),
    ],
)
def test_encoders_refuse_with_the_rule_named(build: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        build()  # type: ignore[operator]
    assert message in str(caught.value), str(caught.value)


def test_an_encoder_writes_its_stream_only_with_a_seq() -> None:
    """src, stream and epoch ride with seq (the loss rule needs all of them): without a
    seq the frame is a bare trade."""
    unstamped = decode(TradeEncoder("p", stream=2, epoch=1)("sell", 2.0, NOW), NOW).events[0]
    assert unstamped == Trade("sell", 2.0, NOW)
    stamped = TradeEncoder("p", stream=2, epoch=1)("sell", 2.0, NOW, 9)
    assert decode(stamped, NOW).events[0] == Trade("sell", 2.0, NOW, "p", 9, 2, 1)
    assert b'"stream":2' in stamped and b'"epoch":1' in stamped and b'"src":"p"' in stamped
    bare = decode(TradeEncoder(None)("buy", 1.0, NOW), NOW).events[0]
    assert bare == Trade("buy", 1.0, NOW)
    assert (
        TradeEncoder("p", stream=2)
        .with_epoch(5)("buy", 1.0, NOW, 1)
        .endswith(b',"src":"p","stream":2,"epoch":5,"seq":1}')
    )
    only_stream = TradeEncoder("p", stream=3)("buy", 1.0, NOW, 0)
    assert b'"epoch"' not in only_stream and b'"stream":3' in only_stream
    only_epoch = TradeEncoder("p", epoch=4)("buy", 1.0, NOW, 0)
    assert b'"stream"' not in only_epoch and b'"epoch":4' in only_epoch
    assert encode_trade("buy", 1.0, NOW, "q", 3, stream=1, epoch=2) == TradeEncoder(
        "q", stream=1, epoch=2
    )("buy", 1.0, NOW, 3)


@pytest.mark.parametrize(
    "header",
    [b"\x89", b"\xde\x00\x09", b"\xdf\x00\x00\x00\x09"],
    ids=["fixmap", "map16", "map32"],
)
def test_every_map_header_of_nine_entries_decodes_and_of_ten_is_refused(header: bytes) -> None:
    """MessagePack may announce a map's size in 1, 3 or 5 bytes; the entry count is read
    the same way from each, and a tenth entry is refused before any value is read."""
    out: list[Event] = []
    assert decode_columns(header + _columns_body(), out, NOW + 60) == 2
    assert [t.seq for t in out] == [5, 6]  # type: ignore[union-attr]
    ten = bytearray(header)
    ten[-1] = 0x0A if len(header) > 1 else 0x8A
    extra = msgspec.msgpack.encode("zz") + msgspec.msgpack.encode(1)
    with pytest.raises(InvalidMessage) as caught:
        decode_columns(bytes(ten) + _columns_body() + extra, [], NOW + 60)
    assert caught.value.reason is Reason.INVALID_COLUMNS
    assert "has 10 entries" in str(caught.value)
    big = header[:1] + b"\xff" * (len(header) - 1)  # 65,535 or 4,294,967,295 entries
    if len(header) > 1:
        with pytest.raises(InvalidMessage) as caught:
            decode_columns(big + _columns_body(), [], NOW + 60)
        assert caught.value.reason is Reason.INVALID_COLUMNS
        assert f"has {int.from_bytes(big[1:], 'big')} entries" in str(caught.value)


@pytest.mark.parametrize("frame", [b"\xde", b"\xde\x00", b"\xdf\x00\x00\x00", b"\x80"])
def test_a_truncated_or_empty_map_is_refused_not_raised(frame: bytes) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode_columns(frame, [], NOW + 60)
    assert caught.value.reason in (Reason.INVALID_COLUMNS, Reason.MISSING_FIELD)


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        (None, Reason.MISSING_FIELD),  # msgspec alone would take a struct's tag as optional
        ("never-sent", Reason.INVALID_COLUMNS),  # the decoder's own second type is no frame
        ("trade", Reason.INVALID_COLUMNS),
        (1, Reason.INVALID_COLUMNS),
    ],
)
def test_a_columnar_map_without_its_type_or_with_another_is_refused(
    tag: object, reason: Reason
) -> None:
    pairs = _pairs()
    del pairs["type"]
    tagged = [] if tag is None else [msgspec.msgpack.encode("type") + msgspec.msgpack.encode(tag)]
    assert _refusal(_map([*tagged, *pairs.values()])) == reason.value
    if tag == "never-sent":
        assert _refusal(_map(tagged)) == reason.value


# --- what a refused columnar frame says, and where its limits fall exactly -------------


def _says(frame: bytes, horizon: float = NOW + 86_400) -> str:
    with pytest.raises(InvalidMessage) as caught:
        decode_columns(frame, [], horizon)
    return str(caught.value)


def _msgspec_says(frame: bytes) -> str:
    try:
        msgspec.msgpack.decode(frame, type=TradeColumns)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return str(exc)
    raise AssertionError("a valid frame")


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        (_frame(qty=[1.0, -1.0]), "invalid_qty: " + _msgspec_says(_frame(qty=[1.0, -1.0]))),
        (b"\x89\xc1", "invalid_columns: " + _msgspec_says(b"\x89\xc1")),
        (_frame(side="b"), "invalid_columns: columns differ in length: side 1, qty 2, ts_ns 2"),
        (_frame(side="bx"), "invalid_side: side codes must be 'b' or 's': 'bx'"),
        (_frame(side="bX"), "invalid_side: side codes must be 'b' or 's': 'bX'"),
        (_frame(seq=MAX_SAFE_INT - 1, qty=[1.0, 2.0, 3.0], side="bbb", ts_ns=[NOW_NS] * 3),
         f"invalid_seq: seq {MAX_SAFE_INT - 1} + 3 events passes 2**53 - 1"),
        (_frame(src="a\x7f"), "invalid_src: src must be printable ASCII (' '..'~'), got 'a\\x7f'"),
        # A map16/map32 header cut short is not MessagePack; a whole one says its count.
        (b"\xde\xff", "invalid_columns: not a MessagePack frame: " + _msgspec_says(b"\xde\xff")),
        (b"\xde\x00\xff",
         f"invalid_columns: a columnar frame is a map of its {COLUMNS_KEYS} keys once each, "
         "this one has 255 entries"),
        (b"\xdf\xff\xff",
         "invalid_columns: not a MessagePack frame: " + _msgspec_says(b"\xdf\xff\xff")),
        (b"\xdf\x00\x00\x00\xff",
         f"invalid_columns: a columnar frame is a map of its {COLUMNS_KEYS} keys once each, "
         "this one has 255 entries"),
    ],
)  # fmt: skip
def test_a_refused_columnar_frame_says_why(frame: bytes, text: str) -> None:
    assert _says(frame) == text


def test_a_string_that_is_not_utf8_says_so() -> None:
    frame = b"\x89" + _columns_body().replace(b"desk", b"d\xffsk")
    assert _says(frame).startswith("not_utf8: a string is not UTF-8: ")
    assert len(_says(frame)) > len("not_utf8: a string is not UTF-8: ") + 5


def test_the_last_seq_may_be_the_largest_safe_integer() -> None:
    frame = encode_columns("desk", 0, 0, MAX_SAFE_INT - 1, "bs", [1.0, 2.0], [NOW_NS, NOW_NS])
    out: list[Event] = []
    assert decode_columns(frame, out, NOW + 86_400) == 2
    assert [t.seq for t in out] == [MAX_SAFE_INT - 1, MAX_SAFE_INT]  # type: ignore[union-attr]


def test_ts_ns_may_reach_the_horizon_and_not_a_nanosecond_past_it() -> None:
    horizon = 1_700_086_400.0  # horizon * 1e9 is a float that holds this integer exactly
    edge = 1_700_086_400 * 10**9
    assert horizon * 1e9 == edge
    out: list[Event] = []
    assert decode_columns(encode_columns("d", 0, 0, 0, "b", [1.0], [edge]), out, horizon) == 1
    late = encode_columns("d", 0, 0, 0, "sb", [1.0, 1.0], [edge - 5, edge + 1])
    assert _says(late, horizon) == (
        f"invalid_ts: ts_ns {edge + 1} is more than a day ahead of the receiver's clock"
    )


def test_a_repeated_key_and_the_decoders_own_tag_say_what_they_are() -> None:
    pairs = _pairs()
    again = msgspec.msgpack.encode("seq") + msgspec.msgpack.encode(6)
    repeated = _map([again, *(p for k, p in pairs.items() if k != "ts_ns")])
    assert _says(repeated) == "duplicate_key: a key of the columnar map is repeated (9 entries)"
    never = _map([msgspec.msgpack.encode("type") + msgspec.msgpack.encode("never-sent")])
    assert _says(never) == "invalid_columns: not a columnar frame: type 'never-sent'"
