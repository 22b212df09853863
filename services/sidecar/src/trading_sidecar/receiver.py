"""The PULL loop: frames in, typed events out into :class:`TradeMetrics`.

It runs on its own thread rather than on the asyncio loop: a blocking ``recv`` in a
tight loop is the cheapest way to drain ZeroMQ, and it keeps HTTP scrapes from ever
delaying ingestion (or the reverse). One path for every frame: recv → the contract's
``decode_into`` (the only code that knows the wire layout) → ``metrics.record`` on
typed events, a chunk at a time. Nothing a sender does can end the loop: every frame is
counted as events or under a reject reason, and any exception nobody expected is
counted as ``internal_error``, its first traceback logged, and the loop goes on.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

import zmq
from telemetry_contract.codec import decode_frames, decode_into
from telemetry_contract.errors import InvalidMessage, Reason
from telemetry_contract.events import Event
from telemetry_contract.transport import DEFAULT_RCVHWM, Heartbeat

from trading_sidecar.log_throttle import ThrottledRejectLog
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.sockets import pull_socket

log = logging.getLogger(__name__)

#: Frames handled per wake-up before the loop refreshes its heartbeat and stop flag.
DRAIN_BATCH = 4096
#: On stop, the socket closes once no frame has arrived for this long (after unbinding).
QUIET_MS = 50


class Receiver:
    """Owns the PULL socket and the thread that drains it."""

    def __init__(
        self,
        address: str,
        metrics: TradeMetrics,
        *,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        rcvhwm: int = DEFAULT_RCVHWM,
        poll_ms: int = 100,
        configure: Callable[[zmq.Socket[bytes]], None] | None = None,
        checkpoint: Callable[[], None] | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.address = address
        self.metrics = metrics
        self._context = context or zmq.Context.instance()
        self._rcvhwm = rcvhwm
        self._poll_ms = poll_ms
        #: Runs on the socket before bind (CURVE server options, see curve.py).
        self._configure = configure
        #: Runs between drains, where totals and loss positions agree (state.py snapshots).
        self._checkpoint = checkpoint
        #: ZMTP heartbeats on the PULL socket: a publisher whose link froze is dropped.
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._rejects = ThrottledRejectLog(log)
        self._logged_internal = False
        self.heartbeat = 0.0
        #: The address actually bound (resolves a ``:*`` wildcard port).
        self.bound_address = ""

    def start(self) -> None:
        """Bind in the caller's thread, so a taken port fails start-up loudly."""
        self._socket = pull_socket(
            self._context,
            self.address,
            rcvhwm=self._rcvhwm,
            configure=self._configure,
            heartbeat=self._heartbeat,
        )
        self.bound_address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.heartbeat = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="zmq-pull", daemon=True)
        self._thread.start()
        log.info("pulling trade events on %s", self.bound_address)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking new wake-ups, count what is already queued, close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self, stall_seconds: float) -> bool:
        """True while the loop thread runs and has checked in recently."""
        thread = self._thread
        return (
            thread is not None
            and thread.is_alive()
            and time.monotonic() - self.heartbeat < stall_seconds
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def _run(self) -> None:
        sock = self._socket
        assert sock is not None
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                try:
                    if sock.poll(self._poll_ms, zmq.POLLIN):
                        self._drain(sock, DRAIN_BATCH)
                    if self._checkpoint is not None:
                        self._checkpoint()
                except Exception as exc:  # the last guard: count, log, go on
                    if isinstance(exc, zmq.ContextTerminated):
                        raise
                    self._internal_error(exc)
                    time.sleep(0.01)  # a persistent fault must not become a busy loop
            drained = self._final_drain(sock)
            log.info("stopping: counted %d frames that were already queued", drained)
        except Exception:  # pragma: no cover - only a dead socket gets here
            log.exception("receive loop stopped; /healthz now reports 503")
            raise
        finally:
            sock.close(linger=0)

    def _final_drain(self, sock: zmq.Socket[bytes]) -> int:
        """Count everything that reached this socket before it closes.

        Unbinding first closes the publishers' connections: what they send from then on
        stays in their own queues and goes to the next sidecar (or this one restarted)
        instead of into a socket about to close. Frames that already arrived stay
        readable and are counted, until none has come for QUIET_MS. What was still in
        the kernel's TCP buffers at that instant is gone (ZeroMQ has no acknowledgements);
        the publisher's seq numbers make it count as lost when it reconnects.
        """
        try:
            sock.unbind(self.bound_address)
        except zmq.ZMQError as exc:  # already gone: drain what is there all the same
            log.debug("unbind %s: %s", self.bound_address, exc)
        drained = self._drain(sock, None)
        while sock.poll(QUIET_MS, zmq.POLLIN):
            drained += self._drain(sock, None)
        return drained

    def _drain(self, sock: zmq.Socket[bytes], limit: int | None) -> int:
        return drain(sock, self.metrics, self._reject, limit, self._internal_error)

    def _reject(self, exc: InvalidMessage) -> None:
        self.metrics.record_invalid(exc.reason)
        self._rejects.rejected(exc)

    def _internal_error(self, exc: BaseException) -> None:
        """Count an unexpected exception; log the first one with its traceback."""
        self.metrics.record_invalid(Reason.INTERNAL_ERROR)
        if not self._logged_internal:
            self._logged_internal = True
            log.error("unexpected error in the receive loop (counted, going on)", exc_info=exc)
        else:
            self._rejects.rejected(InvalidMessage(Reason.INTERNAL_ERROR, repr(exc)))


#: Frames decoded and counted together at most; bounds how long an event waits, and
#: (with batch frames of 64) keeps a chunk's events within a few thousand objects.
COUNT_CHUNK = 64


def _log_internal(exc: BaseException) -> None:
    log.error("unexpected error while counting (counted, going on)", exc_info=exc)


def drain(
    sock: zmq.Socket[bytes],
    metrics: TradeMetrics,
    reject: Callable[[InvalidMessage], None],
    limit: int | None,
    internal_error: Callable[[BaseException], None] | None = None,
) -> int:
    """Handle queued frames without blocking, up to ``limit`` frames (None: all).

    A module function rather than a method so the benchmark's ``ingest`` mode times
    exactly this code, the sidecar's real per-frame work, on a socket of its own.
    Frames are received as ``zmq.Frame`` (its ``more`` flag is read from the message,
    where ``getsockopt(RCVMORE)`` costs a call per frame: measured 0.94 against 1.38 µs
    per frame, and ``Frame.buffer``, a memoryview, 2.6 µs) and their bytes collected up
    to COUNT_CHUNK; then the contract decodes the chunk in one call
    (``decode_frames``) and the typed events are counted in one call
    (:meth:`TradeMetrics.record`), in arrival order. ``received`` (frames) is bumped
    first, so a scrape never sees more trades than frames.
    """
    if internal_error is None:
        internal_error = _internal_counter(metrics)
    recv = sock.recv
    noblock = zmq.NOBLOCK
    frames: list[bytes] = []
    add = frames.append
    events: list[Event] = []
    budget = sys.maxsize if limit is None else limit
    handled = budget  # unless the queue runs dry first
    room = COUNT_CHUNK
    for index in range(budget):
        try:
            message = recv(noblock, copy=False)
        except zmq.Again:
            handled = index
            break
        if message.more:
            metrics.received += 1
            while sock.getsockopt(zmq.RCVMORE):
                recv(noblock)
            reject(InvalidMessage(Reason.MULTIPART, "expected a single-part frame"))
            continue
        add(message.bytes)
        room -= 1
        if not room:
            _count(metrics, frames, events, reject, internal_error)
            room = COUNT_CHUNK
    if frames:
        _count(metrics, frames, events, reject, internal_error)
    return handled


def _count(
    metrics: TradeMetrics,
    frames: list[bytes],
    events: list[Event],
    reject: Callable[[InvalidMessage], None],
    internal_error: Callable[[BaseException], None],
) -> None:
    """Decode and count one chunk; an unexpected exception costs only its own frame."""
    now = time.time()
    metrics.received += len(frames)
    try:
        rejects = decode_frames(frames, events, now)
    except Exception:  # a bug in decoding: find the frame, count the rest as usual
        events.clear()
        rejects = []
        for frame in frames:
            try:
                rejects.extend(decode_into(frame, events, now))
            except InvalidMessage as exc:
                rejects.append(exc)
            except Exception as exc:
                internal_error(exc)
    frames.clear()
    for item in rejects:
        reject(item)
    try:
        metrics.record(events, now)
    except Exception as exc:  # counted and logged; the next chunk is counted as usual
        internal_error(exc)
    events.clear()


def _internal_counter(metrics: TradeMetrics) -> Callable[[BaseException], None]:
    """For callers without a Receiver (the benchmark): count, and log each one."""

    def count(exc: BaseException) -> None:
        metrics.record_invalid(Reason.INTERNAL_ERROR)
        _log_internal(exc)

    return count
