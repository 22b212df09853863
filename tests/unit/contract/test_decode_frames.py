"""``decode_frames``, the receiver's hot loop, answers exactly as ``decode_into`` frame by frame.

decode_frames re-implements the common cases for speed (a single trade, a batch, a cache
of the last printable ``src``) and hands everything else to decode_into, which has the
final word. Nothing else in the contract's tests called it, so a slip in its shortcuts
(a horizon off by one, a cached ``src`` accepted for a different one) would have counted
bad events as good. Here both run over the same frames, alone, in order and shuffled:
the same events and the same rejects (reason and text), in the same order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from telemetry_contract import InvalidMessage, Reason
from telemetry_contract.codec import decode_frames, decode_into
from telemetry_contract.events import MAX_TS_AHEAD_S, MIN_TS, Event
from telemetry_contract.transport import MAX_BATCH_ITEMS, MAX_FRAME_BYTES

NOW = 1_700_000_000.0
HORIZON = NOW + MAX_TS_AHEAD_S


def trade(ts: float = NOW - 1, src: str | None = None, seq: int | None = None) -> dict[str, object]:
    item: dict[str, object] = {"type": "trade", "side": "buy", "qty": 2.5, "ts": ts}
    if src is not None:
        item["src"] = src
    if seq is not None:
        item["seq"] = seq
    return item


def frame(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


BENCH = {
    "type": "benchmark", "run_id": "run-1", "mode": "burst", "variant": "client",
    "events": 100, "sent": 99, "dropped": 1, "received": 99, "lost": 0, "elapsed_s": 0.5,
    "rate": 198.0, "target_rate": 0.0, "p50_us": 1.0, "p90_us": 2.0, "p99_us": 3.0,
    "p999_us": 4.0, "max_us": 9.5, "started_at": 1.0, "finished_at": 1.5,
}  # fmt: skip

FRAMES: list[bytes] = [
    frame(trade()),
    frame(trade(src="pub-a", seq=0)),
    frame(trade(src="pub-a", seq=1)),  # the cached src
    frame(trade(src="pub-b", seq=0)),
    frame(trade(src="caf\u00e9", seq=0)),  # not ASCII, right after a cached good one
    frame(trade(src="tab\there", seq=1)),  # not printable
    frame(trade(ts=HORIZON)),  # at the horizon: accepted
    frame(trade(ts=HORIZON + 1)),  # beyond it: refused
    frame([trade(src="pub-a", seq=2), trade(src="pub-a", seq=3), trade()]),
    frame([trade(src="pub-c", seq=0), trade(ts=HORIZON + 1), trade(src="pub-c", seq=2)]),
    frame([trade(src="pub-a", seq=4), trade(src="caf\u00e9", seq=0)]),  # bad item, batch
    frame([trade(ts=HORIZON)] * 2),
    frame([trade()] * MAX_BATCH_ITEMS),
    frame([trade()] * (MAX_BATCH_ITEMS + 1)),
    frame([]),
    frame(BENCH),
    frame({**BENCH, "sent": -2}),
    b" " * (MAX_FRAME_BYTES + 1),
    b"\xff\xfe",
    b"{",
    b"42",
    b'{"type":"order","side":"buy","qty":1,"ts":1700000000}',
    b'{"type":"trade","side":"BUY","qty":1,"ts":1700000000}',
]


Decoded = tuple[list[Event], list[tuple[Reason, str]]]
Decoder = Callable[[list[bytes]], Decoded]


def one_by_one(frames: list[bytes]) -> tuple[list[Event], list[tuple[Reason, str]]]:
    events: list[Event] = []
    rejects: list[InvalidMessage] = []
    for data in frames:
        try:
            rejects.extend(decode_into(data, events, NOW))
        except InvalidMessage as exc:
            rejects.append(exc)
    return events, [(r.reason, str(r)) for r in rejects]


def batched(frames: list[bytes]) -> tuple[list[Event], list[tuple[Reason, str]]]:
    events: list[Event] = []
    rejects = decode_frames(frames, events, NOW)
    return events, [(r.reason, str(r)) for r in rejects]


def test_the_table_has_good_and_bad_frames() -> None:
    events, rejects = one_by_one(FRAMES)
    assert len(events) > 10 and len(rejects) > 10
    reasons = {reason for reason, _ in rejects}
    assert {Reason.INVALID_SRC, Reason.INVALID_TS, Reason.BATCH_TOO_LARGE} <= reasons


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_each_frame_alone(index: int) -> None:
    assert batched([FRAMES[index]]) == one_by_one([FRAMES[index]])


def test_all_frames_in_order_and_shuffled() -> None:
    assert batched(FRAMES) == one_by_one(FRAMES)
    shuffler = random.Random(22)
    for _ in range(50):
        frames = shuffler.sample(FRAMES, len(FRAMES))
        assert batched(frames) == one_by_one(frames)


def test_events_are_appended_after_what_the_list_holds() -> None:
    events: list[Event] = []
    decode_frames([FRAMES[0]], events, NOW)
    decode_frames([FRAMES[1]], events, NOW)
    assert [e.src for e in events] == [None, "pub-a"]  # type: ignore[union-attr]


@pytest.mark.parametrize("decoder", [batched, one_by_one])
def test_a_batch_on_the_slow_path_keeps_its_good_items(decoder: Decoder) -> None:
    """A batch with a late or a non-printable item: only those items are refused; an
    item exactly at the horizon is still good (both paths must agree with the contract,
    not merely with each other)."""
    data = frame(
        [trade(src="pub-a", seq=0), trade(ts=HORIZON + 1), trade(ts=HORIZON), trade(src="t\tb")]
    )
    events, rejects = decoder([data])
    assert [e.ts for e in events] == [NOW - 1, HORIZON]  # type: ignore[union-attr]
    assert [reason for reason, _ in rejects] == [Reason.INVALID_TS, Reason.INVALID_SRC]
    assert rejects[0][1].startswith("invalid_ts: item 1: ")


@pytest.mark.parametrize("decoder", [batched, one_by_one])
def test_a_frame_of_exactly_the_size_limit_is_decoded(decoder: Decoder) -> None:
    body = frame(trade())
    data = body[:-1] + b" " * (MAX_FRAME_BYTES - len(body)) + b"}"
    assert len(data) == MAX_FRAME_BYTES
    events, rejects = decoder([data])
    assert len(events) == 1 and not rejects
    assert decoder([data + b" "])[1][0][0] is Reason.OVERSIZE


@pytest.mark.parametrize("decoder", [batched, one_by_one])
def test_a_batch_whose_only_fault_is_a_non_printable_src_refuses_that_item(
    decoder: Decoder,
) -> None:
    events, rejects = decoder([frame([trade(src="pub-a", seq=0), trade(src="t\tb", seq=0)])])
    assert [e.src for e in events] == ["pub-a"]  # type: ignore[union-attr]
    assert [reason for reason, _ in rejects] == [Reason.INVALID_SRC]


@pytest.mark.parametrize("decoder", [batched, one_by_one])
def test_a_full_batch_with_one_bad_item_keeps_the_rest(decoder: Decoder) -> None:
    items = [trade()] * (MAX_BATCH_ITEMS - 1) + [trade(ts=HORIZON + 1)]
    events, rejects = decoder([frame(items)])
    assert len(events) == MAX_BATCH_ITEMS - 1
    assert [reason for reason, _ in rejects] == [Reason.INVALID_TS]


@pytest.mark.parametrize("decoder", [batched, one_by_one])
def test_a_batch_item_of_another_type_says_which(decoder: Decoder) -> None:
    order = {**trade(), "type": "order"}
    _, rejects = decoder([frame([trade(), order, BENCH])])
    assert [reason for reason, _ in rejects] == [
        Reason.UNKNOWN_TYPE,
        Reason.BATCH_ITEM_NOT_TRADE,
    ]


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (MIN_TS * 1e3, Reason.TS_MILLISECONDS),
        (HORIZON * 1e3, Reason.TS_MILLISECONDS),
        (MIN_TS * 1e6, Reason.TS_MICROSECONDS),
        (HORIZON * 1e9, Reason.TS_NANOSECONDS),
    ],
)
def test_a_ts_in_another_unit_is_named_at_the_edges(ts: float, reason: Reason) -> None:
    _, rejects = one_by_one([frame(trade(ts=ts))])
    assert [r for r, _ in rejects] == [reason]
