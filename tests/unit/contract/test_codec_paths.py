"""The JSON decoder's two ways, held to each other and to docs/contract.md.

Good frames take a fast path (one msgspec call, the ``ts`` horizon, ``src`` printable,
the plain-frame quote count); everything else the exact path (``codec._slow``), which
checks UTF-8, depth and duplicates itself. Two promises follow, and both are tested here:

- the frames the publisher and ``encode``/``encode_batch`` write never take the slow
  way (docs/contract.md: the proof costs +11 % on the ingest loop; all frames going the
  slow way would cost far more, and no other test would notice);
- a frame shaped like a plain one (compact, ASCII, no backslash, quotes that add up) but
  breaking a rule gets from the fast path exactly what the exact path gives: events,
  reasons and detail texts. ``json.dumps``' default ``", "`` separators never look
  plain, so the other tables seldom reach these branches; a ``src`` with DEL (0x7f) is
  the one non-printable ``src`` that needs neither an escape nor non-ASCII bytes.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Sequence

import contract_reference
import msgspec
import pytest
from telemetry_contract import (
    InvalidMessage,
    Reason,
    Trade,
    codec,
    decode,
    encode,
    encode_batch,
    json_checks,
)
from telemetry_contract.codec import TradeEncoder, decode_frames, decode_into, join_batch
from telemetry_contract.events import MAX_TS_AHEAD_S, BenchmarkResult, Event
from telemetry_contract.frames import encode_columns
from telemetry_contract.json_checks import BENCH_QUOTES
from telemetry_contract.transport import MAX_BATCH_ITEMS, MAX_FRAME_BYTES, MAX_NESTING_DEPTH

NOW = 1_700_000_000.0
HORIZON = NOW + MAX_TS_AHEAD_S
NOW_NS = 1_700_000_000 * 10**9

#: Every combination of the optional fields: the quote count differs for each.
TRADES = [
    Trade("sell", 2.5, NOW, src, seq, stream, epoch)
    for src in ("desk-1", None)
    for seq, stream, epoch in itertools.product((7, None), (3, None), (1, None))
]
BENCH_ROW = BenchmarkResult(
    run_id="run-1", mode="burst", variant="client", events=100, sent=99, dropped=1,
    received=99, lost=0, elapsed_s=0.5, rate=198.0, target_rate=0.0, p50_us=1.0,
    p90_us=2.0, p99_us=3.0, p999_us=4.0, max_us=9.5, started_at=1.0, finished_at=1.5,
)  # fmt: skip
_ENCODER = TradeEncoder("desk-1", stream=3, epoch=1)

#: What the publisher and the encoders write: single trades, then batches.
PUBLISHED_TRADES: list[bytes] = [
    *(encode(t) for t in TRADES),
    encode(Trade("buy", 1.0, HORIZON, "desk-1", 1)),  # at the horizon: still good
    _ENCODER("buy", 1.5, NOW, 8),
    TradeEncoder(None)("sell", 1.0, NOW),
]
PUBLISHED_BATCHES: list[bytes] = [
    encode_batch(TRADES),
    encode_batch([TRADES[0]] * MAX_BATCH_ITEMS),  # a full batch
    encode_batch([Trade("buy", 1.0, HORIZON)] * 2),
    join_batch([_ENCODER("buy", 1.0, NOW, seq) for seq in range(64)]),
]


def compact(value: object) -> bytes:
    """JSON as the publisher writes it: no spaces (``json.dumps`` adds them by default),
    DEL written as itself (``ensure_ascii`` would escape it as ``\\u007f``)."""
    frame = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert frame.isascii() and b"\\" not in frame
    return frame


def trade(ts: float = NOW, **fields: object) -> dict[str, object]:
    return {"type": "trade", "side": "buy", "qty": 1.0, "ts": ts, **fields}


def bench(**changes: object) -> dict[str, object]:
    return {"type": "benchmark", **msgspec.structs.asdict(BENCH_ROW), **changes}


def padded(frame: bytes, quotes: int) -> bytes:
    """``frame`` (an object) with unknown ``"k":"v"`` pairs until it holds ``quotes`` quotes."""
    index = 0
    while frame.count(b'"') < quotes:
        frame = frame[:-1] + b',"k%d":"v"}' % index
        index += 1
    assert frame.count(b'"') == quotes
    return frame


#: Not printable, yet ASCII and written in JSON without an escape.
DEL_SRC = "pub\x7f"

#: Frames that look plain to the fast path (or nearly) and break a rule; with the
#: reasons the exact path gives, in decoder order (events first, then rejects).
HOSTILE: list[tuple[bytes, list[str] | str]] = [
    (compact(trade(src=DEL_SRC)), "invalid_src"),
    (compact(trade(src=DEL_SRC, seq=1, stream=2, epoch=3)), "invalid_src"),
    (compact([trade(src="pub-a", seq=1), trade(src=DEL_SRC, seq=1), trade()]),
     ["event", "event", "invalid_src"]),
    (compact([trade(src=DEL_SRC), trade(src="pub-a")]), ["event", "invalid_src"]),
    (compact([trade(src="pub-a"), trade(src="pub-a" + "\x7f")]), ["event", "invalid_src"]),
    (compact(trade(ts=HORIZON + 1)), "invalid_ts"),
    (compact(trade(ts=HORIZON + 1, src="a", seq=1)), "invalid_ts"),
    (compact(trade(ts=NOW * 1e3)), "ts_milliseconds"),
    (compact([trade(src="a", seq=1), trade(ts=HORIZON + 1), trade(ts=HORIZON)]),
     ["event", "event", "invalid_ts"]),
    (compact([trade(ts=HORIZON + 1), trade(src="a", seq=2)]), ["event", "invalid_ts"]),
    (compact(trade(src=None)), ["event"]),  # null: absent, but two quotes more
    (compact([{"side": "buy", "qty": 1.0, "ts": NOW, "x": "y"}]), ["event"]),  # no type
    (compact([trade(), bench()]), ["event", "batch_item_not_trade"]),
    (compact(bench(sent=-2)), "invalid_benchmark"),
    (compact(bench()).replace(b'"sent":99', b'"sent":99,"sent":99'), "duplicate_key"),
    (compact(bench()).replace(b'"sent":99', b'"sent":-2,"sent":99'), "duplicate_key"),
    # Not led by "type", the quotes of a benchmark row, a repeated key: still refused.
    (padded(b'{"side":"buy","type":"trade","qty":1,"ts":1700000000,"qty":2}', BENCH_QUOTES),
     "duplicate_key"),
    (padded(b'{"type":"trade","side":"hold","qty":1,"ts":1700000000,"qty":2}', BENCH_QUOTES),
     "duplicate_key"),
    (compact([trade(), trade()]).replace(b'0.0}]', b'0.0,"qty":2}]'),
     ["event", "duplicate_key"]),
    # A number too long for Python's int() before the repeated key: still found.
    (b'{"x":1' + b"0" * 5000 + b',"type":"trade","side":"buy","qty":1,"ts":1700000000,"qty":2}',
     "duplicate_key"),
]  # fmt: skip


Outcome = tuple[list[Event], list[tuple[Reason, str]]]


def via_frames(frames: list[bytes]) -> Outcome:
    events: list[Event] = []
    rejects = decode_frames(frames, events, NOW)
    return events, [(r.reason, str(r)) for r in rejects]


def _each(
    decode: Callable[[bytes, list[Event]], Sequence[InvalidMessage]], frames: list[bytes]
) -> Outcome:
    """Frames one at a time: a frame refused whole is its reject, items refused are theirs."""
    events: list[Event] = []
    rejects: list[InvalidMessage] = []
    for frame in frames:
        try:
            rejects.extend(decode(frame, events))
        except InvalidMessage as exc:
            rejects.append(exc)
    return events, [(r.reason, str(r)) for r in rejects]


def via_into(frames: list[bytes]) -> Outcome:
    return _each(lambda frame, events: decode_into(frame, events, NOW), frames)


def via_exact(frames: list[bytes]) -> Outcome:
    """The exact path alone, as decode_into would take it for every frame."""
    return _each(lambda frame, events: codec._slow(frame, events, HORIZON), frames)


def refuse(name: str) -> Callable[..., object]:
    def called(frame: bytes, *_: object) -> object:
        raise AssertionError(f"{name} called for {bytes(frame)[:120]!r}")

    return called


@pytest.mark.parametrize("frame", PUBLISHED_TRADES + PUBLISHED_BATCHES + [encode(BENCH_ROW)])
def test_decode_takes_the_fast_path_for_what_the_encoders_write(
    frame: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = via_exact([frame])
    assert expected[0] and not expected[1]
    monkeypatch.setattr(codec, "_slow", refuse("the exact path"))
    assert via_into([frame]) == expected


def test_decode_frames_takes_its_own_fast_path_for_what_the_publisher_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames = PUBLISHED_TRADES + PUBLISHED_BATCHES
    expected = via_exact(frames)
    monkeypatch.setattr(codec, "decode_into", refuse("decode_into"))
    for frame in frames:  # alone: nothing cached from an earlier frame
        assert via_frames([frame]) == via_exact([frame])
    assert via_frames(frames) == expected
    assert via_frames(frames[::-1]) == via_exact(frames[::-1])


def test_a_plain_frame_of_exactly_the_size_limit_takes_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """decode_frames' own copy of the size limit is the contract's (at most, not below)."""
    body = PUBLISHED_TRADES[0]
    frame = body[:-1] + b" " * (MAX_FRAME_BYTES - len(body)) + b"}"
    assert len(frame) == MAX_FRAME_BYTES
    monkeypatch.setattr(codec, "decode_into", refuse("decode_into"))
    assert via_frames([frame]) == ([TRADES[0]], [])


def test_the_hostile_table_means_what_it_says() -> None:
    """Each frame is what its comment says: the exact path's reasons, the reference's too."""
    for frame, reasons in HOSTILE:
        events, rejects = via_exact([frame])
        got = [r.value for r, _ in rejects]
        if isinstance(reasons, str):
            assert (events, got) == ([], [reasons]), frame
        else:
            assert ["event"] * len(events) + got == reasons, frame
        expected = contract_reference.check(frame, NOW)
        if isinstance(expected, list):
            expected = ["event" if isinstance(o, dict) else o for o in expected]
            expected = sorted(expected, key=lambda o: o != "event")
        assert expected == reasons, frame


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_a_plain_looking_bad_frame_gets_the_exact_answer(index: int) -> None:
    frame = HOSTILE[index][0]
    exact = via_exact([frame])
    assert via_into([frame]) == exact
    assert via_frames([frame]) == exact


def test_hostile_and_published_frames_mixed_in_one_chunk() -> None:
    """decode_frames' cache of the last good ``src`` and its early exits: a chunk mixing
    good frames and bad ones answers as the exact path does frame by frame."""
    frames = [f for f, _ in HOSTILE] + PUBLISHED_TRADES + PUBLISHED_BATCHES
    shuffler = random.Random(19)
    for _ in range(20):
        order = shuffler.sample(frames, len(frames))
        assert via_frames(order) == via_exact(order)


COLUMNS = encode_columns("desk", 3, 1, 10, "bs", [1.0, 2.0], [NOW_NS, NOW_NS + 1])
MIXED: list[bytes] = [
    COLUMNS,
    encode_columns("desk", 3, 1, 12, "b", [1.0], [int(NOW + 2 * MAX_TS_AHEAD_S) * 10**9]),
    COLUMNS[:-3],  # cut short: invalid_columns
    b"\x85" + b"\x00" * MAX_FRAME_BYTES,  # a columnar lead, too big
    PUBLISHED_TRADES[0],
    compact(trade(src=DEL_SRC)),
    PUBLISHED_BATCHES[0],
    COLUMNS,
]


def test_columnar_frames_in_a_chunk_answer_as_decode_into() -> None:
    events, rejects = via_frames(MIXED)
    assert (events, rejects) == via_into(MIXED)
    assert [r for r, _ in rejects] == [
        Reason.INVALID_TS, Reason.INVALID_COLUMNS, Reason.OVERSIZE, Reason.INVALID_SRC,
    ]  # fmt: skip
    assert len(events) == 2 + 1 + len(TRADES) + 2
    assert [e.seq for e in events[:2]] == [10, 11]  # type: ignore[union-attr]


SOME = [
    PUBLISHED_TRADES[0],
    PUBLISHED_BATCHES[0],
    compact(trade(src=DEL_SRC)),
    compact([trade(), trade(ts=HORIZON + 1)]),
    COLUMNS,
    b"\xff",
    b"{",
]


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_any_buffer_decodes_as_its_bytes(kind: Callable[[bytes], bytes]) -> None:
    """The receiver hands zmq's buffers over as they come (``codec.Buffer``)."""
    buffers = [kind(frame) for frame in SOME]
    assert via_frames(buffers) == via_frames(SOME)
    assert via_into(buffers) == via_into(SOME)
    for buffer, frame in zip(buffers, SOME, strict=True):
        assert answer(buffer) == answer(frame)


def answer(frame: bytes) -> tuple[list[Event], list[str]]:
    """:func:`decode`'s answer, rejects as text (exceptions compare by identity)."""
    try:
        decoded = decode(frame, NOW)
    except InvalidMessage as exc:
        return [], [str(exc)]
    return decoded.events, [str(r) for r in decoded.rejects]


def _msgspec_says(frame: bytes) -> str:
    try:
        msgspec.json.decode(frame)
    except msgspec.DecodeError as exc:
        return str(exc)
    raise AssertionError("valid JSON")


T = b'{"type":"trade","side":"buy","qty":1,"ts":1700000000'

#: The whole error text a sender sees in the sidecar's log, per rule.
DETAILS: list[tuple[bytes, str]] = [
    (b" " * (MAX_FRAME_BYTES + 1), f"oversize: {MAX_FRAME_BYTES + 1} bytes > {MAX_FRAME_BYTES}"),
    (b'{"x":"\xff"}',
     "not_utf8: 'utf-8' codec can't decode byte 0xff in position 6: invalid start byte"),
    (b"[" * 33 + b"]" * 33,
     f"malformed_json: nesting deeper than {MAX_NESTING_DEPTH} levels (or unbalanced brackets)"),
    (b"{", "malformed_json: " + _msgspec_says(b"{")),
    (b"1 x", "malformed_json: " + _msgspec_says(b"1 x")),
    (b"42", "not_object: a frame is a JSON object or an array of trade objects"),
    (T + b',"qty":2}', "duplicate_key: " + json_checks.DUPLICATE_DETAIL),
    (T + b',"src":"p\x7f"}', "invalid_src: src must be printable ASCII (' '..'~'), got 'p\\x7f'"),
    (b'{"type":"trade","qty":1,"ts":1700000000}',
     "missing_field: Object missing required field `side`"),
    (b'{"type":"trade","side":1,"qty":1,"ts":1700000000}',
     "wrong_type: Expected `str`, got `int` - at `$.side`"),
    (b'{"type":7,"side":"buy","qty":1,"ts":1700000000}',
     "wrong_type: Expected `str` - at `$.type`"),
    (T + b',"src":1e309}', "wrong_type: Number out of range - at `$.src`"),
    (b"[" + b",".join([T + b"}"] * (MAX_BATCH_ITEMS + 1)) + b"]",
     f"batch_too_large: {MAX_BATCH_ITEMS + 1} items > {MAX_BATCH_ITEMS} in one batch frame"),
]  # fmt: skip


@pytest.mark.parametrize("frame, text", DETAILS, ids=[t.split(":")[0] for _, t in DETAILS])
def test_each_whole_frame_reject_says_why(frame: bytes, text: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(frame, NOW)
    assert str(caught.value) == text
    assert via_frames([frame])[1] == [(caught.value.reason, text)]


def test_each_batch_item_reject_says_which_item_and_why() -> None:
    frame = b"[%s,5,%s,%s,%s]" % (
        T + b"}",
        T + b',"qty":2}',
        compact(bench()),
        T.replace(b'"buy"', b'"hold"') + b"}",
    )
    decoded = decode(frame, NOW)
    assert [str(r) for r in decoded.rejects] == [
        "not_object: item 1: Expected `object`, got `int`",
        f"duplicate_key: item 2: {json_checks.DUPLICATE_DETAIL}",
        "batch_item_not_trade: item 3: a batch frame carries trades only",
        "invalid_side: item 4: Invalid enum value 'hold' - at `$.side`",
    ]
    assert via_frames([frame])[1] == [(r.reason, str(r)) for r in decoded.rejects]


def test_the_float_fields_are_read_from_the_structs() -> None:
    """``1e309`` is out of range in these, a wrong type anywhere else."""
    want = {"qty", "ts", *contract_reference.MEASURES}
    assert codec._float_fields() == want
    assert codec._FLOAT_FIELDS == want


@pytest.mark.parametrize("depth", [1, 2, 3, MAX_NESTING_DEPTH])
def test_the_depth_pattern_allows_exactly_its_depth(depth: int) -> None:
    within = json_checks._nested_within(depth)
    assert within.fullmatch(b"")
    assert within.fullmatch(b"[]" * 3)
    assert within.fullmatch(b"[" * depth + b"]" * depth)
    assert within.fullmatch(b"[][]" + b"[" * depth + b"]" * depth + b"[]")
    if depth > 1:
        assert within.fullmatch(b"[" + b"[]" * 3 + b"]")
    assert within.fullmatch(b"[" * (depth + 1) + b"]" * (depth + 1)) is None
    assert within.fullmatch(b"[" * depth + b"]" * (depth - 1)) is None
    limit = json_checks._nested_within(MAX_NESTING_DEPTH)
    assert json_checks._WITHIN_DEPTH.pattern == limit.pattern
