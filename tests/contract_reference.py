"""A second reading of docs/contract.md: what the decoder must do, written without it.

The differential fuzz test (tests/unit/contract/test_codec_fuzz.py) runs every frame
through this and through ``telemetry_contract.codec`` and fails on any disagreement, in
the decision or in the reject reason. So this module must not share code with the
codec: it parses with the standard library's ``json`` (keeping every key/value pair and
every number's spelling) and applies the rules as the page states them, in the order
the page gives ("The order of the checks"). The numbers are the page's; only
the closed sets of the benchmark row (long lists of names) are imported as data.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from telemetry_contract.events import BENCH_MODES, BENCH_VARIANTS

MAX_FRAME_BYTES = 512 * 1024
MAX_BATCH_ITEMS = 1024
MAX_DEPTH = 32
MAX_QTY = 1e15
MIN_TS = 946_684_800.0
AHEAD_S = 86_400.0
MAX_INT = 2**53 - 1
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
COUNTS = ("events", "sent", "dropped", "received", "lost")
MEASURES = ("elapsed_s", "rate", "target_rate", "p50_us", "p90_us", "p99_us", "p999_us",
            "max_us", "started_at", "finished_at")  # fmt: skip
TRADE_FIELDS: tuple[str, ...] = ("type", "side", "qty", "ts", "src", "seq", "stream", "epoch")
BENCH_FIELDS: tuple[str, ...] = ("type", "run_id", "mode", "variant", *COUNTS, *MEASURES)


@dataclass(frozen=True)
class Num:
    """A JSON number as written: its kind (integer literal or not) decides some reasons."""

    text: str

    @property
    def integer(self) -> bool:
        return not any(c in self.text for c in ".eE")


@dataclass(frozen=True)
class Obj:
    """A JSON object with every (key, value) pair, duplicates and order kept."""

    pairs: tuple[tuple[str, Any], ...]


class Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: One outcome per object: the event's fields (a dict) or the reject reason (a str).
Outcome = dict[str, Any] | str


def check(frame: bytes, now: float) -> str | list[Outcome]:
    """The reason the whole frame is refused, or one outcome per event/item, in order."""
    try:
        return _frame(frame, now)
    except Reject as exc:
        return exc.reason


#: What :func:`check` answers for a columnar (MessagePack) frame: this reference reads the
#: JSON formats only; tests/unit/contract/test_frames.py holds the columnar frame's rules.
COLUMNAR = "columnar"
#: First bytes of a MessagePack map (docs/contract.md: never the start of UTF-8 JSON).
_MSGPACK_MAP_LEADS = frozenset((*range(0x80, 0x90), 0xDE, 0xDF))


def _frame(frame: bytes, now: float) -> list[Outcome]:
    if len(frame) > MAX_FRAME_BYTES:
        raise Reject("oversize")
    if frame and frame[0] in _MSGPACK_MAP_LEADS:
        raise Reject(COLUMNAR)
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("not_utf8") from None
    if _depth_exceeds(text, MAX_DEPTH):
        raise Reject("malformed_json")
    value = _parse(text)
    if isinstance(value, Obj):
        outcome = _object(value, now, in_batch=False)
        if isinstance(outcome, str):  # a bad single object refuses its frame
            raise Reject(outcome)
        return [outcome]
    if not isinstance(value, list):
        raise Reject("not_object")
    if len(value) > MAX_BATCH_ITEMS:
        raise Reject("batch_too_large")
    return [_object(v, now, in_batch=True) if isinstance(v, Obj) else "not_object" for v in value]


def _depth_exceeds(text: str, limit: int) -> bool:
    """Arrays/objects nested deeper than ``limit``, brackets inside strings not counted."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> None:
    raise Reject("malformed_json")  # NaN, Infinity, -Infinity are not JSON


def _parse(text: str) -> Any:
    try:
        value = json.loads(
            text,
            object_pairs_hook=lambda pairs: Obj(tuple(pairs)),
            parse_int=Num,
            parse_float=Num,
            parse_constant=_no_constant,
        )
    except ValueError:
        raise Reject("malformed_json") from None
    # "\ud800" alone names no character: not a JSON text. Only an escape can write one
    # (strict UTF-8 has no surrogates), so the walk runs only when the text has one.
    if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(value):
        raise Reject("malformed_json")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, Obj):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.pairs)
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def _duplicate(value: Any) -> bool:
    if isinstance(value, Obj):
        keys = [k for k, _ in value.pairs]
        return len(set(keys)) != len(keys) or any(_duplicate(v) for _, v in value.pairs)
    if isinstance(value, list):
        return any(_duplicate(v) for v in value)
    return False


def _object(obj: Obj, now: float, *, in_batch: bool) -> Outcome:
    try:
        return _fields(obj, now, in_batch)
    except Reject as exc:
        return exc.reason


def _fields(obj: Obj, now: float, in_batch: bool) -> dict[str, Any]:
    if _duplicate(obj):
        raise Reject("duplicate_key")
    values = dict(obj.pairs)
    if in_batch:
        kind, known = "trade", TRADE_FIELDS  # type optional; checked in order below
    else:
        if "type" not in values:
            raise Reject("missing_field")
        kind = values["type"]
        if not isinstance(kind, str):
            raise Reject("wrong_type")
        if kind not in ("trade", "benchmark"):
            raise Reject("unknown_type")
        known = TRADE_FIELDS if kind == "trade" else BENCH_FIELDS
    event: dict[str, Any] = {"type": kind}
    for key, value in obj.pairs:  # document order: the first broken field names the reason
        if key in known:
            checked = _field(kind, key, value, in_batch)
            if checked is not None:
                event[key] = checked
    required = ("side", "qty", "ts") if kind == "trade" else BENCH_FIELDS[1:]
    if any(name not in event for name in required):
        raise Reject("missing_field")
    if kind == "trade":
        _after_fields(event, now)
    return event


def _field(kind: str, key: str, value: Any, in_batch: bool) -> Any:
    if key == "type":
        if not isinstance(value, str):
            raise Reject("wrong_type")
        if value != kind:
            raise Reject("batch_item_not_trade" if value == "benchmark" else "unknown_type")
        return value
    if kind == "benchmark":
        return _bench_field(key, value)
    if key == "side":
        if not isinstance(value, str):
            raise Reject("wrong_type")
        if value not in ("buy", "sell"):
            raise Reject("invalid_side")
        return value
    if key in ("qty", "ts"):
        number = _float(value)
        low, high = (0.0, MAX_QTY) if key == "qty" else (MIN_TS, math.inf)
        if not low <= number <= high or math.isinf(number):
            raise Reject(f"invalid_{key}")
        return number
    if value is None:  # an optional field written as null is absent
        return None
    if key == "src":
        if not isinstance(value, str):
            raise Reject("wrong_type")
        if not 1 <= len(value) <= 64:
            raise Reject("invalid_src")
        return value
    return _int(value, 0, f"invalid_{key}")  # seq, stream, epoch


def _float(value: Any) -> float:
    if not isinstance(value, Num):
        raise Reject("wrong_type")
    return float(value.text)  # 1e309 -> inf: out of range, not a wrong type


def _int(value: Any, low: int, reason: str) -> int:
    if not isinstance(value, Num) or not value.integer:
        raise Reject("wrong_type")  # 1.5, 1e3, 1e309: not an integer literal
    number = int(value.text)
    if not low <= number <= MAX_INT:
        raise Reject(reason)
    return number


def _bench_field(key: str, value: Any) -> Any:
    if key in ("run_id", "mode", "variant"):
        if not isinstance(value, str):
            raise Reject("wrong_type")
        ok = {
            "run_id": RUN_ID.fullmatch(value) is not None,
            "mode": value in BENCH_MODES,
            "variant": value in BENCH_VARIANTS,
        }[key]
        if not ok:
            raise Reject("invalid_benchmark")
        return value
    if key in COUNTS:
        return _int(value, -1, "invalid_benchmark")
    number = _float(value)
    if not 0.0 <= number <= 1e300:
        raise Reject("invalid_benchmark")
    return number


def _after_fields(event: dict[str, Any], now: float) -> None:
    """The two checks that come after every field is read: ts against the clock, then src."""
    ts, horizon = event["ts"], now + AHEAD_S
    if ts > horizon:
        for reason, factor in (("ts_milliseconds", 1e3), ("ts_microseconds", 1e6),
                               ("ts_nanoseconds", 1e9)):  # fmt: skip
            if MIN_TS * factor <= ts <= horizon * factor:
                raise Reject(reason)
        raise Reject("invalid_ts")
    src = event.get("src")
    if src is not None and not all(" " <= c <= "~" for c in src):
        raise Reject("invalid_src")
