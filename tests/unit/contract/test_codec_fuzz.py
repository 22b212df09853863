"""Decoding is total: for any bytes, events or InvalidMessage, never anything else.

A seeded mutator (reproducible, fast) derives well over 100,000 frames from valid ones:
truncation, byte flips and inserts, every field replaced by values of every wrong JSON
type (lists, objects, bools, null, strings), NaN/Infinity literals, 1e309, huge
integers, duplicate keys, deep nesting, UTF-16/32, batches with mutated items. Any
exception other than InvalidMessage fails the test with the frame that raised it;
anything that decodes must satisfy every rule of the contract, and every valid event
generated round-trips exactly. hypothesis adds a shrinking property test on top.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from telemetry_contract import InvalidMessage, Trade, decode, encode
from telemetry_contract.codec import TradeEncoder, join_batch
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
EXAMPLES = max(30, int(300 * SCALE))

HOSTILE: list[bytes] = [
    b"[]", b"{}", b"[1,2]", b'{"a":1}', b"true", b"false", b"null", b'""', b'"x"',
    b'"buy"', b"0", b"-1", b"-0.0", b"1e309", b"-1e309", b"NaN", b"Infinity",
    b"-Infinity", b"9" * 400, b"-" + b"9" * 400, b"1.7e12", b"1.7e18", b"2e15",
    b"9007199254740992", b"0.5", b'"\\u0000"', b'"\\ud800"', b"[" * 50 + b"]" * 50,
    b'{"a":' * 50 + b"1" + b"}" * 50, b'"' + b"x" * 70 + b'"', b'"caf\\u00e9"',
]  # fmt: skip
FIELDS = ("type", "side", "qty", "ts", "src", "seq", "stream", "epoch")


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
    """One field's value swapped for a hostile one (or the field duplicated)."""
    obj = json.loads(frame)
    if not isinstance(obj, dict):
        return frame  # a batch: its items get mutated by `batch`
    name = rng.choice(FIELDS)
    body = b",".join(
        json.dumps(k).encode() + b":" + json.dumps(v).encode() for k, v in obj.items() if k != name
    )
    value = rng.choice(HOSTILE)
    if rng.random() < 0.2 and name in obj:  # a duplicate key: the last one wins
        value = json.dumps(obj[name]).encode() + b',"%s":' % name.encode() + value
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
        return frame.decode().encode(rng.choice(("utf-16", "utf-16-le", "utf-32", "latin-1")))

    def nest(frame: bytes) -> bytes:
        depth = rng.choice((2, 100, 5000, 100_000))
        return b"[" * depth + frame + b"]" * depth

    def batch(frame: bytes) -> bytes:
        items = [frame] * rng.randint(1, 5) + [rng.choice(HOSTILE), field(frame)]
        rng.shuffle(items)
        return b"[" + b",".join(items) + b"]"

    choices = (truncate, flip, insert, field, field, encoding, nest, batch)
    while True:
        yield rng.choice(choices)


def test_decode_is_total_over_mutated_frames() -> None:
    rng = random.Random(SEED)
    seeds = [encode(random_trade(rng)) for _ in range(500)]
    seeds += [TradeEncoder("p", stream=3, epoch=1)("buy", 2.0, NOW, 7)]
    seeds += [b'{"type": "trade", "side": "sell", "qty": 1, "ts": 1700000000}']  # the seed's
    unexpected: list[tuple[bytes, BaseException]] = []
    counts = {"events": 0, "invalid": 0, "item_rejects": 0}
    mutate = mutations(rng)
    for index in range(TOTAL):
        frame = next(mutate)(rng.choice(seeds))
        if index % 3 == 0:  # mutations of mutations reach further
            try:
                frame = next(mutate)(frame)
            except (ValueError, RecursionError):
                pass  # the generator itself could not parse what it had broken
        try:
            decoded = decode(frame, NOW)
        except InvalidMessage:
            counts["invalid"] += 1
            continue
        except BaseException as exc:  # noqa: BLE001 - this is what the test looks for
            unexpected.append((frame[:200], exc))
            continue
        counts["events"] += len(decoded.events)
        counts["item_rejects"] += len(decoded.rejects)
        for event in decoded.events:
            check_valid(event)
    assert not unexpected, unexpected[:5]
    # The mutator reached all three outcomes, in earnest.
    assert min(counts.values()) > 1000 * SCALE, counts


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
    """The decoder's promise for any input: valid events out, or InvalidMessage, never else."""
    try:
        decoded = decode(frame, NOW)
    except InvalidMessage:
        return
    for event in decoded.events:
        check_valid(event)
