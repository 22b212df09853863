"""The publisher client a trading loop imports: one cheap call per trade, never blocking.

What ``trade()`` does (batched, the default): take the clock, check the arguments,
append ``(side prefix, qty, ts_ns)`` to a list, compare the clock with a deadline. No
formatting, no ZeroMQ call, no lock, no wake-up of another thread: measured, each of
those costs the calling thread more than the whole append (see docs/benchmark.md).

Everything else is the *flush*: take what was appended, stamp each event with its
stream's ``seq`` (and the frame with its ``stream``/``epoch``), format batch frames of
at most ``batch_size`` events and send them without blocking. A background thread
flushes every ``max_delay/2``: full batches at once, a partial batch once its oldest
event is a quarter of ``max_delay`` old (else at the next tick), so no event waits much
longer than 3/4 of ``max_delay`` for the thread. (Waking the
thread the moment a batch fills was measured too: an Event set once per ``batch_size``
calls is a futex syscall on the calling thread and took its p99.9 from ~14 µs to
~35 µs on the shared test machine, for at most ``max_delay/2`` less waiting.) The
thread needs the GIL; if the calling thread is busy in pure Python it gets it only
every switch interval (5 ms),
so ``trade()`` also flushes by itself when the last flush is ``max_delay`` old — rarely
(once per ``max_delay``, i.e. once per ~1,000+ calls in a tight loop), and as one GIL
hold, so the calling thread pauses once instead of many times (see
:mod:`trading_publisher.zmq_direct`). With no further call, the thread sends a lone event
within ``max_delay``.

``batch_size=1`` keeps one single-object frame per event, formatted and sent by the
calling thread (the UI and the HTTP API use it, so a click is visible at once).

Exact loss accounting (docs/contract.md, "Publisher side"): one PUSH socket per sidecar
endpoint, each its own ``stream`` (random 53-bit id) with its own ``seq``; frames go
round-robin over the connected ones. ``epoch`` counts the socket's TCP connections
(monitor ``EVENT_CONNECTED``) after the first; ``seq`` goes on across epochs. Sockets use
``ZMQ_IMMEDIATE``, so a frame is only ever queued on a live connection and dies with it
instead of reaching the next peer under an old epoch. Events that cannot be sent (no
connection, queue full) wait in a bounded list and are retried; beyond the memory budget
they are dropped and counted in :attr:`Publisher.dropped`, and they still consume ``seq``
numbers of a stream, so the sidecar counts them as lost.

Memory (``max_queue_bytes``, default 64 MiB): half for events waiting in Python, half
for ZeroMQ's queues, whose per-socket high-water mark is that byte share divided by the
largest frame this client can produce. Nothing else grows while the sidecar is away.

Thread-safety: ``trade()`` may be called from one thread at a time (guard it with a
lock to share a client, as the UI does); the flusher runs beside it by design.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import socket as _socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol

import zmq
from telemetry_contract.events import MAX_QTY, MAX_SOURCE_LEN, MAX_TS_AHEAD_S, MIN_TS, SIDES
from telemetry_contract.ports import DEFAULT_ZMQ_ADDRESS
from telemetry_contract.transport import DEFAULT_LINGER_MS, MAX_BATCH_ITEMS, Heartbeat

from trading_publisher import zmq_direct
from trading_publisher.sockets import apply_heartbeat

if TYPE_CHECKING:
    from trading_publisher.settings import PublisherSettings

#: Events per batch frame by default: measured, 64 makes the per-event share of the
#: send small (~1/64 of ~1 µs) while one frame stays ~8 KB.
DEFAULT_BATCH_SIZE: Final = 64
#: The longest an event waits for its frame, by default.
DEFAULT_MAX_DELAY_S: Final = 0.001
#: What queued telemetry may occupy, by default, however long the sidecar is away.
DEFAULT_MAX_QUEUE_BYTES: Final = 64 * 1024 * 1024

#: What one event waiting in Python occupies: a 3-tuple (64 B), an int of the ns clock
#: (36 B), a float (24 B), its list slot (8 B), plus allocator slack.
HELD_EVENT_BYTES: Final = 160
#: libzmq's own cost per queued message beyond its bytes (msg_t slot, content header).
ZMQ_MSG_OVERHEAD: Final = 256

_DONTWAIT: Final = zmq_direct.ZMQ_DONTWAIT
#: pyzmq's Cython ``Socket.send`` itself, skipping the Python-level wrapper of
#: ``zmq.Socket`` (routing/str checks the client never needs); the wrapper elsewhere.
_socket_send: Callable[[zmq.Socket[bytes], bytes, int], object]
try:
    from zmq.backend.cython._zmq import Socket as _CythonSocket

    _socket_send = _CythonSocket.send  # type: ignore[assignment]
except ImportError:  # another pyzmq backend
    _socket_send = zmq.Socket.send
#: The wall clock in ns, bound once: a global lookup instead of a module attribute.
_clock: Final = time.time_ns
_PEER_EVENTS: Final = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED
_PREFIX: Final[dict[str, bytes]] = {
    side: f'{{"type":"trade","side":"{side}","qty":'.encode() for side in SIDES
}
#: One item after its cached lead (``{"type":..,"qty":<qty>,"ts":``): ts, head, seq, tail.
_ITEM: Final = b"%s%de-9%s%d%s"
#: ``ts`` is the ns clock as ``<ns>e-9`` (one integer format), or a caller's float as
#: its ``repr``, so it reaches the sidecar exactly as given.
_ITEM_GIVEN_TS: Final = b"%s%a%s%d%s"
#: Distinct (side, qty) leads remembered: ``repr`` of a float is most of an item's
#: formatting cost, and a trading loop's lot sizes repeat. Beyond this, leads are
#: formatted each time (correct, just slower).
_LEAD_CACHE: Final = 8192
#: Longest qty (``repr`` of a float <= 1e15), ns timestamp and 53-bit integer.
_QTY_CHARS, _TS_CHARS, _INT_CHARS = 24, 20, 16
#: Idle ticks (each max_delay/2) before the flusher sleeps until the next trade.
_IDLE_TICKS: Final = 20


def default_source() -> str:
    """``hostname-pid``: unique per process, so restarts start fresh seq streams."""
    suffix = f"-{os.getpid()}"
    return _socket.gethostname()[: MAX_SOURCE_LEN - len(suffix)] + suffix


def split_addresses(addresses: str | Sequence[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` → ``["a", "b"]`` (blanks dropped, at least one)."""
    parts = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    found = [part.strip() for part in parts if part.strip()]
    if not found:
        raise ValueError(f"no ZeroMQ address in {addresses!r}")
    return found


@dataclass(frozen=True)
class CurveKeys:
    """CURVE keys of the client sockets: the server's public key and our own pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_key_file: str | Path, secret_key_file: str | Path) -> CurveKeys:
        """Read zmq.auth certificate files: the server's ``*.key``, our ``*.key_secret``."""
        from zmq.auth.certs import load_certificate

        server_public, _ = load_certificate(str(server_key_file))
        public, secret = load_certificate(str(secret_key_file))
        if secret is None:
            raise ValueError(f"{secret_key_file} holds no secret key (use the .key_secret file)")
        return cls(server_public, public, secret)


@dataclass(frozen=True)
class PublisherStats:
    sent: int
    dropped: int
    connected: bool
    #: Events accepted but not handed to ZeroMQ yet (batching, or waiting for a route).
    queued: int = 0


class TradeLike(Protocol):
    @property
    def side(self) -> str: ...
    @property
    def qty(self) -> float: ...
    @property
    def ts(self) -> float: ...


class _Stream:
    """One PUSH socket: its stream id, epoch, next seq and live connections."""

    __slots__ = (
        "address", "epoch", "handle", "monitor", "mhandle", "peers", "seen", "seq",
        "socket", "stream", "tail",
    )  # fmt: skip

    def __init__(self, socket: zmq.Socket[bytes], monitor: zmq.Socket[bytes], address: str):
        self.address = address
        self.socket = socket
        self.monitor = monitor
        self.handle = zmq_direct.handle(socket)
        self.mhandle = zmq_direct.handle(monitor)
        self.stream = secrets.randbits(53)
        self.epoch = 0
        self.seq = 0
        #: Connections (by fd) up right now; empty means nowhere to send.
        self.peers: set[int] = set()
        #: TCP connections made so far: the epoch is this minus one.
        self.seen = 0
        self.tail = b""
        self.retail()

    def retail(self) -> None:
        """The end of every item: ``stream`` and ``epoch`` are constant per frame."""
        self.tail = b',"stream":%d,"epoch":%d}' % (self.stream, self.epoch)


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
        self.source = source or default_source()
        if not (
            0 < len(self.source) <= MAX_SOURCE_LEN
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
        self._head = b',"src":%s,"seq":' % json.dumps(self.source).encode()
        item_max = (
            (len(_PREFIX["sell"]) + _QTY_CHARS + len(b',"ts":e-9') + _TS_CHARS + len(self._head))
            + 3 * _INT_CHARS
            + len(b',"stream":,"epoch":}')
            + 1
        )
        #: The largest frame this client can produce, in bytes.
        self.max_frame_bytes = batch_size * item_max + 2
        count = len(self.addresses)
        share = max_queue_bytes // 2
        if sndhwm is None:
            sndhwm = max(1, share // count // (self.max_frame_bytes + ZMQ_MSG_OVERHEAD))
        self.sndhwm = sndhwm
        #: Events that may wait in Python (batching + no route) before drops start.
        self.max_held = max(batch_size, share // HELD_EVENT_BYTES)

        self._own_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._direct = zmq_direct.load()
        self._leads: dict[bytes, dict[float, bytes]] = {prefix: {} for prefix in _PREFIX.values()}
        self._mbuf = ctypes.create_string_buffer(256)
        self._streams = [self._open(a, curve) for a in self.addresses]
        #: ``zmq_send(handle, frame, len, flags) -> int``: GIL-holding when available.
        self._zsend = self._direct.send if self._direct is not None else self._pyzmq_send
        self._rr = 0
        #: The round-robin successor of each socket index, looked up instead of computed.
        self._next_rr = [(i + 1) % len(self._streams) for i in range(len(self._streams))]

        # What trade() appends to: one flat list, prefix, qty, ts, prefix, qty, ts, ...
        # (``extend`` of a 3-tuple: one atomic operation under the GIL). Not a list of
        # tuples: a tuple that survives the call is a GC-tracked allocation, and every
        # 700 of them run a generation-0 collection inside some trade() call; measured,
        # that alone put the p99.9 at ~17-36 us (2-14 us without). The temporary tuple
        # here is freed at once, so the collector's count does not grow.
        self._flat: list[bytes | float | int] = []
        self._extend = self._flat.extend
        self._carry: list[tuple[bytes, float, int | float]] = []
        #: Batches that found no route yet, oldest first, and how many events they hold.
        self._held: deque[list[tuple[bytes, float, int | float]]] = deque()
        self._held_count = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._stopping = False
        self._idle = False
        #: trade() flushes by itself once the clock passes this (ns); -1 once closed.
        self._due = time.time_ns() + self._delay_ns
        #: Events handed to ZeroMQ (queued there or already on the wire).
        self.sent = 0
        #: Events given up: queue budget exceeded, or accepted after close().
        self.dropped = 0
        #: Unexpected exceptions the flusher caught (it logs nothing and never dies).
        self.errors = 0
        if batch_size == 1:
            self.trade = self._trade_now  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, name="trading-publisher", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: PublisherSettings, **overrides: object) -> Publisher:
        """A client from :class:`~trading_publisher.settings.PublisherSettings`."""
        from trading_publisher.settings import curve_keys

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

    def _open(self, address: str, curve: CurveKeys | None) -> _Stream:
        sock = self._context.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, self.sndhwm)
        sock.setsockopt(zmq.LINGER, self.linger_ms)
        # Queue only on a live connection: a frame never outlives its connection to
        # reach the next peer under an old epoch (docs/contract.md).
        sock.setsockopt(zmq.IMMEDIATE, 1)
        apply_heartbeat(sock, self.heartbeat)
        if curve is not None:
            sock.curve_serverkey = curve.server_public
            sock.curve_publickey = curve.public
            sock.curve_secretkey = curve.secret
        # The monitor is attached before connect, or the first CONNECTED can be missed.
        monitor = sock.get_monitor_socket(_PEER_EVENTS)
        sock.connect(address)
        return _Stream(sock, monitor, address)

    # ------------------------------------------------------------------ the hot path

    def trade(self, side: str, qty: float, ts: float | None = None) -> bool:
        """Accept one trade; ``False`` only once the client is closed (then it is dropped).

        Raises ``ValueError`` only for a bad ``side``/``qty``/``ts``: that is a bug in
        the caller, not a transport condition. Never blocks and never raises for the
        transport: whatever cannot be delivered is counted in :attr:`dropped`.
        """
        now = _clock()
        try:
            prefix = _PREFIX[side]
            ok = 0.0 <= qty <= MAX_QTY
        except (KeyError, TypeError):
            raise ValueError(f"bad trade: side {side!r}, qty {qty!r}") from None
        if not ok:
            raise ValueError(f"qty must be a finite number in [0, {MAX_QTY:g}], got {qty!r}")
        self._extend((prefix, qty, now if ts is None else _given_ts(ts, now)))
        if now < self._due:
            return True
        return self._late(now)

    def _trade_now(self, side: str, qty: float, ts: float | None = None) -> bool:
        """``batch_size=1``: format and send here, one single-object frame per event."""
        now = _clock()
        try:
            prefix = _PREFIX[side]
            ok = 0.0 <= qty <= MAX_QTY
        except (KeyError, TypeError):
            raise ValueError(f"bad trade: side {side!r}, qty {qty!r}") from None
        if not ok:
            raise ValueError(f"qty must be a finite number in [0, {MAX_QTY:g}], got {qty!r}")
        if ts is None:
            t: int | float = now
            item = _ITEM
        else:
            t = _given_ts(ts, now)
            item = _ITEM_GIVEN_TS
        lock = self._lock
        if not lock.acquire(False):  # someone is flushing: the flusher takes this one
            self._extend((prefix, qty, t))
            if self._idle:
                self._idle = False
                self._wake.set()
            return True
        try:
            if now >= self._due:  # connection events at least every max_delay/2
                self._due = now + self._delay_ns // 2
                self._poll_monitors()
            streams = self._streams
            rr = self._rr
            s = streams[rr]
            if s.peers and not self._held_count and not self._flat:
                lead = self._leads[prefix].get(qty) or self._new_lead(prefix, qty)
                frame = item % (lead, t, self._head, s.seq, s.tail)
                # pyzmq's own (Cython) send here, not the GIL-holding ctypes one: measured
                # ~0.3 us cheaper per call, and in the calling thread giving the GIL away
                # for the send costs nothing (the flusher is idle in this mode).
                try:
                    _socket_send(s.socket, frame, _DONTWAIT)
                except zmq.ZMQError:
                    pass  # full or no route: the flush below holds or drops it
                else:
                    s.seq += 1
                    self.sent += 1
                    self._rr = self._next_rr[rr]
                    return True
            self._extend((prefix, qty, t))
            self._flush_locked(force=True)
            return not self._closed
        finally:
            lock.release()

    def _late(self, now: int) -> bool:
        """The last flush is ``max_delay`` old: the flusher is idle (wake it) or held off
        the GIL by this very thread (flush here, in one go)."""
        if self._closed:
            self._drop_all_pending()
            return False
        self._due = now + self._delay_ns
        if self._idle:
            self._idle = False
            self._wake.set()
            return True
        if self._lock.acquire(False):  # else the flusher is flushing right now
            try:
                self._flush_locked(force=True)
            except Exception:  # noqa: BLE001 - never raise for the transport
                self.errors += 1
            finally:
                self._lock.release()
        return True

    def publish(self, event: TradeLike) -> bool:
        """Emit a prepared event; its own ``src``/``seq`` are replaced by this client's."""
        return self.trade(event.side, event.qty, event.ts)

    # ------------------------------------------------------------------ the flush

    def _pyzmq_send(self, handle: object, frame: bytes, size: int, flags: int) -> int:
        """The fallback send (no direct libzmq): same contract, via pyzmq."""
        for s in self._streams:
            if s.handle is handle:
                try:
                    s.socket.send(frame, zmq.NOBLOCK)
                except zmq.ZMQError:
                    return -1
                return size
        return -1

    def _new_lead(self, prefix: bytes, qty: float) -> bytes:
        """``{"type":"trade","side":..,"qty":<qty>,"ts":`` for a (side, qty) not cached."""
        lead = b'%s%a,"ts":' % (prefix, float(qty))
        cache = self._leads[prefix]
        if len(cache) < _LEAD_CACHE:
            cache[qty] = lead
        return lead

    def _poll_monitors(self) -> None:
        for s in self._streams:
            self._poll_monitor(s)

    def _poll_monitor(self, s: _Stream) -> None:
        """Apply the socket's connection events; a new connection after the first is a
        new epoch (docs/contract.md). Called right before stamping frames for ``s``."""
        direct = self._direct
        while True:
            if direct is not None:
                buf = self._mbuf
                if direct.recv(s.mhandle, buf, 256, zmq_direct.ZMQ_DONTWAIT) < 0:
                    return
                head = buf.raw[:6]
                direct.recv(s.mhandle, buf, 256, zmq_direct.ZMQ_DONTWAIT)  # endpoint part
            else:
                if not s.monitor.poll(0):
                    return
                head = s.monitor.recv_multipart()[0]
            event = int.from_bytes(head[:2], "little")
            fd = int.from_bytes(head[2:6], "little")
            if event == zmq.EVENT_CONNECTED:
                s.seen += 1
                if s.seen > 1:
                    s.epoch += 1
                    s.retail()
                s.peers.add(fd)
            elif event == zmq.EVENT_DISCONNECTED:
                s.peers.discard(fd)

    def _flush_locked(self, force: bool) -> None:
        """Send what is pending; hold what finds no route; drop beyond the budget.

        Without ``force`` a partial batch of fresh events (the oldest younger than a
        quarter of max_delay) is kept for the next tick, so a batch that is still
        filling goes out whole; anything carried over from the previous tick goes out
        now, partial or not. Held batches (no route
        earlier) go first; while one still cannot go, new ones queue behind it without
        trying, so a flush costs O(new events) however much is held.
        """
        if self._closed:
            self._drop_all_pending()
            return
        items = self._take()
        if self._carry:
            items = self._carry + items
            self._carry = []
            force = True
        size = self.batch_size
        end = len(items)
        if not force and end % size:
            # A partial batch whose oldest event is fresh is probably still filling: keep
            # it one tick (max_delay/2). One that has waited a quarter of max_delay goes
            # now, so no event waits much beyond 3/4 of max_delay for the thread.
            first = items[end - end % size][2]
            first_ns = first if first.__class__ is int else int(first * 1e9)
            if _clock() - first_ns < self._delay_ns // 4:
                end -= end % size
                self._carry = items[end:]
        held = self._held
        while held and self._send_chunk(held[0]):
            self._held_count -= len(held.popleft())
        blocked = bool(held)
        for start in range(0, end, size):
            chunk = items[start : start + size]
            if blocked or not self._send_chunk(chunk):
                blocked = True
                self._hold(chunk)

    def _send_chunk(self, chunk: list[tuple[bytes, float, int | float]]) -> bool:
        """Stamp and send one frame on the next stream with a live connection."""
        streams = self._streams
        count = len(streams)
        head = self._head
        for _ in range(count):
            rr = self._rr
            s = streams[rr]
            self._rr = (rr + 1) % count
            self._poll_monitor(s)
            if not s.peers:
                continue
            tail = s.tail
            leads = self._leads
            if self.batch_size == 1:
                prefix, qty, ts = chunk[0]
                lead = leads[prefix].get(qty) or self._new_lead(prefix, qty)
                item = _ITEM if ts.__class__ is int else _ITEM_GIVEN_TS
                frame = item % (lead, ts, head, s.seq, tail)
            else:
                parts: list[bytes] = []
                add = parts.append
                seq = s.seq
                for prefix, qty, ts in chunk:
                    lead = leads[prefix].get(qty) or self._new_lead(prefix, qty)
                    add(
                        (_ITEM if ts.__class__ is int else _ITEM_GIVEN_TS)
                        % (lead, ts, head, seq, tail)
                    )
                    seq += 1
                frame = b"[%s]" % b",".join(parts)
            if self._zsend(s.handle, frame, len(frame), _DONTWAIT) >= 0:
                s.seq += len(chunk)
                self.sent += len(chunk)
                return True
        return False

    def _take(self) -> list[tuple[bytes, float, int | float]]:
        """Take every event trade() appended, as (prefix, qty, ts) tuples.

        Slice and delete are one operation each under the GIL; a trade() extending the
        list meanwhile lands after index ``n`` (always a multiple of 3: extend is atomic).
        """
        flat = self._flat
        n = len(flat)
        if not n:
            return []
        taken = flat[:n]
        del flat[:n]
        return list(zip(taken[0::3], taken[1::3], taken[2::3], strict=True))  # type: ignore[arg-type]

    def _hold(self, chunk: list[tuple[bytes, float, int | float]]) -> None:
        """Keep a batch that found no route, within the budget; else drop (and count) it."""
        if self._held_count + len(chunk) > self.max_held:
            self._drop(len(chunk))
            return
        self._held.append(chunk)
        self._held_count += len(chunk)
        if self._idle:  # someone must retry it: an idle flusher waits for nothing
            self._idle = False
            self._wake.set()

    def _drop(self, count: int) -> None:
        """Count ``count`` events as dropped; they consume seq numbers of the next stream
        in turn, so the sidecar that receives that stream's next frame counts them lost."""
        if count <= 0:
            return
        self.dropped += count
        streams = self._streams
        s = streams[self._rr]
        self._rr = (self._rr + 1) % len(streams)
        s.seq += count

    def _drop_all_pending(self) -> None:
        self.dropped += len(self._take()) + len(self._carry) + self._held_count
        self._carry = []
        self._held.clear()
        self._held_count = 0

    def _pending(self) -> int:
        return len(self._flat) // 3 + len(self._carry) + self._held_count

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        """Tick every max_delay/2 while there is traffic; sleep until woken when idle."""
        tick = self.max_delay_s / 2
        idle = 0
        wake = self._wake
        self._due = time.time_ns() + self._delay_ns
        while True:
            timeout: float | None = tick
            if idle >= _IDLE_TICKS:
                self._idle = True
                self._due = 0  # the next trade() wakes us (see _late)
                if self._pending():
                    self._idle = False
                    self._due = time.time_ns() + self._delay_ns
                else:
                    timeout = None
            wake.wait(timeout)
            wake.clear()
            if self._stopping:
                return
            try:
                with self._lock:
                    busy = self._pending() > 0
                    self._poll_monitors()
                    self._flush_locked(force=False)
                    if not self._idle:
                        self._due = time.time_ns() + self._delay_ns
            except Exception:  # noqa: BLE001 - the flusher must never die
                self.errors += 1
                busy = True
            idle = 0 if busy else idle + 1

    # ------------------------------------------------------------------ the rest

    def flush(self) -> None:
        """Send everything accepted so far now (what finds no route stays queued)."""
        with self._lock:
            self._poll_monitors()
            self._flush_locked(force=True)

    @property
    def queued(self) -> int:
        """Events accepted and not yet handed to ZeroMQ."""
        return self._pending()

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
            self._poll_monitors()
            return any(s.peers for s in self._streams)

    @property
    def streams(self) -> list[tuple[str, int, int, int]]:
        """``(address, stream, epoch, next seq)`` per socket, for diagnostics and tests."""
        with self._lock:
            return [(s.address, s.stream, s.epoch, s.seq) for s in self._streams]

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
        with self._lock:
            while True:
                self._poll_monitors()
                self._flush_locked(force=True)
                if not self._pending() or time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
            self._closed = True
            self._due = -1
            self._drop_all_pending()
            for s in self._streams:
                s.peers.clear()
                s.socket.disable_monitor()
                s.monitor.close(linger=0)
                s.socket.close(linger=linger)
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


def _given_ts(ts: float, now_ns: int) -> float:
    """A caller's epoch-seconds ``ts`` as a float, refused outside the contract's window.

    Kept a float (not converted to ns): it goes on the wire as its ``repr``, so the
    sidecar sees exactly the value given.
    """
    try:
        seconds = float(ts)
    except (TypeError, ValueError):
        raise ValueError(f"ts must be epoch seconds, got {ts!r}") from None
    if not MIN_TS <= seconds <= now_ns / 1e9 + MAX_TS_AHEAD_S:  # False for NaN too
        raise ValueError(
            f"ts must be epoch seconds in [{MIN_TS:.0f}, now + {MAX_TS_AHEAD_S:.0f}], got {ts!r}"
        )
    return seconds
