"""Logging of rejected frames that cannot flood the log.

A misbehaving publisher can send a million bad frames a second; logging each would cost
more than rejecting it. The first frame per reason is logged in full, later ones are
summed and reported at most once per interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telemetry_contract.errors import InvalidMessage


class ThrottledRejectLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval_s
        self._clock = clock
        self._next_at: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def rejected(self, exc: InvalidMessage) -> None:
        """Log ``exc`` unless its reason was logged within the interval.

        The detail is cut to MAX_DETAIL characters: it can quote the sender's input, and
        a 64 KiB field must not become a 64 KiB log line.
        """
        reason = exc.reason.value
        now = self._clock()
        if now < self._next_at.get(reason, 0.0):
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        skipped = self._suppressed.pop(reason, 0)
        self._next_at[reason] = now + self._interval
        if skipped:
            self._logger.warning(
                "dropped invalid frame (%s); %d more with this reason since the last report",
                _shorten(str(exc)),
                skipped,
            )
        else:
            self._logger.warning("dropped invalid frame (%s)", _shorten(str(exc)))


#: Longest reject detail written to the log.
MAX_DETAIL = 200


def _shorten(text: str) -> str:
    if len(text) <= MAX_DETAIL:
        return text
    return f"{text[:MAX_DETAIL]}… ({len(text)} characters)"
