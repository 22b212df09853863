"""Frames a hostile sender writes, each against the promise docs/contract.md makes.

Every frame goes through both entry points the sidecar has: :func:`decode` and the
receive loop's :func:`decode_frames` (with its own fast path), single and batch. The
nesting limit is also tried from a deep call stack and from a thread with a small
stack, where a parser that recurses on the interpreter's stack would answer otherwise.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest
from telemetry_contract import InvalidMessage, Reason, Trade, decode
from telemetry_contract.codec import decode_frames
from telemetry_contract.events import Event
from telemetry_contract.json_checks import DUPLICATE_DETAIL
from telemetry_contract.transport import MAX_NESTING_DEPTH

NOW = 1_700_000_000.0
GOOD = b'{"type":"trade","side":"buy","qty":2,"ts":1700000000,"src":"p","seq":1'


def trade(extra: bytes = b"") -> bytes:
    return GOOD + extra + b"}"


def outcome(frame: bytes) -> tuple[list[Event], list[str]]:
    """decode's answer, checked equal to decode_frames' answer for the same frame."""
    try:
        decoded = decode(frame, NOW)
        result = (decoded.events, [r.reason.value for r in decoded.rejects])
    except InvalidMessage as exc:
        result = ([], [exc.reason.value])
    events: list[Event] = []
    rejects = decode_frames([frame], events, NOW)
    assert (events, [r.reason.value for r in rejects]) == result
    return result


@pytest.mark.parametrize(
    "frame",
    [
        trade(b',"note":"\xff"'),  # inside a string nobody reads
        trade(b',"n\xc3":1'),  # inside an unknown key (a cut-off two-byte sequence)
        trade(b',"note":"\xed\xa0\x80"'),  # a surrogate written as UTF-8
        trade(b',"note":"\xc0\xaf"'),  # an overlong "/"
        GOOD.replace(b'"p"', b'"p\xff"') + b"}",  # in src itself
    ],
)
def test_invalid_utf8_anywhere_is_not_utf8(frame: bytes) -> None:
    assert outcome(frame) == ([], ["not_utf8"])
    # In a batch it refuses the whole frame: the bytes, not one item, break the rule.
    assert outcome(b"[" + trade() + b"," + frame + b"]") == ([], ["not_utf8"])


def test_valid_utf8_in_an_unknown_field_is_fine() -> None:
    events, rejects = outcome(trade(',"note":"café ✓"'.encode()))
    assert len(events) == 1 and not rejects


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (b'"qty":-1', b'"qty":2'),  # the last is good: it does not win
        (b'"qty":2', b'"qty":-1'),  # the first is good: it does not win either
        (b'"side":"buy"', b'"side":"sell"'),  # both good: still no guessing
        (b'"seq":1', b'"s\\u0065q":2'),  # the same key once unescaped
        (b'"type":"trade"', b'"type":"trade"'),
    ],
)
def test_duplicate_keys_are_refused_whichever_value_is_good(first: bytes, last: bytes) -> None:
    frame = b'{"type":"trade","side":"buy","qty":1,"ts":1700000000,' + first + b"," + last + b"}"
    assert outcome(frame) == ([], ["duplicate_key"])
    # In a batch, the item alone: the good items around it still count.
    batch = b"[" + trade() + b"," + frame + b"," + trade() + b"]"
    events, rejects = outcome(batch)
    assert len(events) == 2 and rejects == ["duplicate_key"]


def test_duplicate_keys_deep_inside_an_unknown_field_are_refused_too() -> None:
    assert outcome(trade(b',"x":[{"a":1,"b":{"c":1,"c":2}}]')) == ([], ["duplicate_key"])
    # Equal keys in different objects are not duplicates.
    events, _ = outcome(trade(b',"x":[{"a":1},{"a":1}],"y":{"a":1}'))
    assert len(events) == 1


def nested(depth: int) -> bytes:
    """A trade whose unknown field makes the frame exactly ``depth`` levels deep."""
    inner = depth - 1  # the trade object itself is level 1
    return trade(b',"x":' + b"[" * inner + b"]" * inner)


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH - 1, MAX_NESTING_DEPTH])
def test_nesting_up_to_the_limit_decodes(depth: int) -> None:
    events, rejects = outcome(nested(depth))
    assert len(events) == 1 and not rejects
    events, rejects = outcome(b"[" + nested(depth - 1) + b"]")  # the batch adds a level
    assert len(events) == 1 and not rejects


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 500, 5000, 100_000])
def test_nesting_beyond_the_limit_is_malformed_json(depth: int) -> None:
    assert outcome(nested(depth)) == ([], ["malformed_json"])
    assert outcome(b"[" + nested(depth) + b"]") == ([], ["malformed_json"])
    assert outcome(b"[" * depth + b"]" * depth) == ([], ["malformed_json"])


def brackets(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("extra", "decodes"),
    [
        (b',"note":"' + b"[" * 100 + b'"', True),  # brackets in a string do not nest
        (b',"note":"' + b"{" * 50 + b"]" * 50 + b'"', True),
        (b',"note":"\\"' + b"[" * 100 + b'"', True),  # after an escaped quote: still inside
        (b',"' + b"[" * 40 + b'":1', True),  # in a key
        # An escaped backslash does not escape the quote after it: the string ends there.
        (b',"note":"' + b"[" * 10 + b'\\\\","x":' + brackets(MAX_NESTING_DEPTH - 1), True),
        (b',"note":"' + b"[" * 10 + b'\\\\","x":' + brackets(MAX_NESTING_DEPTH), False),
        (b',"note":"\\"]]]]' + b"[" * 10 + b'","x":' + brackets(MAX_NESTING_DEPTH - 1), True),
        (b',"note":"\\"]]]]' + b"[" * 10 + b'","x":' + brackets(MAX_NESTING_DEPTH), False),
        (b',"x":{"a":' + brackets(MAX_NESTING_DEPTH - 2) + b"}", True),  # objects count too
        (b',"x":{"a":' + brackets(MAX_NESTING_DEPTH - 1) + b"}", False),
    ],
)
def test_only_brackets_outside_strings_nest(extra: bytes, decodes: bool) -> None:
    events, rejects = outcome(trade(extra))
    assert (len(events), rejects) == ((1, []) if decodes else (0, ["malformed_json"]))


@pytest.mark.parametrize(
    ("extra", "duplicate"),
    [
        (b',"x":{"k\\"":1,"k\\u0022":2}', True),  # both are k"
        (b',"x":{"k\\\\":1,"k\\"":2}', False),  # k\ and k"
        (b',"x":[{"a":1},{"b":{"c":[1,{"d":1,"d":1}]}}]', True),
        (b',"x":[{"d":1},{"d":1}],"d":{"d":{"d":1}}', False),  # same key, other objects
    ],
)
def test_duplicates_compare_unescaped_keys_in_every_object(extra: bytes, duplicate: bool) -> None:
    events, rejects = outcome(trade(extra))
    assert (len(events), rejects) == ((0, ["duplicate_key"]) if duplicate else (1, []))
    events, rejects = outcome(b"[" + trade() + b"," + trade(extra) + b"]")
    assert (len(events), rejects) == ((1, ["duplicate_key"]) if duplicate else (2, []))


def at_stack_depth(spare: int, call: Callable[[], object]) -> object:
    """``call()`` run with only ``spare`` Python frames left before the recursion limit."""
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]

    def dive(n: int) -> object:
        return call() if n <= 0 else dive(n - 1)

    return dive(sys.getrecursionlimit() - depth - spare)


def in_small_thread(call: Callable[[], object]) -> object:
    result: list[object] = []
    old = threading.stack_size(1024 * 1024)
    try:
        worker = threading.Thread(target=lambda: result.append(call()))
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old)
    return result[0]


@pytest.mark.parametrize("depth", [3, MAX_NESTING_DEPTH, MAX_NESTING_DEPTH + 1, 300, 900])
def test_the_answer_does_not_depend_on_the_callers_stack(depth: int) -> None:
    """Once: 1 trade from a script, 0 trades + malformed_json inside the sidecar."""
    frame = b"[" + nested(depth - 1) + b"," + trade() + b"]"

    def answer() -> object:
        return outcome(frame)

    here = answer()
    assert at_stack_depth(60, answer) == here
    assert in_small_thread(answer) == here
    if depth <= MAX_NESTING_DEPTH:
        assert len(here[0]) == 2  # type: ignore[index]
    else:
        assert here == ([], ["malformed_json"])


def deep_duplicate(duplicate: bool) -> bytes:
    """A trade MAX_NESTING_DEPTH deep whose innermost object repeats a key (or not)."""
    inner = MAX_NESTING_DEPTH - 2
    core = b'{"d":1,"d":2}' if duplicate else b'{"d":1}'
    return trade(b',"x":' + b"[" * inner + core + b"]" * inner)


def test_a_caller_at_the_edge_of_the_stack_gets_an_answer_never_a_recursion_error() -> None:
    """Within a few dozen frames of the recursion limit msgspec and json run out of stack
    on frames the depth check let through. Such a frame is ``malformed_json`` ("nesting
    too deep"): never a RecursionError out of the decoder, and never a repeated key let
    through because json could not look (it was, before). The sidecar's loop has
    hundreds of frames to spare; every Python frame the decoder needs for a frame of
    depth 1 on its exact path is measured first, so the scan starts where the decoder
    itself fits."""

    def answer(frame: bytes) -> Callable[[], object]:
        def call() -> object:
            try:
                decoded = decode(frame, NOW)
            except InvalidMessage as exc:
                return str(exc)
            except RecursionError:
                return "RecursionError"
            return f"{len(decoded.events)} events"

        return call

    def fits(spare: int) -> bool:
        try:  # the harness itself may not fit (C calls count towards the limit too)
            return at_stack_depth(spare, answer(trade(b',"x":{"d":1,"d":2}'))) != "RecursionError"
        except RecursionError:
            return False

    base = next(spare for spare in range(8, 400) if fits(spare))
    seen: dict[bool, set[object]] = {True: set(), False: set()}
    for spare in range(base, base + 100, 2):
        for duplicate in (True, False):
            seen[duplicate].add(at_stack_depth(spare, answer(deep_duplicate(duplicate))))
    too_deep = "malformed_json: nesting too deep"
    assert seen[True] <= {too_deep, f"duplicate_key: {DUPLICATE_DETAIL}"}, seen
    assert seen[False] <= {too_deep, "1 events"}, seen
    assert "1 events" in seen[False] and f"duplicate_key: {DUPLICATE_DETAIL}" in seen[True]
    if sys.version_info < (3, 12):  # C recursion (msgspec's, json's) counts to the limit
        assert too_deep in seen[True] and too_deep in seen[False], seen


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (b"side", b"1e309", Reason.WRONG_TYPE),
        (b"side", b"-1e309", Reason.WRONG_TYPE),
        (b"side", b"9" * 400, Reason.WRONG_TYPE),
        (b"src", b"1e309", Reason.WRONG_TYPE),
        (b"src", b"true", Reason.WRONG_TYPE),
        (b"type", b"1e309", Reason.WRONG_TYPE),
        (b"seq", b"1e309", Reason.WRONG_TYPE),  # not an integer literal, as 1.5 is not
        (b"epoch", b"-1e309", Reason.WRONG_TYPE),
        (b"qty", b"1e309", Reason.INVALID_QTY),  # a number field: out of range
        (b"ts", b"1e309", Reason.INVALID_TS),
    ],
)
def test_non_string_values_of_string_fields_are_wrong_type(
    field: bytes, value: bytes, reason: Reason
) -> None:
    frame = b'{"type":"trade","side":"buy","qty":1,"ts":1700000000,"src":"p","seq":1,"epoch":0}'
    start = frame.index(b'"%s":' % field) + len(field) + 3
    end = min(i for i in (frame.find(b",", start), frame.find(b"}", start)) if i >= 0)
    bad = frame[:start] + value + frame[end:]
    assert outcome(bad) == ([], [reason.value])
    events, rejects = outcome(b"[" + trade() + b"," + bad + b"]")  # an item: same reason
    assert len(events) == 1 and rejects == [reason.value]


def test_fast_path_keeps_plain_frames_exact() -> None:
    """The plain-frame test does not send good frames the slow way for no reason: the
    publisher's own frames and msgspec's come out as the same Trade either way."""
    one = Trade("sell", 2.5, NOW, "desk-1", 7, stream=3, epoch=1)
    frame = b'{"type":"trade","side":"sell","qty":2.5,"ts":1700000000.0,"src":"desk-1",'
    frame += b'"seq":7,"stream":3,"epoch":1}'
    assert outcome(frame) == ([one], [])
    assert outcome(b"[" + frame + b"," + frame + b"]") == ([one, one], [])
