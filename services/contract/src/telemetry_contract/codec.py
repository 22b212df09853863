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
import time
from collections.abc import Callable
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

#: Trades whose ``src`` starts with this are benchmark traffic: the sidecar counts them
#: apart (``telemetry_benchmark_*`` series) so a benchmark Job pointed at a production
#: sidecar never shows up as trades on the trading dashboard. One place, so the
#: benchmark that writes it and the sidecar that reads it cannot disagree.
BENCH_SOURCE_PREFIX: Final = "bench-"
#: The same prefix as the bytes the sidecar's fast path compares against.
BENCH_SOURCE_PREFIX_BYTES: Final = BENCH_SOURCE_PREFIX.encode("ascii")


def is_bench_source(src: str | None) -> bool:
    """Whether a trade with this ``src`` is benchmark traffic (no ``src``: never)."""
    return src is not None and src.startswith(BENCH_SOURCE_PREFIX)


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
    :attr:`now` is that hot path (see :func:`_now_encoder`).
    """

    __slots__ = ("_suffix", "now")

    def __init__(self, src: str | None) -> None:
        if src is None:
            self._suffix = ""
        else:
            _check_source(src)
            self._suffix = f',"src":{json.dumps(src)},"seq":'
        #: ``now(side, qty, seq) -> bytes``: a trade stamped with the current time.
        self.now = _now_encoder(self, self._suffix.encode())

    def __call__(self, side: str, qty: float, ts: float, seq: int | None = None) -> bytes:
        prefix = _check_side(side)
        qty = _check_number("qty", qty)
        ts = _check_number("ts", ts)
        if seq is None or not self._suffix:
            return f'{prefix}{qty!r},"ts":{ts!r}}}'.encode()
        return f'{prefix}{qty!r},"ts":{ts!r}{self._suffix}{seq:d}}}'.encode()


_BPREFIX: Final[dict[str, bytes]] = {side: prefix.encode() for side, prefix in _PREFIX.items()}


def _now_encoder(encoder: TradeEncoder, suffix: bytes) -> Callable[[str, float, int], bytes]:
    """The per-event encoder for "now": a closure, so every lookup is a local one.

    ``ts`` is ``time.time_ns()`` written as the JSON number ``<ns>e-9``: one integer
    format, where ``repr`` of a float timestamp costs three times as much, and it still
    parses to the same epoch-seconds float (any JSON parser, and the sidecar's fast
    path). The frame is one bytes ``%`` format, not a str built and then encoded.
    Only a ``float`` qty in range takes this route; anything else (an int, a numeric
    string, a bad value) goes through the encoder's ``__call__``, which converts or
    raises exactly as before.
    """
    prefixes = _BPREFIX
    clock = time.time_ns
    highest = _FLOAT_MAX

    if suffix:

        def now(side: str, qty: float, seq: int) -> bytes:
            prefix = prefixes.get(side)
            if prefix is None or type(qty) is not float or not 0.0 <= qty <= highest:
                return encoder(side, qty, clock() / 1e9, seq)
            return b'%s%a,"ts":%de-9%s%d}' % (prefix, qty, clock(), suffix, seq)

    else:

        def now(side: str, qty: float, seq: int) -> bytes:
            prefix = prefixes.get(side)
            if prefix is None or type(qty) is not float or not 0.0 <= qty <= highest:
                return encoder(side, qty, clock() / 1e9, seq)
            return b'%s%a,"ts":%de-9}' % (prefix, qty, clock())

    return now


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


# The exact bytes TradeEncoder writes (no whitespace, fixed key order, ASCII src without
# escapes, JSON number grammar without a sign): such a frame means exactly what
# json.loads would make of it, so it can skip the generic parser. Numbers are bounded
# (20 integer digits, 20 fraction digits, 2 exponent digits), so they stay far below
# the float maximum and the whole frame far below MAX_FRAME_BYTES; anything else goes
# the general way and gets its precise reject reason. Possessive quantifiers: a
# mismatch fails at once instead of backtracking.
_NUMBER: Final = rb"((?:0|[1-9][0-9]{0,19}+)(?:\.[0-9]{1,20}+)?+(?:[eE][+-]?[0-9]{1,2}+)?+)"
_CANONICAL_TRADE: Final = re.compile(
    rb'\{"type":"trade","side":"(buy|sell)","qty":'
    + _NUMBER
    + rb',"ts":'
    + _NUMBER
    + rb'(?:,"src":"([ !#-\[\]-~]{1,%d}+)","seq":(0|[1-9][0-9]{0,17}+))?+\}' % MAX_SOURCE_LEN
).fullmatch
_SIDE_OF: Final[dict[bytes, Side]] = {b"buy": "buy", b"sell": "sell"}

#: ``fullmatch`` of that layout, for a consumer that converts in bulk (the sidecar).
#: Groups, all bytes: side (b"buy"/b"sell"), qty, ts, then src and seq (both None, or
#: ASCII src and a decimal seq). A match means: valid, and ``float()``/``int()``/
#: ``decode("ascii")`` of the groups give exactly what :func:`decode` would.
CANONICAL_TRADE_MATCH: Final = _CANONICAL_TRADE
#: The side names by their bytes, as matched above.
SIDE_OF_BYTES: Final = _SIDE_OF

#: (side, qty, ts, src, seq), what a TradeEvent holds, without building one.
TradeFields = tuple[Side, float, float, str | None, int | None]


def decode_canonical_trade(frame: bytes) -> TradeFields | None:
    """(side, qty, ts, src, seq) of a frame in the encoder's own layout, else ``None``.

    The sidecar's hot path: one regex match and the number conversions instead of
    ``json.loads`` plus a dataclass. ``None`` never means invalid, only "not the
    common case": the caller then uses :func:`decode`, which has the final word.
    """
    match = _CANONICAL_TRADE(frame)
    if match is None:
        return None
    side, qty, ts, src, seq = match.groups()
    if src is None:
        return _SIDE_OF[side], float(qty), float(ts), None, None
    return _SIDE_OF[side], float(qty), float(ts), src.decode("ascii"), int(seq)


def decode(frame: bytes) -> Event:
    """Turn one frame into a typed event or raise :class:`InvalidMessage`.

    The UTF-8 decode is explicit because ``json.loads`` on bytes would silently accept
    UTF-16 and UTF-32 too, which the contract does not allow.
    """
    fields = decode_canonical_trade(frame)
    if fields is not None:
        return TradeEvent(*fields)
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
