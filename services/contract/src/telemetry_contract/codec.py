"""Bytes on the wire: a JSON object, a JSON array of trades, or a columnar batch per frame.

Serialization is a pair of plain functions (pyzmq's serialization guide): :func:`encode`
and :func:`decode`; every layout is spelled in :mod:`telemetry_contract.frames` (its
encoders are re-exported here), including the columnar MessagePack batch. Decoding is
total: for any bytes, :func:`decode` returns the frame's
events (one, or every good item of a batch frame plus a reject per bad item), or raises
:class:`InvalidMessage` for a problem of the whole frame, with a reason from the closed
:class:`Reason` set. Nothing else escapes; a fuzz test holds it to that.

Two speeds, one layout. Good frames take msgspec's validating decoder once (parse,
check every ``Meta`` constraint, build the typed Struct: a few hundred ns) plus the
checks msgspec cannot do: ``ts`` against the receiver's clock, and three byte scans
proving the frame has no duplicate key, no unknown key and no invalid UTF-8 (see
:func:`decode_frames`). Any other frame goes the slow way, which checks UTF-8, depth
and duplicates itself, splits a batch into items and turns msgspec's error text into a
:class:`Reason`, in the order docs/contract.md gives; bad input is rare, so that may
cost what it costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

import msgspec
import msgspec.inspect

from telemetry_contract.errors import AT_FIELD, FIELD_REASON, WRONG_TYPE, InvalidMessage, Reason
from telemetry_contract.events import (
    MAX_TS_AHEAD_S,
    MIN_TS,
    BenchmarkResult,
    Event,
    Trade,
)
from telemetry_contract.frames import (
    COLUMNS_LEADS,
    TradeEncoder,
    decode_columns,
    encode_trade,
    join_batch,
)
from telemetry_contract.json_checks import (
    BENCH_QUOTES,
    DUPLICATE_DETAIL,
    ITEM_START,
    has_duplicate,
    too_deep,
    trade_quotes,
)
from telemetry_contract.transport import MAX_BATCH_ITEMS, MAX_FRAME_BYTES, MAX_NESTING_DEPTH

__all__ = [
    "BENCH_SOURCE_PREFIX",
    "MAX_BATCH_ITEMS",
    "MAX_FRAME_BYTES",
    "Decoded",
    "TradeEncoder",
    "decode",
    "decode_frames",
    "decode_into",
    "encode",
    "encode_batch",
    "encode_trade",
    "join_batch",
]

#: Trades whose ``src`` starts with this are benchmark traffic: the sidecar counts them
#: apart (``telemetry_benchmark_*`` series) so a benchmark Job pointed at a production
#: sidecar never shows up as trades on the trading dashboard. One place, so the
#: benchmark that writes it and the sidecar that reads it cannot disagree.
BENCH_SOURCE_PREFIX: Final = "bench-"


# ---------------------------------------------------------------------------- encode

_ENCODE: Final = msgspec.json.Encoder().encode


def encode(event: Event) -> bytes:
    """Encode a typed event, refusing what the decoder would refuse.

    Struct construction does not run the ``Meta`` constraints, so the frame is decoded
    once more here: a ``ValueError`` (an :class:`InvalidMessage`) instead of a frame the
    sidecar would count as invalid.
    """
    frame = _ENCODE(event)
    decode(frame)  # raises InvalidMessage for a whole-frame problem
    return frame


def encode_batch(trades: Sequence[Trade]) -> bytes:
    """Encode trades as one batch frame; ``ValueError`` if any of them is invalid."""
    frame = _ENCODE(list(trades))
    if not 0 < len(trades) <= MAX_BATCH_ITEMS:
        raise ValueError(f"a batch frame holds 1..{MAX_BATCH_ITEMS} trades, got {len(trades)}")
    rejects = decode(frame).rejects
    if rejects:
        raise rejects[0]
    return frame


# ---------------------------------------------------------------------------- decode

Buffer = bytes | bytearray | memoryview


class Decoded(NamedTuple):
    """What one frame carried: its good events in order, and one reject per bad item.

    ``rejects`` is empty except for a batch frame with bad items; a problem of the
    whole frame (not JSON, too big, a bad single object) raises instead.
    """

    events: list[Event]
    rejects: list[InvalidMessage]


_NO_REJECTS: Final[tuple[InvalidMessage, ...]] = ()

_FAST: Final = msgspec.json.Decoder(
    Trade | BenchmarkResult | list[Trade],  # one object, or a batch (length checked below)
).decode
#: One object of a single-object frame: ``type`` required, it picks the Struct.
_ONE: Final = msgspec.json.Decoder(Trade | BenchmarkResult).decode
#: One item of a batch being taken apart: a trade, ``type`` optional, as in ``_FAST``.
_ITEM: Final = msgspec.json.Decoder(Trade).decode
_SHAPE: Final = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, msgspec.Raw]).decode
_ANY: Final = msgspec.json.Decoder().decode


def decode_into(
    frame: Buffer, out: list[Event], now: float | None = None
) -> Sequence[InvalidMessage]:
    """Append the frame's events to ``out``; return the rejects of its bad batch items.

    The receiver's hot path: no result object per frame, and the common case is one
    msgspec call plus the ``ts`` horizon check and the plain-frame test (see
    :func:`decode_frames`). Raises :class:`InvalidMessage` for a whole-frame problem,
    exactly as :func:`decode`. ``now`` is the receiver's clock (epoch seconds; default:
    ``time.time()``).
    """
    if type(frame) is not bytes:
        frame = bytes(frame)
    if len(frame) > MAX_FRAME_BYTES:
        raise InvalidMessage(Reason.OVERSIZE, f"{len(frame)} bytes > {MAX_FRAME_BYTES}")
    horizon = (time.time() if now is None else now) + MAX_TS_AHEAD_S
    if frame and frame[0] in COLUMNS_LEADS:  # a columnar frame (MessagePack): one msgspec call
        decode_columns(frame, out, horizon)
        return _NO_REJECTS
    try:
        obj = _FAST(frame)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return _slow(frame, out, horizon)
    kind = type(obj)
    plain = frame.isascii() and 92 not in frame  # 92: no backslash, so no escaped quote
    if kind is Trade:
        src = obj.src
        if (
            obj.ts <= horizon
            and (src is None or (src.isascii() and src.isprintable()))
            and plain
            and frame.count(34) == trade_quotes(obj)
        ):
            out.append(obj)
            return _NO_REJECTS
    elif kind is BenchmarkResult:
        if plain and frame.count(34) == BENCH_QUOTES:
            out.append(obj)
            return _NO_REJECTS
    # Else a batch (list[Trade]).
    elif plain and len(obj) <= MAX_BATCH_ITEMS and frame.count(ITEM_START) == len(obj):
        quotes = 0
        for trade in obj:
            src = trade.src
            if trade.ts > horizon or (
                src is not None and not (src.isascii() and src.isprintable())
            ):
                break
            quotes += trade_quotes(trade)
        else:
            if frame.count(34) == quotes:
                out.extend(obj)
                return _NO_REJECTS
    return _slow(frame, out, horizon)  # anything doubtful: the exact path decides


def decode_frames(frames: Sequence[Buffer], out: list[Event], now: float) -> list[InvalidMessage]:
    """:func:`decode_into` for many frames at once: the receiver's hot loop.

    One Python call per chunk of frames instead of one per frame, with every lookup
    local: for a single-trade frame the work is one msgspec call, a type test, the
    ``ts`` horizon test, the printable test of a ``src`` not seen in the frame before,
    and the plain-frame test below. Anything else (a batch with a late ``ts``, a bad
    frame) goes through :func:`decode_into`, which has the final word. Whole-frame
    problems come back in the returned list, after the item rejects of earlier frames,
    in order.

    The plain-frame test is what lets msgspec's verdict stand. msgspec skips unknown
    keys without looking inside their strings (invalid UTF-8 there passes), keeps the
    last of two equal keys, and recurses as deep as the interpreter's stack allows. A
    frame that is ASCII, has no backslash (so every ``"`` opens or closes a string) and
    holds exactly the quotes of its decoded trades (:func:`trade_quotes`: one key per
    field set, the three string values) has none of those: each key is there once, there
    is no other key, so no nesting either. Every other frame takes the slow path, which
    checks all three itself. In a batch, each item must also begin with
    ``{"type":"trade"`` (so every item has its ``type`` key, which the count assumes).
    """
    fast = _FAST
    trade = Trade
    limit = MAX_FRAME_BYTES
    horizon = now + MAX_TS_AHEAD_S
    append = out.append
    rejects: list[InvalidMessage] = []
    checked = ""  # the last src found printable: consecutive frames repeat it
    leads = COLUMNS_LEADS
    for frame in frames:
        if type(frame) is not bytes:
            frame = bytes(frame)
        if frame and frame[0] in leads:
            if len(frame) <= limit:
                try:
                    decode_columns(frame, out, horizon)
                except InvalidMessage as exc:
                    rejects.append(exc)
                continue
        elif len(frame) <= limit and frame.isascii() and 92 not in frame:
            try:
                obj = fast(frame)
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                obj = None
            kind = type(obj)
            if kind is trade:
                src = obj.src
                if (
                    obj.ts <= horizon
                    and (src is None or src == checked or (src.isascii() and src.isprintable()))
                    and frame.count(34)
                    == (
                        12
                        + (4 if src is not None else 0)
                        + (2 if obj.seq is not None else 0)
                        + (2 if obj.stream is not None else 0)
                        + (2 if obj.epoch is not None else 0)
                    )
                ):
                    if src is not None:
                        checked = src
                    append(obj)
                    continue
            elif (
                kind is list and len(obj) <= MAX_BATCH_ITEMS and frame.count(ITEM_START) == len(obj)
            ):
                quotes = 0
                for item in obj:
                    src = item.src
                    if item.ts > horizon:
                        break
                    if src is not None and src != checked:
                        if not (src.isascii() and src.isprintable()):
                            break
                        checked = src
                    quotes += (
                        12
                        + (4 if src is not None else 0)
                        + (2 if item.seq is not None else 0)
                        + (2 if item.stream is not None else 0)
                        + (2 if item.epoch is not None else 0)
                    )
                else:
                    if frame.count(34) == quotes:
                        out.extend(obj)
                        continue
        try:
            rejects.extend(decode_into(frame, out, now))
        except InvalidMessage as exc:
            rejects.append(exc)
    return rejects


def decode(frame: Buffer, now: float | None = None) -> Decoded:
    """Turn one frame into its events, or raise :class:`InvalidMessage`."""
    events: list[Event] = []
    rejects = decode_into(frame, events, now)
    return Decoded(events, list(rejects))


def _slow(frame: bytes, out: list[Event], horizon: float) -> list[InvalidMessage]:
    """The precise reason for a frame the fast path did not take, in the documented order:
    UTF-8, nesting depth, JSON syntax, shape, batch size; then per object (the frame's,
    or each batch item's) duplicate keys, the fields, the ts horizon, src printable."""
    try:
        frame.decode("utf-8")
    except UnicodeDecodeError as exc:  # json would also take UTF-16/32; the contract not
        raise InvalidMessage(Reason.NOT_UTF8, str(exc)) from None
    if too_deep(frame):
        raise InvalidMessage(
            Reason.MALFORMED_JSON,
            f"nesting deeper than {MAX_NESTING_DEPTH} levels (or unbalanced brackets)",
        )
    try:
        shape = _SHAPE(frame)
    except msgspec.ValidationError:
        try:  # msgspec stops at the first value: "1 x" is not JSON, "1" not an object
            _ANY(frame)
        except msgspec.DecodeError as exc:
            raise InvalidMessage(Reason.MALFORMED_JSON, str(exc)) from None
        raise InvalidMessage(
            Reason.NOT_OBJECT, "a frame is a JSON object or an array of trade objects"
        ) from None
    except msgspec.DecodeError as exc:
        raise InvalidMessage(Reason.MALFORMED_JSON, str(exc)) from None
    except RecursionError:  # only when the caller itself is at the edge of the stack
        raise InvalidMessage(Reason.MALFORMED_JSON, _STACK_EDGE) from None
    if isinstance(shape, dict):
        event = _object(frame, _ONE, horizon)
        if isinstance(event, InvalidMessage):
            raise event
        out.append(event)
        return []
    if len(shape) > MAX_BATCH_ITEMS:
        raise InvalidMessage(
            Reason.BATCH_TOO_LARGE, f"{len(shape)} items > {MAX_BATCH_ITEMS} in one batch frame"
        )
    rejects: list[InvalidMessage] = []
    for index, raw in enumerate(shape):
        data = bytes(raw)  # msgspec.Raw: the item's own bytes, no whitespace around them
        item = _object(data, _ITEM, horizon) if data[:1] == b"{" else _checked(data, _ITEM, horizon)
        if isinstance(item, InvalidMessage):
            if item.reason is Reason.UNKNOWN_TYPE and "'benchmark'" in item.detail:
                item = InvalidMessage(
                    Reason.BATCH_ITEM_NOT_TRADE, "a batch frame carries trades only"
                )
            rejects.append(InvalidMessage(item.reason, f"item {index}: {item.detail}"))
        else:
            out.append(item)
    return rejects


#: Why a frame within the nesting limit is refused all the same when the caller is at
#: the edge of Python's stack and a parser runs out of it.
_STACK_EDGE: Final = "nesting too deep"


def _object(
    data: bytes, decoder: Callable[[bytes], Event], horizon: float
) -> Event | InvalidMessage:
    """One object (the frame's or a batch item): ``duplicate_key`` before anything
    :func:`_checked` finds. At the edge of the caller's stack, where json cannot look
    for repeated keys, the object is ``malformed_json``: never let through unseen."""
    event = _checked(data, decoder, horizon)
    try:
        if has_duplicate(data, event):
            return InvalidMessage(Reason.DUPLICATE_KEY, DUPLICATE_DETAIL)
    except RecursionError:
        return InvalidMessage(Reason.MALFORMED_JSON, _STACK_EDGE)
    return event


def _checked(
    data: bytes, decoder: Callable[[bytes], Event], horizon: float
) -> Event | InvalidMessage:
    """One object decoded and ts-checked, or the InvalidMessage that says why not."""
    try:
        event = decoder(data)
    except msgspec.ValidationError as exc:
        return _from_validation(str(exc))
    except msgspec.DecodeError as exc:  # not seen: the frame's shape parsed these bytes
        return InvalidMessage(Reason.MALFORMED_JSON, str(exc))
    except RecursionError:  # only at the edge of the caller's stack
        return InvalidMessage(Reason.MALFORMED_JSON, _STACK_EDGE)
    if isinstance(event, Trade):
        if event.ts > horizon:
            return _future_ts(event.ts, horizon)
        src = event.src
        if src is not None and not (src.isascii() and src.isprintable()):
            return InvalidMessage(
                Reason.INVALID_SRC, f"src must be printable ASCII (' '..'~'), got {src!r}"
            )
    return event


def _float_fields() -> frozenset[str]:
    """Fields whose JSON type is number, read from the Structs (one source of truth)."""
    found: set[str] = set()
    for struct in (Trade, BenchmarkResult):
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            kind = field.type
            kinds = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
            for one in kinds:
                while isinstance(one, msgspec.inspect.Metadata):
                    one = one.type
                if isinstance(one, msgspec.inspect.FloatType):
                    found.add(field.encode_name)
    return frozenset(found)


#: ``qty``, ``ts`` and the benchmark's measurements: 1e309 there is out of range.
_FLOAT_FIELDS: Final = _float_fields()


def _from_validation(message: str) -> InvalidMessage:
    """msgspec's error text → a Reason (slow path only: bad frames are rare)."""
    if message.startswith("Object missing required field"):
        return InvalidMessage(Reason.MISSING_FIELD, message)
    at = AT_FIELD.search(message)
    field = at.group(1) if at else ""
    if not field:
        return InvalidMessage(Reason.NOT_OBJECT, message)
    if field == "type":
        if message.startswith("Invalid value"):
            return InvalidMessage(Reason.UNKNOWN_TYPE, message)
        return InvalidMessage(Reason.WRONG_TYPE, message)
    if WRONG_TYPE.match(message) or (
        message.startswith("Number out of range") and field not in _FLOAT_FIELDS
    ):
        # A number beyond a float (1e309) where a string or an integer belongs is a
        # number of the wrong type, as ``"side":1.5`` is, not an out-of-range value.
        return InvalidMessage(Reason.WRONG_TYPE, message)
    return InvalidMessage(FIELD_REASON.get(field, Reason.INVALID_BENCHMARK), message)


#: (reason, unit, factor): a ts this many times too large is in that unit.
_TS_UNITS: Final = (
    (Reason.TS_MILLISECONDS, "milliseconds", 1e3),
    (Reason.TS_MICROSECONDS, "microseconds", 1e6),
    (Reason.TS_NANOSECONDS, "nanoseconds", 1e9),
)


def _future_ts(ts: float, horizon: float) -> InvalidMessage:
    """A ts beyond the horizon: in another unit, or simply too far ahead."""
    for reason, unit, factor in _TS_UNITS:
        if MIN_TS * factor <= ts <= horizon * factor:
            return InvalidMessage(
                reason,
                f"ts {ts:.6g} looks like {unit} since the epoch; ts is in seconds "
                f"(divide by {factor:.0e})",
            )
    return InvalidMessage(
        Reason.INVALID_TS,
        f"ts {ts:.6g} is more than {MAX_TS_AHEAD_S:.0f} s ahead of the receiver's clock",
    )
