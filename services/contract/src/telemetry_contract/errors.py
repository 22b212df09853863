"""Why a frame was rejected.

The reasons are a closed enum because they become a Prometheus label: a reason made up
from input would let a sender create unbounded series.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final


class Reason(StrEnum):
    """Every value of ``telemetry_messages_invalid_total{reason}``."""

    OVERSIZE = "oversize"
    MULTIPART = "multipart"
    NOT_UTF8 = "not_utf8"
    MALFORMED_JSON = "malformed_json"
    #: An object names the same key twice: which value "wins" differs between JSON
    #: readers, so the frame (or batch item) is refused instead of guessed at.
    DUPLICATE_KEY = "duplicate_key"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_SIDE = "invalid_side"
    INVALID_QTY = "invalid_qty"
    INVALID_TS = "invalid_ts"
    TS_MILLISECONDS = "ts_milliseconds"
    TS_MICROSECONDS = "ts_microseconds"
    TS_NANOSECONDS = "ts_nanoseconds"
    INVALID_SRC = "invalid_src"
    INVALID_SEQ = "invalid_seq"
    INVALID_STREAM = "invalid_stream"
    INVALID_EPOCH = "invalid_epoch"
    BATCH_TOO_LARGE = "batch_too_large"
    BATCH_ITEM_NOT_TRADE = "batch_item_not_trade"
    INVALID_BENCHMARK = "invalid_benchmark"
    #: A columnar batch frame that is not one: not MessagePack, columns of different
    #: lengths, or a frame format version this sidecar does not know.
    INVALID_COLUMNS = "invalid_columns"
    #: Not the sender's fault: the receive loop caught an exception it did not expect,
    #: counted it here, logged its first traceback, and went on.
    INTERNAL_ERROR = "internal_error"


class InvalidMessage(ValueError):
    """A frame (or one item of a batch frame) that breaks the contract.

    ``reason`` says which rule; ``detail`` is for humans and may quote the input, so
    loggers cut it short.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


#: A field named in msgspec's validation message -> the reason for a value of the right
#: type that breaks its rule (``ts`` in JSON frames, ``ts_ns`` in columnar ones). Read by
#: both decoders, so a field's reason is the same in every frame format.
FIELD_REASON: Final = {
    "side": Reason.INVALID_SIDE,
    "qty": Reason.INVALID_QTY,
    "ts": Reason.INVALID_TS,
    "ts_ns": Reason.INVALID_TS,
    "src": Reason.INVALID_SRC,
    "seq": Reason.INVALID_SEQ,
    "stream": Reason.INVALID_STREAM,
    "epoch": Reason.INVALID_EPOCH,
}
#: Where msgspec's message names the field: ``... - at `$.qty```.
AT_FIELD: Final = re.compile(r" - at `\$\.([A-Za-z_0-9]+)")
#: msgspec's message for a value of the wrong type: ``Expected `str`, got `float```.
WRONG_TYPE: Final = re.compile(r"^Expected `[^`]+`, got `")
