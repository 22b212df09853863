"""The encoders: ``TradeEncoder.now`` on and off its quick route, and the others' limits.

The quick route takes a ``float`` qty in range; everything else goes through the
encoder's ``__call__`` (converted or refused). Both routes must carry the side, the qty,
``now`` as ts and the publisher's ``seq``: mutation testing showed the slow route's
``seq`` and ts, and the quick route's qty bounds, were never checked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

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


# --- the quick route's own format: what makes it quick ----------------------------------

QUICK_TS = re.compile(rb'"ts":\d+e-9[,}]')


@pytest.mark.parametrize("src", [None, "pub-1"])
@pytest.mark.parametrize("qty", [0.0, 0.5, 2.5, MAX_QTY])
def test_an_in_range_float_takes_the_quick_route(src: str | None, qty: float) -> None:
    """``ts`` as ``time.time_ns()`` written ``<ns>e-9`` (no float formatting) is the quick
    route's whole point; every float qty from 0 to MAX_QTY takes it, both ends included."""
    frame = TradeEncoder(src).now("sell", qty, 7)
    assert QUICK_TS.search(frame), frame
    [event] = decode(frame).events
    assert isinstance(event, Trade) and event.qty == qty


@pytest.mark.parametrize("qty", [3, 0, True])
def test_anything_but_a_float_goes_through_call(qty: float) -> None:
    """An int is converted by ``__call__`` (a float ts, written by ``repr``); a bool is
    refused there, as ``__call__`` refuses it."""
    encoder = TradeEncoder("pub-1")
    if qty is True:
        with pytest.raises(ValueError, match="^qty must be a number, not a bool: True$"):
            encoder.now("buy", qty, 1)
        return
    frame = encoder.now("buy", qty, 1)
    assert not QUICK_TS.search(frame), frame


@pytest.mark.parametrize("qty", [True, False])
def test_a_bool_qty_is_refused_either_way(qty: bool) -> None:
    with pytest.raises(ValueError, match=f"^qty must be a number, not a bool: {qty}$"):
        TradeEncoder("pub-1")("buy", qty, NOW, 1)
    with pytest.raises(ValueError, match="not a bool"):
        encode_trade("buy", qty, NOW)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: TradeEncoder(None, stream=1),
            "stream and epoch are only meaningful together with src",
        ),
        (
            lambda: encode_trade("buy", 1.0, NOW, None, 4),
            "seq is only meaningful together with src",
        ),
    ],
)
def test_a_field_without_its_src_is_refused_in_so_many_words(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        build()
    assert str(caught.value) == message
