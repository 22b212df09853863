"""``log_throttle``: reject log lines are throttled per reason and stay short."""

from __future__ import annotations

import logging

import pytest
from telemetry_contract.errors import InvalidMessage, Reason
from telemetry_contract.events import Trade
from trading_sidecar.log_throttle import ThrottledRejectLog

NOW = 1_700_000_000.0


def t(seq: int, *, src: str = "p", stream: int | None = None, epoch: int | None = None) -> Trade:
    return Trade("buy", 1.0, NOW, src, seq, stream, epoch)


def test_reject_log_is_throttled_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = ThrottledRejectLog(logging.getLogger("t"), interval_s=10, clock=lambda: now[0])
    bad_json = InvalidMessage(Reason.MALFORMED_JSON, "x")
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            throttle.rejected(bad_json)
        throttle.rejected(InvalidMessage(Reason.INVALID_QTY, "y"))
        now[0] = 11.0
        throttle.rejected(bad_json)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "999 more" in messages[2]


def test_reject_log_lines_stay_short_whatever_the_input(caplog: pytest.LogCaptureFixture) -> None:
    from telemetry_contract.codec import decode

    huge_side = b'{"type":"trade","side":"' + b"s" * 60_000 + b'","qty":1,"ts":1}'
    with pytest.raises(InvalidMessage) as caught:
        decode(huge_side)
    throttle = ThrottledRejectLog(logging.getLogger("t"))
    with caplog.at_level(logging.WARNING):
        throttle.rejected(caught.value)
    (record,) = caplog.records
    assert len(record.getMessage()) < 400
    assert "invalid_side" in record.getMessage()
