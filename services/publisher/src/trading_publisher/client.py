"""The publisher client a trading loop imports: one cheap call per trade, never blocking.

``trade()`` (batched, the default) takes the clock, checks its arguments and appends
``(side code, qty, ns clock)`` to a list: no formatting, no ZeroMQ call, no lock and
never a flush, because any telemetry work inside the call is a pause of the trading
loop (docs/benchmark.md measures what a paced loop still meets: a GIL hand-off).

Everything else is the flush (:mod:`trading_publisher.flush`) on a background thread
every ``max_delay/4``: the contract's columnar frame, encoded in C, a bounded number of
events per GIL hold. Sockets, seq streams and loss accounting are
:mod:`trading_publisher.streams`; memory is bounded by ``max_queue_bytes`` (half in
Python, half in ZeroMQ's queues). ``batch_size=1`` sends one frame per event from the
calling thread (the UI and the HTTP API: a click is visible at once). ``trade()`` may be
called from one thread at a time; the flusher runs beside it by design.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Protocol

import zmq
from telemetry_contract.events import (
    MAX_QTY,
    MAX_SOURCE_LEN,
    MAX_TS_AHEAD_S,
    MIN_TS,
    SIDE_CODES,
    SIDES,
)
from telemetry_contract.frames import trade_frame
from telemetry_contract.ports import DEFAULT_ZMQ_ADDRESS
from telemetry_contract.transport import DEFAULT_LINGER_MS, MAX_BATCH_ITEMS, Heartbeat

from trading_publisher.flush import Outbox
from trading_publisher.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DELAY_S,
    DEFAULT_MAX_QUEUE_BYTES,
    CurveKeys,
    PublisherStats,
    default_source,
    split_addresses,
)
from trading_publisher.settings import PublisherSettings, curve_keys
from trading_publisher.streams import DONTWAIT, Streams, socket_send

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_DELAY_S",
    "DEFAULT_MAX_QUEUE_BYTES",
    "CurveKeys",
    "Publisher",
    "PublisherStats",
    "TradeLike",
    "default_source",
    "split_addresses",
]

#: What one event waiting in Python occupies: three list slots (24 B), an int of the ns
#: clock (~36 B) and a float (24 B), 85 B measured with tracemalloc over 1,000,000
#: appends, plus slack. The columns a flush builds are per chunk of at most
#: flush.HOLD_EVENTS events, not per held event, so they need no share here.
HELD_EVENT_BYTES: Final = 100
#: libzmq's own cost per queued message beyond its bytes (msg_t slot, content header).
ZMQ_MSG_OVERHEAD: Final = 256
#: The largest columnar frame per event: a side code, a float64 and an int64 in
#: MessagePack (1 + 9 + 9 bytes), and the frame's own fields (src, ids) once.
_COLUMN_EVENT_BYTES, _COLUMN_FRAME_BYTES = 19, 160 + MAX_SOURCE_LEN
#: The largest single-object frame (every number at its longest).
_SINGLE_FRAME_BYTES: Final = 260 + MAX_SOURCE_LEN

_clock: Final = time.time_ns
_CODE: Final[dict[str, str]] = {side: code for side, code in SIDE_CODES.items()}
#: Idle ticks (each max_delay/4) before the flusher sleeps until the next trade.
_IDLE_TICKS: Final = 20
#: ``_due`` while the flusher is awake: trade() never has to do anything about it.
_NEVER: Final = 2**63


class TradeLike(Protocol):
    @property
    def side(self) -> str: ...
    @property
    def qty(self) -> float: ...
    @property
    def ts(self) -> float: ...


class Publisher:
    """Publishes trade events to one or more sidecars over ZeroMQ PUSH (see module doc)."""

    def __init__(
        self,
        address: str | Sequence[str] = DEFAULT_ZMQ_ADDRESS,
        *,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        sndhwm: int | None = None,
        linger_ms: int = DEFAULT_LINGER_MS,
        curve: CurveKeys | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        heartbeat: Heartbeat | None = Heartbeat(),  # noqa: B008 - frozen, shared safely
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_ITEMS:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_ITEMS}, got {batch_size}")
        if not 0 < max_delay_s <= 10:
            raise ValueError(f"max_delay_s must be in (0, 10], got {max_delay_s}")
        if max_queue_bytes < 1024:
            raise ValueError(f"max_queue_bytes must be >= 1024, got {max_queue_bytes}")
        self.addresses = split_addresses(address)
        self.address = ",".join(self.addresses)
        self.source = source or default_source()  # never empty: "" means the default
        if not (
            len(self.source) <= MAX_SOURCE_LEN
            and self.source.isascii()
            and self.source.isprintable()
        ):
            raise ValueError(f"source must be 1..{MAX_SOURCE_LEN} printable ASCII characters")
        self.batch_size = batch_size
        self.max_delay_s = max_delay_s
        self.max_queue_bytes = max_queue_bytes
        self.linger_ms = linger_ms
        #: ZMTP heartbeats on every socket (sockets.apply_heartbeat); None: off.
        self.heartbeat = heartbeat
        self._delay_ns = int(max_delay_s * 1e9)
        #: The largest frame this client can produce, in bytes.
        self.max_frame_bytes = (
            _SINGLE_FRAME_BYTES
            if batch_size == 1
            else _COLUMN_FRAME_BYTES + batch_size * _COLUMN_EVENT_BYTES
        )
        count = len(self.addresses)
        share = max_queue_bytes // 2
        if sndhwm is None:
            sndhwm = max(1, share // count // (self.max_frame_bytes + ZMQ_MSG_OVERHEAD))
        self.sndhwm = sndhwm
        #: Events that may wait in Python (batching + no route) before drops start.
        self.max_held = max(batch_size, share // HELD_EVENT_BYTES)

        self._own_context = context is None
        self._context = context if context is not None else zmq.Context()
        try:
            self._streams = Streams(
                self._context,
                self.addresses,
                sndhwm=sndhwm,
                linger_ms=linger_ms,
                curve=curve,
                heartbeat=heartbeat,
            )
        except BaseException:  # a bad address: Streams closed its sockets, and ours goes
            if self._own_context:
                self._context.term()
            raise
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._outbox = Outbox(self._streams, self.source, batch_size, self.max_held, self._rouse)
        # What trade() appends to: one flat list, code, qty, ts, code, qty, ts, ...
        # (``extend`` of a 3-tuple: one atomic operation under the GIL). Not a list of
        # tuples: a tuple that survives the call is a GC-tracked allocation, and every
        # 700 of them run a generation-0 collection inside some trade() call; measured,
        # that alone put the p99.9 at ~17-36 us (2-14 us without). The temporary tuple
        # here is freed at once, so the collector's count does not grow.
        self._extend = self._outbox.flat.extend
        self._closed = False
        self._stopping = False
        self._idle = False
        #: trade() acts once the clock passes this (ns): 0 when the flusher sleeps (wake
        #: it), also 0 once closed (drop); otherwise never.
        self._due = _NEVER
        #: batch_size=1: when trade() reads the sockets' monitors next (ns).
        self._poll_due = 0
        #: Unexpected exceptions the flusher caught (it logs nothing and never dies).
        self.errors = 0
        if batch_size == 1:
            self.trade = self._trade_now  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, name="trading-publisher", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: PublisherSettings, **overrides: object) -> Publisher:
        """A client from :class:`~trading_publisher.settings.PublisherSettings`."""
        kwargs: dict[str, object] = {
            "source": settings.source or None,
            "batch_size": settings.batch_size,
            "max_delay_s": settings.max_delay_ms / 1000.0,
            "max_queue_bytes": settings.max_queue_bytes,
            "sndhwm": settings.sndhwm or None,
            "curve": curve_keys(settings),
            "heartbeat": settings.heartbeat,
        }
        kwargs.update(overrides)
        return cls(settings.zmq_connect, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ the hot path

    def trade(self, side: str, qty: float, ts: float | None = None) -> bool:
        """Accept one trade; ``False`` only once the client is closed (then it is dropped).

        Raises ``ValueError`` only for a bad ``side``/``qty``/``ts`` (a ``bool`` is no
        quantity): that is a bug in the caller, not a transport condition. Never blocks
        and never raises for the transport: what cannot be delivered is counted in
        :attr:`dropped`.
        """
        now = _clock()
        try:
            code = _CODE[side]
            ok = 0.0 <= qty <= MAX_QTY
        except (KeyError, TypeError):
            raise _refused(side, qty) from None
        if not ok or qty is True or qty is False:
            raise _refused(side, qty)
        self._extend((code, qty, now if ts is None else _given_ts_ns(ts, now)))
        if now < self._due:
            return True
        return self._late()

    def _late(self) -> bool:
        """The flusher sleeps (wake it), or the client is closed (drop the event)."""
        if self._closed:
            with self._lock:
                self._outbox.drop_all()
            return False
        self._rouse()
        return True

    def _rouse(self) -> None:
        """Wake a sleeping flusher (one futex call, once per idle spell)."""
        if self._idle:
            self._idle = False
            self._due = _NEVER
            self._wake.set()

    def _trade_now(self, side: str, qty: float, ts: float | None = None) -> bool:
        """``batch_size=1``: encode and send here, one single-object frame per event."""
        now = _clock()
        try:
            code = _CODE[side]
            ok = 0.0 <= qty <= MAX_QTY
        except (KeyError, TypeError):
            raise _refused(side, qty) from None
        if not ok or qty is True or qty is False:
            raise _refused(side, qty)
        t = now if ts is None else _given_ts_ns(ts, now)
        lock = self._lock
        if not lock.acquire(False):  # someone is flushing: the flusher takes this one
            self._extend((code, qty, t))
            self._rouse()
            return True
        try:
            outbox = self._outbox
            if self._closed:
                outbox.dropped += 1
                return False
            streams = self._streams
            if now >= self._poll_due:  # connection events at least every max_delay/2
                self._poll_due = now + self._delay_ns // 2
                streams.poll()
            s = streams.all[streams.rr]
            if s.peers and not outbox.held_count and not outbox.flat:
                frame = trade_frame(code, qty, t, self.source, s.seq, s.stream, s.epoch)
                # pyzmq's own (Cython) send here, not the GIL-holding ctypes one: measured
                # ~0.3 us cheaper per call, and in the calling thread giving the GIL away
                # for the send costs nothing (the flusher is idle in this mode).
                try:
                    socket_send(s.socket, frame, DONTWAIT)
                except zmq.ZMQError:
                    pass  # full or no route: the flush below holds or drops it
                else:
                    s.seq += 1
                    outbox.sent += 1
                    streams.advance()
                    return True
            self._extend((code, qty, t))
            outbox.flush()
            return True
        finally:
            lock.release()

    def publish(self, event: TradeLike) -> bool:
        """Emit a prepared event; its own ``src``/``seq`` are replaced by this client's."""
        return self.trade(event.side, event.qty, event.ts)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        """Tick every max_delay/4 while there is traffic; sleep until woken when idle."""
        tick = self.max_delay_s / 4
        idle = 0
        wake = self._wake
        outbox = self._outbox
        while True:
            timeout: float | None = tick
            if idle >= _IDLE_TICKS:
                self._idle = True
                self._due = 0  # the next trade() wakes us (see _late)
                if outbox.pending():
                    self._idle = False
                    self._due = _NEVER
                else:
                    timeout = None
            wake.wait(timeout)
            wake.clear()
            if self._stopping:
                return
            try:
                with self._lock:
                    # No poll of every monitor first: each frame's stream has its monitor
                    # read right before it is stamped (Streams.next_live); a second read
                    # per tick only lengthened the GIL hold.
                    busy = outbox.pending() > 0
                    outbox.flush(give_way=True)
            except Exception:  # noqa: BLE001 - the flusher must never die
                self.errors += 1
                busy = True
            idle = 0 if busy else idle + 1

    # ------------------------------------------------------------------ the rest

    def flush(self) -> None:
        """Send everything accepted so far now (what finds no route stays queued); after
        close() nothing is left (it was sent or counted) and the sockets are gone."""
        with self._lock:
            if self._closed:
                return
            self._streams.poll()
            self._outbox.flush()

    @property
    def sent(self) -> int:
        """Events handed to ZeroMQ (queued there or already on the wire)."""
        return self._outbox.sent

    @property
    def dropped(self) -> int:
        """Events given up: queue budget exceeded, or accepted after close()."""
        return self._outbox.dropped

    @property
    def queued(self) -> int:
        """Events accepted and not yet handed to ZeroMQ."""
        return self._outbox.pending()

    @property
    def connected(self) -> bool:
        """Whether any socket has a TCP connection to a sidecar right now.

        Tracked per socket descriptor (both events carry the fd), not as a running
        count: a reconnect attempt that fails can report a disconnect for a connection
        that was never the live one, and a count would then go wrong for good.
        """
        with self._lock:
            if self._closed:
                return False
            return self._streams.connected

    @property
    def streams(self) -> list[tuple[str, int, int, int]]:
        """``(address, stream, epoch, next seq)`` per socket, for diagnostics and tests."""
        with self._lock:
            return self._streams.describe()

    def stats(self) -> PublisherStats:
        connected = self.connected
        return PublisherStats(self.sent, self.dropped, connected, self.queued)

    def close(self, linger_ms: int | None = None) -> None:
        """Send what is queued, waiting up to ``linger_ms`` (default: the client's) for a
        sidecar if none is connected; drop (and count) what is left; release."""
        linger = self.linger_ms if linger_ms is None else linger_ms
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        deadline = time.monotonic() + linger / 1000.0
        outbox = self._outbox
        with self._lock:
            while True:
                self._streams.poll()
                outbox.flush()
                if not outbox.pending() or time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
            self._closed = True  # no flush after this one (each caller checks it)
            self._due = 0
            outbox.drop_all()
            self._streams.close(linger)
        if self._own_context:
            self._context.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _refused(side: object, qty: object) -> ValueError:
    """The error for a bad side or qty, naming what is allowed (off the hot path)."""
    if not isinstance(side, str) or side not in _CODE:
        allowed = " or ".join(repr(s) for s in SIDES)
        return ValueError(f"side must be {allowed}, got {side!r}")
    if isinstance(qty, bool):
        return ValueError(f"qty must be a number, not a bool: got {qty!r}")
    return ValueError(f"qty must be a finite number in [0, {MAX_QTY:g}], got {qty!r}")


def _given_ts_ns(ts: float, now_ns: int) -> int:
    """A caller's epoch-seconds ``ts`` in integer ns, refused outside the contract's window.

    Converted exactly (integer arithmetic on the float's own ratio, rounded to the
    nearest ns): ``ns / 1e9`` at the sidecar is then the very float given, since a float
    near 1.7e9 s is spaced ~240 ns apart.
    """
    try:
        seconds = float(ts)
    except (TypeError, ValueError):
        raise ValueError(f"ts must be epoch seconds, got {ts!r}") from None
    if not MIN_TS <= seconds <= now_ns / 1e9 + MAX_TS_AHEAD_S:  # False for NaN too
        raise ValueError(
            f"ts must be epoch seconds in [{MIN_TS:.0f}, now + {MAX_TS_AHEAD_S:.0f}], got {ts!r}"
        )
    num, den = seconds.as_integer_ratio()
    return (2 * num * 1_000_000_000 + den) // (2 * den)
