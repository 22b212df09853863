"""Every frame layout the contract knows, written (and the columnar one read) here only.

Three formats, one of them new in frame format version 1 (docs/contract.md, "Frames"):

- one JSON object per frame (:class:`TradeEncoder`, :func:`encode_trade`,
  :func:`trade_frame`), what the seed, the UI and other languages' clients send;
- a JSON array of trade objects (:func:`join_batch`, ``codec.encode_batch``);
- a **columnar batch** (:class:`~telemetry_contract.events.TradeColumns`, MessagePack):
  one array per field for the events of one stream, what the publisher client sends.
  Measured (docs/benchmark.md), msgspec encodes it in C at ~0.02 us an event, against
  ~0.06 us for the same struct as JSON (float formatting) and ~0.45 us for Python
  formatting of JSON trade objects: the flush's work per event, i.e. per GIL hold.

A MessagePack map starts with a byte (0x80..0x8f, 0xde, 0xdf) that can never start a
UTF-8 JSON text, so the decoder tells the formats apart by the first byte alone.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import truediv
from typing import Final

import msgspec

from telemetry_contract.errors import AT_FIELD, FIELD_REASON, WRONG_TYPE, InvalidMessage, Reason
from telemetry_contract.events import (
    COLUMNS_VERSION,
    MAX_QTY,
    MAX_SAFE_INT,
    MAX_SOURCE_LEN,
    MIN_TS,
    SIDE_CODES,
    SIDES,
    Event,
    Side,
    Trade,
    TradeColumns,
)
from telemetry_contract.transport import MAX_BATCH_ITEMS

__all__ = [
    "COLUMNS_LEADS",
    "TradeEncoder",
    "columns_frame",
    "decode_columns",
    "encode_columns",
    "encode_trade",
    "is_columns",
    "join_batch",
    "trade_frame",
]

# ---------------------------------------------------------------------------- JSON objects

_PRINTABLE: Final = re.compile(f"[ -~]{{1,{MAX_SOURCE_LEN}}}").fullmatch
_PREFIX: Final[dict[str, str]] = {
    side: f'{{"type":"trade","side":"{side}","qty":' for side in SIDES
}
_BPREFIX: Final[dict[str, bytes]] = {side: prefix.encode() for side, prefix in _PREFIX.items()}


def _check_side(side: str) -> str:
    try:
        return _PREFIX[side]
    except (KeyError, TypeError):
        raise ValueError(f"side must be one of {SIDES}, got {side!r}") from None


def _check_qty(value: float) -> float:
    if value is True or value is False:
        raise ValueError(f"qty must be a number, not a bool: {value!r}")
    number = float(value)
    # A chained comparison is False for NaN as well as for out-of-range values.
    if not 0.0 <= number <= MAX_QTY:
        raise ValueError(f"qty must be a finite number in [0, {MAX_QTY:g}], got {value!r}")
    return number


def _check_ts(value: float) -> float:
    number = float(value)
    if not MIN_TS <= number <= 1e300:
        raise ValueError(f"ts must be finite epoch seconds >= {MIN_TS:.0f}, got {value!r}")
    return number


def _check_int(name: str, value: int | None) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= MAX_SAFE_INT):
        raise ValueError(f"{name} must be an integer in [0, 2**53), got {value!r}")


class TradeEncoder:
    """Encodes trades for one publisher stream, with its constant parts built once.

    Everything that does not change per event (the JSON prefix per side, the escaped
    ``src``, ``stream`` and ``epoch``) is formatted here once. :attr:`now` is the fast
    route (see :func:`_now_encoder`); a new connection means a new epoch:
    :meth:`with_epoch` gives the encoder for it.
    """

    __slots__ = ("_suffix", "epoch", "now", "src", "stream")

    def __init__(
        self, src: str | None, *, stream: int | None = None, epoch: int | None = None
    ) -> None:
        self.src, self.stream, self.epoch = src, stream, epoch
        if src is None:
            if stream is not None or epoch is not None:
                raise ValueError("stream and epoch are only meaningful together with src")
            self._suffix = ""
        else:
            if not isinstance(src, str) or not _PRINTABLE(src):
                raise ValueError(
                    f"src must be 1..{MAX_SOURCE_LEN} printable ASCII characters, got {src!r}"
                )
            _check_int("stream", stream)
            _check_int("epoch", epoch)
            parts = [f',"src":{json.dumps(src)}']
            if stream is not None:
                parts.append(f',"stream":{stream:d}')
            if epoch is not None:
                parts.append(f',"epoch":{epoch:d}')
            self._suffix = "".join(parts) + ',"seq":'
        #: ``now(side, qty, seq) -> bytes``: a trade stamped with the current time.
        self.now = _now_encoder(self, self._suffix.encode())

    def with_epoch(self, epoch: int) -> TradeEncoder:
        """The encoder for the same stream after a reconnect (see docs/contract.md)."""
        return TradeEncoder(self.src, stream=self.stream, epoch=epoch)

    def __call__(self, side: str, qty: float, ts: float, seq: int | None = None) -> bytes:
        prefix = _check_side(side)
        qty = _check_qty(qty)
        ts = _check_ts(ts)
        if seq is None or not self._suffix:
            return f'{prefix}{qty!r},"ts":{ts!r}}}'.encode()
        _check_int("seq", seq)
        return f'{prefix}{qty!r},"ts":{ts!r}{self._suffix}{seq:d}}}'.encode()


def _now_encoder(encoder: TradeEncoder, suffix: bytes) -> Callable[[str, float, int], bytes]:
    """The per-event encoder for "now": a closure, so every lookup is a local one.

    ``ts`` is ``time.time_ns()`` written as the JSON number ``<ns>e-9``: one integer
    format, where ``repr`` of a float timestamp costs three times as much, and it still
    parses to the same epoch-seconds float. Only a ``float`` qty in range takes this
    route; anything else (an int, a numeric string, a bad value) goes through the
    encoder's ``__call__``, which converts or raises.
    """
    prefixes = _BPREFIX
    clock = time.time_ns
    highest = MAX_QTY

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


def join_batch(items: Sequence[bytes]) -> bytes:
    """One JSON batch frame from encoded trades (at most MAX_BATCH_ITEMS of them)."""
    if not 0 < len(items) <= MAX_BATCH_ITEMS:
        raise ValueError(f"a batch frame holds 1..{MAX_BATCH_ITEMS} trades, got {len(items)}")
    return b"[" + b",".join(items) + b"]"


def encode_trade(
    side: str,
    qty: float,
    ts: float,
    src: str | None = None,
    seq: int | None = None,
    *,
    stream: int | None = None,
    epoch: int | None = None,
) -> bytes:
    """Encode one trade; raises ``ValueError`` for anything the decoder would refuse."""
    if src is None and seq is not None:
        raise ValueError("seq is only meaningful together with src")
    return TradeEncoder(src, stream=stream, epoch=epoch)(side, qty, ts, seq)


_JSON: Final = msgspec.json.Encoder().encode
#: Side code of a columnar frame -> the side it stands for.
SIDE_OF_CODE: Final[dict[str, Side]] = {code: side for side, code in SIDE_CODES.items()}
_NS: Final = 10**9


def trade_frame(
    code: str, qty: float, ts_ns: int, src: str, seq: int, stream: int, epoch: int
) -> bytes:
    """One single-object JSON frame from the publisher's pending form of an event
    (side code, qty, ns clock), for ``batch_size=1``. Unchecked: the caller checked
    side and qty when it accepted the event. ``ts`` is ``ts_ns / 1e9`` written as the
    shortest float that reads back the same (msgspec), i.e. exact."""
    return _JSON(Trade(SIDE_OF_CODE[code], qty, ts_ns / _NS, src, seq, stream, epoch))


# ---------------------------------------------------------------------------- columnar

_MSGPACK: Final = msgspec.msgpack.Encoder().encode


class _NeverSent(msgspec.Struct, tag_field="type", tag="never-sent", frozen=True):
    """A second tagged type, only so that msgspec asks every frame for its ``type`` key.

    Decoding one tagged struct alone, msgspec takes the tag as optional; the contract
    does not (nine keys, once each). A union makes the tag required at the same speed
    (measured: 44 us a 1,024-event frame either way); a frame tagged ``never-sent`` is
    refused as the unknown frame type it is.
    """


_COLUMNS: Final = msgspec.msgpack.Decoder(TradeColumns | _NeverSent).decode
#: First bytes of a MessagePack map (fixmap, map16, map32): never the start of UTF-8 JSON.
COLUMNS_LEADS: Final = frozenset((*range(0x80, 0x90), 0xDE, 0xDF))


def is_columns(frame: bytes | bytearray | memoryview) -> bool:
    """Whether ``frame`` is (meant as) a columnar frame: its first byte says so."""
    return bool(frame) and frame[0] in COLUMNS_LEADS


def encode_columns(
    src: str, stream: int, epoch: int, seq: int, side: str, qty: list[float], ts_ns: list[int]
) -> bytes:
    """The publisher's flush: one columnar frame, encoded in C, unchecked.

    The caller checked every event when it accepted it (side, qty, ts) and keeps
    ``len(side) == len(qty) == len(ts_ns) <= MAX_BATCH_ITEMS``; :func:`columns_frame`
    is the checked form.
    """
    return _MSGPACK(TradeColumns(COLUMNS_VERSION, src, stream, epoch, seq, side, qty, ts_ns))


def columns_frame(columns: TradeColumns) -> bytes:
    """Encode a columnar batch, refusing (``InvalidMessage``) what the decoder would."""
    frame = _MSGPACK(columns)
    decode_columns(frame, [], float("inf"))
    return frame


def _reason(message: str) -> Reason:
    """msgspec's error text -> a Reason (bad frames are rare: this may cost what it costs)."""
    if message.startswith("Object missing required field"):
        return Reason.MISSING_FIELD
    at = AT_FIELD.search(message)
    field = at.group(1) if at else ""
    if field not in FIELD_REASON:  # the map itself, its keys, its type tag or ``v``
        return Reason.INVALID_COLUMNS
    if WRONG_TYPE.match(message):
        return Reason.WRONG_TYPE
    return FIELD_REASON[field]


#: Keys of a columnar map: ``type`` and every field of TradeColumns, each exactly once.
COLUMNS_KEYS: Final = 1 + len(TradeColumns.__struct_fields__)


def _map_entries(frame: bytes | bytearray | memoryview) -> int:
    """How many entries a MessagePack map header (fixmap, map16, map32) announces."""
    lead = frame[0]
    if lead == 0xDE:
        return int.from_bytes(frame[1:3], "big") if len(frame) >= 3 else -1
    if lead == 0xDF:
        return int.from_bytes(frame[1:5], "big") if len(frame) >= 5 else -1
    return lead & 0x0F


#: msgspec's text for a key that is not a field (``forbid_unknown_fields``).
_UNKNOWN: Final = "Object contains unknown field"
_KEYS: Final = msgspec.msgpack.Decoder(dict[str, msgspec.Raw]).decode


def _repeats_a_key(frame: bytes | bytearray | memoryview, entries: int) -> bool:
    """Whether the map names a key twice: fewer distinct keys than the header announces.

    Asked only of a frame already refused (never on the hot path), so a repeated key is
    ``duplicate_key`` as in a JSON frame, whichever copy is good, not the ``missing_field``
    the repeat leaves behind or the first copy's own reason.
    """
    try:
        return len(_KEYS(frame)) < entries
    except (msgspec.DecodeError, RecursionError):  # not a map of string keys: not this
        return False


def decode_columns(frame: bytes | bytearray | memoryview, out: list[Event], horizon: float) -> int:
    """Append a columnar frame's trades to ``out`` (how many), or raise InvalidMessage.

    One msgspec call parses and checks every field; what types cannot say (equal
    lengths, ``side`` codes, the last seq, ``ts`` against ``horizon`` in epoch
    seconds, ``src`` printable) is checked on whole columns in C (``str.strip``,
    ``max``); the trades are then built by ``map`` without a Python-level loop.
    """
    entries = _map_entries(frame)
    if entries > COLUMNS_KEYS:
        # Checked before any value is read: a repeated or an unknown key can never be
        # counted under a guess, and no value of a key nobody reads is parsed (or nested).
        raise InvalidMessage(
            Reason.INVALID_COLUMNS,
            f"a columnar frame is a map of its {COLUMNS_KEYS} keys once each, this one has "
            f"{entries} entries",
        )
    try:
        columns = _COLUMNS(frame)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if not message.startswith(_UNKNOWN) and _repeats_a_key(frame, entries):
            raise InvalidMessage(
                Reason.DUPLICATE_KEY, f"a key of the columnar map is repeated ({entries} entries)"
            ) from None
        raise InvalidMessage(_reason(message), message) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        if "UTF-8" in str(exc):
            raise InvalidMessage(Reason.NOT_UTF8, f"a string is not UTF-8: {exc}") from None
        raise InvalidMessage(Reason.INVALID_COLUMNS, f"not a MessagePack frame: {exc}") from None
    if not isinstance(columns, TradeColumns):
        raise InvalidMessage(Reason.INVALID_COLUMNS, "not a columnar frame: type 'never-sent'")
    side, qty, ts_ns = columns.side, columns.qty, columns.ts_ns
    count = len(qty)
    if not len(side) == count == len(ts_ns):
        raise InvalidMessage(
            Reason.INVALID_COLUMNS,
            f"columns differ in length: side {len(side)}, qty {count}, ts_ns {len(ts_ns)}",
        )
    if side.strip("bs"):
        raise InvalidMessage(Reason.INVALID_SIDE, f"side codes must be 'b' or 's': {side!r}")
    seq = columns.seq
    if seq + count - 1 > MAX_SAFE_INT:
        raise InvalidMessage(Reason.INVALID_SEQ, f"seq {seq} + {count} events passes 2**53 - 1")
    latest = max(ts_ns)
    if latest > horizon * 1e9:
        raise InvalidMessage(
            Reason.INVALID_TS, f"ts_ns {latest} is more than a day ahead of the receiver's clock"
        )
    src = columns.src
    if not (src.isascii() and src.isprintable()):
        raise InvalidMessage(
            Reason.INVALID_SRC, f"src must be printable ASCII (' '..'~'), got {src!r}"
        )
    out.extend(
        map(
            Trade,
            map(SIDE_OF_CODE.__getitem__, side),
            qty,
            map(truediv, ts_ns, repeat(_NS)),
            repeat(src),
            range(seq, seq + count),
            repeat(columns.stream),
            repeat(columns.epoch),
        )
    )
    return count
