"""``TradeEncoder.now`` on and off its quick route writes the same trade, the clock's ts.

The quick route takes a ``float`` qty in range; everything else goes through the
encoder's ``__call__`` (converted or refused). Both routes must carry the side, the qty,
``now`` as ts and the publisher's ``seq``: mutation testing showed the slow route's
``seq`` and ts, and the quick route's qty bounds, were never checked.
"""

from __future__ import annotations

import time

import pytest
from telemetry_contract import Trade, decode
from telemetry_contract.codec import TradeEncoder
from telemetry_contract.events import MAX_QTY


@pytest.mark.parametrize("src", [None, "pub-1"])
@pytest.mark.parametrize("qty", [0.0, 2.5, MAX_QTY, 3, 0, int(MAX_QTY)])
def test_both_routes_write_side_qty_now_and_seq(src: str | None, qty: float) -> None:
    encoder = TradeEncoder(src)
    before = time.time()
    frame = encoder.now("buy", qty, 41)
    after = time.time()
    [event] = decode(frame).events
    assert isinstance(event, Trade)
    assert (event.side, event.qty) == ("buy", float(qty))
    assert before - 1e-3 <= event.ts <= after + 1e-3
    assert (event.src, event.seq) == ((src, 41) if src else (None, None))


@pytest.mark.parametrize("src", [None, "pub-1"])
@pytest.mark.parametrize(("side", "qty"), [("hold", 1.0), ("buy", -1.0), ("buy", MAX_QTY * 2)])
def test_bad_trades_are_refused_on_either_route(src: str | None, side: str, qty: float) -> None:
    with pytest.raises(ValueError, match="side|qty"):
        TradeEncoder(src).now(side, qty, 0)
