"""The encoders: ``TradeEncoder.now`` on and off its quick route, and the others' limits.

The quick route takes a ``float`` qty in range; everything else goes through the
encoder's ``__call__`` (converted or refused). Both routes must carry the side, the qty,
``now`` as ts and the publisher's ``seq``: mutation testing showed the slow route's
``seq`` and ts, and the quick route's qty bounds, were never checked.
"""

from __future__ import annotations

import time

import pytest
from telemetry_contract import InvalidMessage, Trade, decode, encode_batch, encode_trade
from telemetry_contract.codec import TradeEncoder, join_batch
from telemetry_contract.events import MAX_QTY
from telemetry_contract.transport import MAX_BATCH_ITEMS

NOW = time.time()


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


# --- the other encoders' limits (surviving mutants: none of these was checked) ---------


def test_encode_trade_carries_stream_and_epoch() -> None:
    [event] = decode(encode_trade("buy", 1.0, NOW, "pub-1", 3, stream=7, epoch=2)).events
    assert isinstance(event, Trade)
    assert (event.src, event.seq, event.stream, event.epoch) == ("pub-1", 3, 7, 2)


@pytest.mark.parametrize(
    "kwargs",
    [{"stream": 1}, {"epoch": 1}, {"stream": 1, "epoch": 1}],
)
def test_stream_or_epoch_without_src_is_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="only meaningful together with src"):
        TradeEncoder(None, **kwargs)


@pytest.mark.parametrize("field", ["stream", "epoch"])
def test_a_negative_stream_or_epoch_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be an integer"):
        TradeEncoder("pub-1", **{"stream": 1, "epoch": 1, field: -1})


@pytest.mark.parametrize("count", [1, MAX_BATCH_ITEMS])
def test_a_batch_of_one_up_to_the_limit_is_encoded(count: int) -> None:
    trades = [Trade("buy", 1.0, NOW)] * count
    assert len(decode(encode_batch(trades), NOW).events) == count
    assert len(decode(join_batch([encode_trade("buy", 1.0, NOW)] * count), NOW).events) == count


@pytest.mark.parametrize("count", [0, MAX_BATCH_ITEMS + 1])
def test_an_empty_or_oversized_batch_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="a batch frame holds"):
        encode_batch([Trade("buy", 1.0, NOW)] * count)
    with pytest.raises(ValueError, match="a batch frame holds"):
        join_batch([encode_trade("buy", 1.0, NOW)] * count)


def test_a_batch_with_bad_trades_names_the_first() -> None:
    bad = [Trade("buy", 1.0, NOW), Trade("buy", -1.0, NOW), Trade("buy", 1.0, 0.0)]
    with pytest.raises(InvalidMessage, match="item 1: "):
        encode_batch(bad)


def test_seq_is_written_only_with_a_src_and_must_be_a_safe_integer() -> None:
    [event] = decode(TradeEncoder(None)("buy", 1.0, NOW, 5)).events
    assert isinstance(event, Trade) and event.seq is None
    with pytest.raises(ValueError, match="^seq must be an integer"):
        TradeEncoder("pub-1")("buy", 1.0, NOW, -1)
