"""What the JSON decoder checks that msgspec does not: nesting depth and repeated keys.

msgspec skips unknown keys without looking inside them, keeps the last of two equal
keys, and recurses as deep as the interpreter's stack allows. The contract refuses
repeated keys (``duplicate_key``) and nesting past ``MAX_NESTING_DEPTH``
(``malformed_json``) whatever the caller's stack, so :mod:`telemetry_contract.codec`
asks this module before trusting a frame it did not take by the plain-frame test:
:func:`too_deep` counts brackets with byte-level C passes before any parser recurses,
and :func:`has_duplicate` lets the stdlib parser hand over every (key, value) pair.
The quote counts here are also the plain-frame test itself (:func:`trade_quotes`).
"""

from __future__ import annotations

import json
import re
from typing import Final

from telemetry_contract.errors import InvalidMessage
from telemetry_contract.events import BenchmarkResult, Event, Trade
from telemetry_contract.transport import MAX_NESTING_DEPTH


def trade_quotes(trade: Trade) -> int:
    """The ``"`` a single trade object holds when each key is there once and nothing else is.

    ``type``, ``side``, ``qty``, ``ts`` and one key per optional field that is set, plus
    the string values ``"trade"``, the side and ``src``: two quotes per string.
    """
    return (
        12
        + (4 if trade.src is not None else 0)
        + (2 if trade.seq is not None else 0)
        + (2 if trade.stream is not None else 0)
        + (2 if trade.epoch is not None else 0)
    )


#: 19 keys and 4 string values (type, run_id, mode, variant): every field is required.
BENCH_QUOTES: Final = 2 * (19 + 4)
#: How every item of the batches the publisher and encode_batch write begins.
ITEM_START: Final = b'{"type":"trade"'


DUPLICATE_DETAIL: Final = "an object names the same key twice (at any depth)"

_OPENING: Final = re.compile(rb"[ \t\n\r\[{]*")
#: Every byte but the brackets and the quote, for ``bytes.translate`` to delete.
_NOT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'[]{}"')
_UNIFY: Final = bytes.maketrans(b"{}", b"[]")


def _nested_within(depth: int) -> re.Pattern[bytes]:
    """A regex for a run of balanced ``[...]`` groups at most ``depth`` deep.

    Built level by level (a group of depth k holds groups of depth k - 1), each
    repetition possessive: balanced brackets parse one way only, so nothing is lost by
    never backtracking, and a run too deep fails as soon as it reaches level depth + 1.
    """
    group = rb"\[\]"
    for _ in range(depth - 1):
        group = rb"\[(?:" + group + rb")*+\]"
    return re.compile(rb"(?:" + group + rb")*+")


_WITHIN_DEPTH: Final = _nested_within(MAX_NESTING_DEPTH)


def too_deep(data: bytes) -> bool:
    """True when ``data`` nests arrays/objects deeper than MAX_NESTING_DEPTH.

    Our own count, before any parser recurses: the limit is the same on every stack.
    Fewer brackets than the limit cannot nest deeper (the common case: two counts).
    Else the brackets outside strings are kept (``{}`` as ``[]``) and matched against
    :func:`_nested_within`. To find them: escaped backslashes, then escaped quotes, are
    removed (so every quote left opens or closes a string), only brackets and quotes are
    kept, and every other piece between quotes is outside a string. Byte-level C
    passes only, linear in the frame's size. What does not match is too deep or
    unbalanced, malformed either way.
    """
    if data.count(b"[") + data.count(b"{") <= MAX_NESTING_DEPTH:
        return False
    lead = _OPENING.match(data)
    assert lead is not None  # the pattern also matches nothing
    if len(lead.group().translate(None, b" \t\n\r")) > MAX_NESTING_DEPTH:
        return True  # "[[[[..." (the usual attack) fails here, without a pass over it all
    if 92 in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(data.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    return _WITHIN_DEPTH.fullmatch(outside.translate(_UNIFY)) is None


class _Duplicate(Exception):
    """Raised from inside ``json.loads`` at the first object with a repeated key."""


def _unique_pairs(pairs: list[tuple[str, object]]) -> None:
    if len(pairs) > 1 and len({key for key, _ in pairs}) != len(pairs):
        raise _Duplicate


def _skip_number(text: str) -> None:
    """Numbers play no part in finding duplicate keys (and a 5,000-digit int would
    hit Python's int-string limit)."""


def has_duplicate(data: bytes, decoded: Event | InvalidMessage) -> bool:
    """Does any object in ``data`` (valid JSON, UTF-8, depth-checked) repeat a key?

    A decoded trade or benchmark row whose bytes pass the plain-frame test of
    :func:`decode_frames` has none; otherwise the stdlib parser, which hands over every
    (key, value) pair in order, looks at every object at every depth. Keys compare
    after unescaping, as msgspec matches them (``"t\\u0079pe"`` is ``type``). A
    ``RecursionError`` (only at the edge of the caller's stack) is the caller's to
    handle: this function cannot say "no" when it could not look.
    """
    if data.isascii() and 92 not in data:
        if isinstance(decoded, Trade) and data.startswith(ITEM_START):
            if data.count(34) == trade_quotes(decoded):
                return False
        elif isinstance(decoded, BenchmarkResult) and data.count(34) == BENCH_QUOTES:
            return False
    try:
        json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique_pairs,
            parse_int=_skip_number,
            parse_float=_skip_number,  # no parse_constant: msgspec refused NaN/Infinity
        )
    except _Duplicate:
        return True
    except ValueError:  # not seen: msgspec found it to be JSON, and its word stands
        return False
    return False
