"""Typed events carried on the wire.

Events are plain frozen dataclasses rather than dicts so a decoded message can only
exist in a validated shape; the codec is the one place that builds them from bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Side = Literal["buy", "sell"]

#: The only label values ``side`` can take; fixed so no input can create new series.
SIDES: Final[tuple[Side, ...]] = ("buy", "sell")

#: Upper bound on the optional publisher id; it is a label-free key, but memory is not free.
MAX_SOURCE_LEN: Final = 64


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One executed trade, as the trading process reports it.

    ``src`` and ``seq`` are optional so older publishers stay valid; when both are
    present the sidecar can tell how many events of that publisher never arrived.
    """

    side: Side
    qty: float
    ts: float
    src: str | None = None
    seq: int | None = None


Event = TradeEvent
