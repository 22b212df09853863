"""Bytes on the wire: one UTF-8 JSON object per single-part ZeroMQ frame.

Serialization is a pair of plain functions (pyzmq's serialization guide): ``send_json``
would re-run ``json.dumps`` with its generic machinery on every call, while the trade
layout is fixed, so the encoder formats it directly from pre-built pieces. The decoder
is strict and total: any frame either becomes a typed event or raises
:class:`InvalidMessage` with a reason from the closed :class:`Reason` set.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from typing import Any, Final

from telemetry_contract.errors import InvalidMessage, Reason
from telemetry_contract.events import (
    BENCH_MODES,
    LABEL_VALUE_PATTERN,
    MAX_SOURCE_LEN,
    SIDES,
    BenchmarkResult,
    BenchMode,
    Event,
    Side,
    TradeEvent,
)

#: Frames above this are refused; the sidecar also hands it to ZMQ as MAXMSGSIZE.
MAX_FRAME_BYTES: Final = 64 * 1024

_FLOAT_MAX: Final = sys.float_info.max
_PREFIX: Final[dict[str, str]] = {
    side: f'{{"type":"trade","side":"{side}","qty":' for side in SIDES
}


def _check_side(side: str) -> str:
    try:
        return _PREFIX[side]
    except (KeyError, TypeError):
        raise ValueError(f"side must be one of {SIDES}, got {side!r}") from None


def _check_number(name: str, value: float) -> float:
    number = float(value)
    # A chained comparison is False for NaN as well as for out-of-range values.
    if not 0.0 <= number <= _FLOAT_MAX:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


class TradeEncoder:
    """Encodes trades for one publisher, with its ``src`` escaped once up front.

    The publisher's hot path calls this per event, so everything that does not change
    per event (the JSON prefix per side, the escaped source id) is built here once.
    """

    __slots__ = ("_suffix",)

    def __init__(self, src: str | None) -> None:
        if src is None:
            self._suffix = ""
        else:
            _check_source(src)
            self._suffix = f',"src":{json.dumps(src)},"seq":'

    def __call__(self, side: str, qty: float, ts: float, seq: int | None = None) -> bytes:
        prefix = _check_side(side)
        qty = _check_number("qty", qty)
        ts = _check_number("ts", ts)
        if seq is None or not self._suffix:
            return f'{prefix}{qty!r},"ts":{ts!r}}}'.encode()
        return f'{prefix}{qty!r},"ts":{ts!r}{self._suffix}{seq:d}}}'.encode()


def _check_source(src: str) -> None:
    if not isinstance(src, str) or not 0 < len(src) <= MAX_SOURCE_LEN:
        raise ValueError(f"src must be a string of 1..{MAX_SOURCE_LEN} characters, got {src!r}")


def encode_trade(
    side: str, qty: float, ts: float, src: str | None = None, seq: int | None = None
) -> bytes:
    """Encode one trade; raises ``ValueError`` for anything the decoder would refuse."""
    if src is None:
        if seq is not None:
            raise ValueError("seq is only meaningful together with src")
        return TradeEncoder(None)(side, qty, ts)
    return TradeEncoder(src)(side, qty, ts, seq)


def encode(event: Event) -> bytes:
    """Encode a typed event (validated exactly as the decoder would)."""
    if isinstance(event, BenchmarkResult):
        frame = json.dumps(
            {"type": "benchmark", **dataclasses.asdict(event)}, separators=(",", ":")
        ).encode()
        decode(frame)  # refuse to emit what the sidecar would reject
        return frame
    return encode_trade(event.side, event.qty, event.ts, event.src, event.seq)


def _number(obj: dict[str, Any], name: str, invalid: Reason) -> float:
    if name not in obj:
        raise InvalidMessage(Reason.MISSING_FIELD, f"field {name!r} is missing")
    value = obj[name]
    kind = type(value)
    if kind is float:
        number: float = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:
            raise InvalidMessage(invalid, f"{name} {value} does not fit a float") from None
    else:
        raise InvalidMessage(Reason.WRONG_TYPE, f"{name} must be a number, got {kind.__name__}")
    if not 0.0 <= number <= _FLOAT_MAX:
        raise InvalidMessage(invalid, f"{name} must be finite and >= 0, got {value!r}")
    return number


def _decode_trade(obj: dict[str, Any]) -> TradeEvent:
    side = obj.get("side")
    if side not in _PREFIX:
        if side is None:
            raise InvalidMessage(Reason.MISSING_FIELD, "field 'side' is missing")
        if not isinstance(side, str):
            raise InvalidMessage(Reason.WRONG_TYPE, f"side must be a string, got {side!r}")
        raise InvalidMessage(Reason.INVALID_SIDE, f"side must be one of {SIDES}, got {side!r}")
    qty = _number(obj, "qty", Reason.INVALID_QTY)
    ts = _number(obj, "ts", Reason.INVALID_TS)
    src = obj.get("src")
    seq = obj.get("seq")
    if src is not None and (type(src) is not str or not 0 < len(src) <= MAX_SOURCE_LEN):
        raise InvalidMessage(
            Reason.INVALID_SRC, f"src must be a string of 1..{MAX_SOURCE_LEN} characters"
        )
    if seq is not None and (type(seq) is not int or seq < 0):
        raise InvalidMessage(Reason.INVALID_SEQ, f"seq must be an integer >= 0, got {seq!r}")
    checked_side: Side = side
    return TradeEvent(checked_side, qty, ts, src, seq)


_LABEL_VALUE: Final = re.compile(LABEL_VALUE_PATTERN)
_BENCH_INTS: Final = ("events", "sent", "dropped", "received", "lost")
_BENCH_FLOATS: Final = (
    "elapsed_s", "rate", "target_rate", "p50_us", "p90_us", "p99_us", "p999_us", "max_us",
    "started_at", "finished_at",
)  # fmt: skip


def _decode_benchmark(obj: dict[str, Any]) -> BenchmarkResult:
    fields: dict[str, Any] = {}
    for name in ("run_id", "variant"):
        text = obj.get(name)
        if text is None:
            raise InvalidMessage(Reason.MISSING_FIELD, f"field {name!r} is missing")
        if type(text) is not str or not _LABEL_VALUE.fullmatch(text):
            raise InvalidMessage(
                Reason.INVALID_BENCHMARK, f"{name} must match {LABEL_VALUE_PATTERN}"
            )
        fields[name] = text
    mode = obj.get("mode")
    if mode not in BENCH_MODES:
        raise InvalidMessage(Reason.INVALID_BENCHMARK, f"mode must be one of {BENCH_MODES}")
    checked_mode: BenchMode = mode
    for name in _BENCH_INTS:
        count = obj.get(name)
        if count is None:
            raise InvalidMessage(Reason.MISSING_FIELD, f"field {name!r} is missing")
        if type(count) is not int:
            raise InvalidMessage(Reason.WRONG_TYPE, f"{name} must be an integer")
        if count < -1:
            raise InvalidMessage(Reason.INVALID_BENCHMARK, f"{name} must be >= -1")
        fields[name] = count
    for name in _BENCH_FLOATS:
        fields[name] = _number(obj, name, Reason.INVALID_BENCHMARK)
    return BenchmarkResult(mode=checked_mode, **fields)


def decode(frame: bytes) -> Event:
    """Turn one frame into a typed event or raise :class:`InvalidMessage`.

    The UTF-8 decode is explicit because ``json.loads`` on bytes would silently accept
    UTF-16 and UTF-32 too, which the contract does not allow.
    """
    if len(frame) > MAX_FRAME_BYTES:
        raise InvalidMessage(Reason.OVERSIZE, f"{len(frame)} bytes > {MAX_FRAME_BYTES}")
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(Reason.NOT_UTF8, str(exc)) from None
    try:
        obj = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and int-string limits
        raise InvalidMessage(Reason.MALFORMED_JSON, str(exc)) from None
    except RecursionError:
        raise InvalidMessage(Reason.MALFORMED_JSON, "nesting too deep") from None
    if type(obj) is not dict:
        raise InvalidMessage(Reason.NOT_OBJECT, f"expected an object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "trade":
        return _decode_trade(obj)
    if kind == "benchmark":
        return _decode_benchmark(obj)
    if kind is None:
        raise InvalidMessage(Reason.MISSING_FIELD, "field 'type' is missing")
    if not isinstance(kind, str):
        raise InvalidMessage(Reason.WRONG_TYPE, f"type must be a string, got {kind!r}")
    raise InvalidMessage(Reason.UNKNOWN_TYPE, f"unknown type {kind[:40]!r}")
