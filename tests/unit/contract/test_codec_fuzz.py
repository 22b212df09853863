"""Decoding is total and agrees with docs/contract.md, reason for reason.

A seeded mutator (reproducible, fast) derives well over 100,000 frames from valid ones:
truncation, byte flips and inserts, every field replaced by values of every wrong JSON
type (lists, objects, bools, null, strings), NaN/Infinity literals, 1e309, huge
integers, duplicate keys (the bad value first or last), nesting around the depth limit,
UTF-16/32 and latin-1 text, batches with mutated items. Each frame goes through the
decoder and through ``contract_reference`` (the page's rules, written with plain
``json``): the two must agree on the decision, every event's values and every reject
reason, for single frames (:func:`decode`) and chunks of them (:func:`decode_frames`,
the receiver's hot loop). Any exception other than InvalidMessage fails the test.
hypothesis adds shrinking property tests on top.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator

import contract_reference
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from telemetry_contract import InvalidMessage, Trade, decode, encode
from telemetry_contract.codec import TradeEncoder, decode_frames, join_batch
from telemetry_contract.events import (
    MAX_QTY,
    MAX_SAFE_INT,
    MAX_TS_AHEAD_S,
    MIN_TS,
    SIDES,
    BenchmarkResult,
    Event,
)
from telemetry_contract.transport import MAX_BATCH_ITEMS

NOW = 1_700_000_000.0
SEED = 20261130
#: ``make test-unit`` runs a tenth of every fuzz budget (``TT_TEST_FUZZ_SCALE=0.1``) to
#: stay within seconds; ``make test`` and a bare ``pytest`` run all of it.
SCALE = float(os.environ.get("TT_TEST_FUZZ_SCALE", "1"))
#: Frames the mutator derives; the issue asks for at least 100,000.
TOTAL = int(110_000 * SCALE)
#: Frames per decode_frames call, as the receiver chunks them.
CHUNK = 64
EXAMPLES = max(30, int(300 * SCALE))

HOSTILE: list[bytes] = [
    b"[]", b"{}", b"[1,2]", b'{"a":1}', b"true", b"false", b"null", b'""', b'"x"',
    b'"buy"', b"0", b"-1", b"-0.0", b"1e309", b"-1e309", b"NaN", b"Infinity",
    b"-Infinity", b"9" * 400, b"-" + b"9" * 400, b"1.7e12", b"1.7e18", b"2e15",
    b"9007199254740992", b"0.5", b'"\\u0000"', b'"\\ud800"', b"[" * 50 + b"]" * 50,
    b'{"a":' * 50 + b"1" + b"}" * 50, b'"' + b"x" * 70 + b'"', b'"caf\\u00e9"',
]  # fmt: skip
FIELDS = ("type", "side", "qty", "ts", "src", "seq", "stream", "epoch")
#: Fields of a benchmark row the mutator also swaps (and adds to trades as unknown keys).
BENCH_FIELDS = ("run_id", "mode", "variant", "sent", "p99_us", "started_at")
BENCH_ROW = BenchmarkResult(
    run_id="run-1", mode="burst", variant="client", events=100, sent=99, dropped=1,
    received=99, lost=0, elapsed_s=0.5, rate=198.0, target_rate=0.0, p50_us=1.0,
    p90_us=2.0, p99_us=3.0, p999_us=4.0, max_us=9.5, started_at=1.0, finished_at=1.5,
)  # fmt: skip


def random_trade(rng: random.Random) -> Trade:
    """A valid trade, edge values included."""
    src = None
    seq = stream = epoch = None
    if rng.random() < 0.7:
        length = rng.choice((1, 5, 64))
        src = "".join(chr(rng.randint(32, 126)) for _ in range(length))
        seq = rng.choice((0, 1, rng.randint(0, MAX_SAFE_INT), MAX_SAFE_INT))
        if rng.random() < 0.5:
            stream = rng.choice((0, rng.randint(0, MAX_SAFE_INT), MAX_SAFE_INT))
            epoch = rng.choice((0, 1, rng.randint(0, 1000)))
    qty = rng.choice((0.0, 1.0, MAX_QTY, rng.uniform(0, 1e6), float(rng.randint(0, 10**15))))
    ts = rng.choice((MIN_TS, NOW, NOW + MAX_TS_AHEAD_S, rng.uniform(MIN_TS, NOW)))
    return Trade(rng.choice(SIDES), qty, ts, src, seq, stream, epoch)


def check_valid(event: Event) -> None:
    """What the contract promises about every event decode hands out."""
    if isinstance(event, BenchmarkResult):
        return
    assert isinstance(event, Trade)
    assert event.side in SIDES
    assert type(event.qty) is float and 0.0 <= event.qty <= MAX_QTY
    assert type(event.ts) is float and MIN_TS <= event.ts <= NOW + MAX_TS_AHEAD_S
    if event.src is not None:
        assert 1 <= len(event.src) <= 64 and all(" " <= c <= "~" for c in event.src)
    for number in (event.seq, event.stream, event.epoch):
        assert number is None or (type(number) is int and 0 <= number <= MAX_SAFE_INT)


def replace_field(rng: random.Random, frame: bytes) -> bytes:
    """One field's value swapped for a hostile one, or the field written twice.

    A duplicate puts the good value first or last at random: neither may win, the
    contract refuses both orders as ``duplicate_key`` (the reference says so too).
    """
    obj = json.loads(frame)
    if not isinstance(obj, dict):
        return frame  # a batch: its items get mutated by `batch`
    name = rng.choice(FIELDS + BENCH_FIELDS)
    body = b",".join(
        json.dumps(k).encode() + b":" + json.dumps(v).encode() for k, v in obj.items() if k != name
    )
    value = rng.choice(HOSTILE)
    if rng.random() < 0.2 and name in obj:  # a duplicate key, the good value first or last
        good = json.dumps(obj[name]).encode()
        first, last = (good, value) if rng.random() < 0.5 else (value, good)
        value = first + b',"%s":' % name.encode() + last
    return b"{" + body + (b"," if body else b"") + b'"%s":' % name.encode() + value + b"}"


def mutations(rng: random.Random) -> Iterator[Callable[[bytes], bytes]]:
    def truncate(frame: bytes) -> bytes:
        return frame[: rng.randrange(len(frame) + 1)]

    def flip(frame: bytes) -> bytes:
        data = bytearray(frame)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)

    def insert(frame: bytes) -> bytes:
        at = rng.randrange(len(frame) + 1)
        return frame[:at] + rng.choice(HOSTILE + [bytes([rng.randrange(256)])]) + frame[at:]

    def field(frame: bytes) -> bytes:
        return replace_field(rng, frame)

    def encoding(frame: bytes) -> bytes:
        # Text with a non-ASCII character first: latin-1 of pure ASCII is the same bytes.
        text = frame.decode()
        if text.startswith("{"):
            text = '{"note":"caf\u00e9",' + text[1:]
        return text.encode(rng.choice(("utf-16", "utf-16-le", "utf-32", "latin-1", "utf-8")))

    def nest(frame: bytes) -> bytes:
        depth = rng.choice((2, 30, 31, 32, 33, 100, 2000)) if rng.random() < 0.9 else 100_000
        return b"[" * depth + frame + b"]" * depth

    def batch(frame: bytes) -> bytes:
        items = [frame] * rng.randint(1, 5) + [rng.choice(HOSTILE), field(frame)]
        rng.shuffle(items)
        return b"[" + b",".join(items) + b"]"

    choices = (truncate, flip, insert, field, field, encoding, nest, batch)
    while True:
        yield rng.choice(choices)


def decoder_outcome(frame: bytes) -> str | list[contract_reference.Outcome]:
    """The decoder's answer in the reference's terms (event fields, or reason values).

    A batch frame's events and rejects come back in two lists; the reference gives one
    outcome per item. Both orders are kept, so comparing the good items with the events
    and the bad items' reasons with the rejects, each in order, is exact.
    """
    try:
        decoded = decode(frame, NOW)
    except InvalidMessage as exc:
        return exc.reason.value
    events: list[contract_reference.Outcome] = [as_fields(e) for e in decoded.events]
    return events + [r.reason.value for r in decoded.rejects]


def as_fields(event: Event) -> dict[str, object]:
    fields = {k: v for k, v in msgspec.structs.asdict(event).items() if v is not None}
    return {"type": "trade" if isinstance(event, Trade) else "benchmark", **fields}


def in_decoder_order(
    outcome: str | list[contract_reference.Outcome],
) -> str | list[contract_reference.Outcome]:
    """The reference's answer, ordered as :func:`decoder_outcome` orders the decoder's."""
    if isinstance(outcome, str):
        return outcome
    return [o for o in outcome if isinstance(o, dict)] + [o for o in outcome if isinstance(o, str)]


def test_decoder_agrees_with_the_reference_over_mutated_frames() -> None:
    rng = random.Random(SEED)
    seeds = [encode(random_trade(rng)) for _ in range(500)]
    seeds += [TradeEncoder("p", stream=3, epoch=1)("buy", 2.0, NOW, 7)]
    seeds += [b'{"type": "trade", "side": "sell", "qty": 1, "ts": 1700000000}']  # the seed's
    seeds += [encode(BENCH_ROW)] * 20
    disagree: list[tuple[bytes, object, object]] = []
    counts: dict[str, int] = {"events": 0, "invalid": 0, "item_rejects": 0}
    chunk: list[tuple[bytes, str | list[contract_reference.Outcome]]] = []
    mutate = mutations(rng)
    for index in range(TOTAL):
        frame = next(mutate)(rng.choice(seeds))
        if index % 3 == 0:  # mutations of mutations reach further
            try:
                frame = next(mutate)(frame)
            except (ValueError, RecursionError):
                pass  # the generator itself could not parse what it had broken
        reference = contract_reference.check(frame, NOW)
        if reference == contract_reference.COLUMNAR:  # a mutated first byte: not JSON's rules
            assert_decodes_valid_or_rejects(frame)
            continue
        if isinstance(reference, str):
            counts["invalid"] += 1
            counts[reference] = counts.get(reference, 0) + 1
        else:
            for outcome in reference:
                key = "events" if isinstance(outcome, dict) else "item_rejects"
                counts[key] += 1
                if isinstance(outcome, str):
                    counts[outcome] = counts.get(outcome, 0) + 1
        chunk.append((frame, reference))
        if len(chunk) == CHUNK or index == TOTAL - 1:
            check_chunk(chunk, disagree)
            chunk.clear()
    assert not disagree, disagree[:5]
    # The mutator reached all three outcomes, and the reasons this test is about, in earnest.
    for key in ("events", "invalid", "item_rejects"):
        assert counts[key] > 1000 * SCALE, counts
    for reason in ("duplicate_key", "not_utf8", "malformed_json", "wrong_type"):
        assert counts.get(reason, 0) > 100 * SCALE, counts


def check_chunk(
    chunk: list[tuple[bytes, str | list[contract_reference.Outcome]]],
    disagree: list[tuple[bytes, object, object]],
) -> None:
    """decode_frames (the receiver's loop, with its own fast path) over a chunk gives what
    the reference gives frame by frame: events in order, then rejects in order. When it
    does not, each frame goes through :func:`decode` alone, to name the ones that differ
    (and any exception but InvalidMessage fails the test right there)."""
    events: list[Event] = []
    rejects = decode_frames([frame for frame, _ in chunk], events, NOW)
    want_events: list[object] = []
    want_rejects: list[str] = []
    for _, outcome in chunk:
        if isinstance(outcome, str):
            want_rejects.append(outcome)
            continue
        want_events += [o for o in outcome if isinstance(o, dict)]
        want_rejects += [o for o in outcome if isinstance(o, str)]
    got_events = [as_fields(e) for e in events]
    got_rejects = [r.reason.value for r in rejects]
    if (got_events, got_rejects) == (want_events, want_rejects):
        return
    for frame, outcome in chunk:
        got, want = decoder_outcome(frame), in_decoder_order(outcome)
        if got != want:
            disagree.append((frame[:300], got, want))
    if not disagree:
        disagree.append((b"decode_frames alone", (got_events, got_rejects), "per frame"))


def test_valid_events_round_trip_exactly() -> None:
    rng = random.Random(SEED + 1)
    for _ in range(int(20_000 * SCALE)):
        trade = random_trade(rng)
        assert decode(encode(trade), NOW).events == [trade]
    batch = [random_trade(rng) for _ in range(MAX_BATCH_ITEMS)]
    frame = msgspec.json.encode(batch)
    assert decode(frame, NOW).events == batch
    items = [TradeEncoder(t.src)(t.side, t.qty, t.ts, t.seq) for t in batch if t.stream is None]
    assert len(decode(join_batch(items), NOW).events) == len(items)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_invalid_message(frame: bytes) -> None:
    assert_decodes_valid_or_rejects(frame)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), inner),
    max_leaves=20,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), JSON) | st.lists(JSON, max_size=5))
def test_any_json_value_decodes_or_raises_invalid_message(value: object) -> None:
    frame = json.dumps(value).encode()  # includes NaN/Infinity, which JSON does not
    assert_decodes_valid_or_rejects(frame)


def assert_decodes_valid_or_rejects(frame: bytes) -> None:
    """The decoder's promise for any input: valid events out, or InvalidMessage, never
    else; and the same answer, reason for reason, as the reference validator."""
    got = decoder_outcome(frame)
    expected = contract_reference.check(frame, NOW)
    if expected == contract_reference.COLUMNAR:  # its rules: test_frames.py; here the promise
        assert isinstance(got, str) or all(isinstance(o, dict) for o in got), frame[:300]
    else:
        assert got == in_decoder_order(expected), frame[:300]
    try:
        decoded = decode(frame, NOW)
    except InvalidMessage:
        return
    for event in decoded.events:
        check_valid(event)
