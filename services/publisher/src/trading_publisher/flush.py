"""The flush: what trade() appended, stamped, encoded by the contract, sent, held or dropped.

:meth:`Outbox.flush` takes the flat list ``trade()`` appended to as three columns (slices
and one ``str.join``, in C) and sends frames of at most ``batch_size`` events: the
contract's columnar frame, encoded in C (:func:`telemetry_contract.frames.encode_columns`),
or one JSON object per event with ``batch_size=1``. Each frame is stamped with its
stream's ``seq``/``stream``/``epoch`` right after reading the socket's monitor.

Why the work per GIL hold is bounded: the flusher shares the GIL with the trading thread,
so a backlog is sent :data:`HOLD_EVENTS` events per hold (more, a :data:`DRAIN_SHARE`
share of it, when it is large), many short pauses instead of one long one; what arrived
since the last tick goes in one hold, or a caller that never pauses would outrun the
flush. Memory is bounded too: beyond the client's budget events
are dropped, counted, and their seqs consumed (:meth:`Streams.consume`). The costs behind
these choices are measured in docs/benchmark.md.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

from telemetry_contract.frames import encode_columns, trade_frame

from trading_publisher.streams import Stream, Streams

#: Events of a backlog sent per GIL hold of the background flusher before it lets the
#: trading thread run again. Measured (docs/benchmark.md): ~0.03-0.05 µs an event to
#: take, slice, encode and send, so ~250-400 µs a hold.
HOLD_EVENTS: Final = 8192
#: New events beyond this many HOLD_EVENTS in one flush (65,536) are a backlog (a
#: flusher held off the GIL for long), sent in bounded holds; up to it they are one
#: tick's worth: a loop calling trade() 5M times a second adds ~50,000 events between
#: two hand-offs (a 5 ms tick plus up to a 5 ms switch interval).
CATCH_UP: Final = 8
#: A backlog's hold grows with it: at least this share of what is still behind goes per
#: hold. A loop calling trade() back to back adds ~20,000 events a switch interval
#: (5 ms) while a hold of 8,192 sent fewer, so a million-call burst outgrew the held-event
#: budget now and then and dropped events. Holds of a quarter of the backlog catch up
#: once it is ~4x one turn's worth (~80,000 events here, ~1 ms a hold), far inside the
#: budget; loops paced below CATCH_UP * HOLD_EVENTS a tick never get here.
DRAIN_SHARE: Final = 4

#: A chunk of events in columns: side codes, quantities, ns timestamps.
Chunk = tuple[str, list[float], list[int]]


def _give_gil_away() -> None:
    """Let a thread waiting for the GIL run (``sleep`` releases it, even for 0 s)."""
    time.sleep(0)


class Outbox:
    """Pending events (appended by the hot path), held chunks, and the counts of both."""

    def __init__(
        self,
        streams: Streams,
        source: str,
        batch_size: int,
        max_held: int,
        wake: Callable[[], None],
    ) -> None:
        self.streams = streams
        self.source = source
        self.batch_size = batch_size
        self.max_held = max_held
        self._wake = wake
        #: What trade() extends: code, qty, ts_ns, code, qty, ts_ns, ... (see client.py).
        self.flat: list[str | float | int] = []
        #: Chunks that found no route yet, oldest first, and how many events they hold.
        self.held: deque[Chunk] = deque()
        self.held_count = 0
        #: Events taken from ``flat`` by a flush that gave the GIL away mid-way.
        self.in_flight = 0
        #: Events handed to ZeroMQ (queued there or already on the wire).
        self.sent = 0
        #: Events given up: queue budget exceeded, or accepted after close().
        self.dropped = 0

    def pending(self) -> int:
        return len(self.flat) // 3 + self.held_count + self.in_flight

    def take(self) -> Chunk | None:
        """Every event appended so far, as columns.

        Each slice and the delete are one operation each under the GIL; a trade()
        extending the list meanwhile lands after index ``n`` (always a multiple of 3:
        extend is atomic). The columns are sliced straight from the list (no copy of
        the whole first: measured, half the time for 20,000 events, ~300 µs vs ~600 µs).
        """
        flat = self.flat
        n = len(flat)
        if not n:
            return None
        taken = "".join(flat[0:n:3]), flat[1:n:3], flat[2:n:3]  # type: ignore[arg-type]
        del flat[:n]
        return taken  # type: ignore[return-value]

    def flush(self, give_way: bool = False) -> None:
        """Send what is pending; hold what finds no route; drop beyond the budget.

        Held chunks go first; while one still cannot go, new ones queue behind it
        without trying, so a flush costs O(new events) however much is held. With
        ``give_way`` (the background flusher), the GIL is given away after every
        :data:`HOLD_EVENTS` events sent, or after a :data:`DRAIN_SHARE` share of a larger
        backlog.
        """
        held = self.held
        since = 0
        while held and self._send(held[0]):
            sent = len(held.popleft()[1])
            self.held_count -= sent
            since += sent
            if give_way and since >= HOLD_EVENTS and held:
                _give_gil_away()
                since = 0
        blocked = bool(held)
        taken = self.take()
        if taken is None:
            return
        codes, qtys, stamps = taken
        count = len(qtys)
        excess = count + self.held_count - self.max_held
        if excess > 0:  # a caller outrunning the flush: the memory bound holds anyway
            self.drop(excess)
            codes, qtys, stamps = codes[excess:], qtys[excess:], stamps[excess:]
            count -= excess
        size = self.batch_size
        split = give_way and count > CATCH_UP * HOLD_EVENTS
        for start in range(0, count, size):
            end = start + size
            chunk = (codes[start:end], qtys[start:end], stamps[start:end])
            if blocked or not self._send(chunk):
                blocked = True
                self._hold(chunk)
                continue
            since += len(chunk[1])
            if (
                split
                and since >= HOLD_EVENTS
                and end < count
                and since * DRAIN_SHARE >= count - end + len(self.flat) // 3
            ):
                self.in_flight = count - end
                _give_gil_away()
                self.in_flight = 0
                since = 0

    def _send(self, chunk: Chunk) -> bool:
        """Stamp and send one chunk on the next stream with a live connection."""
        streams = self.streams
        for _ in range(len(streams.all)):
            s = streams.next_live()
            if s is None:
                return False
            sent = self._send_on(s, chunk)
            streams.advance()
            if sent:
                return True
        return False

    def _send_on(self, s: Stream, chunk: Chunk) -> bool:
        codes, qtys, stamps = chunk
        count = len(qtys)
        send = self.streams.send
        if self.batch_size == 1:  # one single-object frame per event
            for i in range(count):
                frame = trade_frame(
                    codes[i], qtys[i], stamps[i], self.source, s.seq, s.stream, s.epoch
                )
                if not send(s, frame):
                    return False  # nothing of this chunk went (chunks of 1 event)
                s.seq += 1
                self.sent += 1
            return True
        frame = encode_columns(self.source, s.stream, s.epoch, s.seq, codes, qtys, stamps)
        if not send(s, frame):
            return False
        s.seq += count
        self.sent += count
        return True

    def _hold(self, chunk: Chunk) -> None:
        """Keep a chunk that found no route. Within the budget by construction: flush()
        cut what is pending to ``max_held`` minus what is held before making chunks."""
        self.held.append(chunk)
        self.held_count += len(chunk[1])
        self._wake()  # someone must retry it: an idle flusher waits for nothing

    def drop(self, count: int) -> None:
        self.dropped += count
        self.streams.consume(count)

    def drop_all(self) -> None:
        """Count everything still pending as dropped (the client is closed)."""
        taken = self.take()
        self.dropped += (len(taken[1]) if taken else 0) + self.held_count
        self.held.clear()
        self.held_count = 0
