"""The publisher client a trading loop imports: one call per trade, never blocking.

``trade()`` formats the event with the contract's encoder and hands it to a PUSH
socket with ``NOBLOCK``. If the queue is full (or the socket is gone) the event is
counted as dropped and the call returns ``False``; it never waits and never raises
for transport reasons, because a trading loop must not stall on telemetry. ZeroMQ
queues events while the sidecar is absent and delivers them once it is up.

Every event carries ``src`` and an increasing ``seq``, advanced for dropped events
too, so the sidecar's lost-event count includes drops on this side as well as
anything lost on the way.

The client is not thread-safe, like the ZeroMQ socket under it: use one per thread,
or guard it with a lock (as the Streamlit UI does).
"""

from __future__ import annotations

import os
import socket as _socket
from dataclasses import dataclass
from types import TracebackType

import zmq
from telemetry_contract.codec import TradeEncoder
from telemetry_contract.events import MAX_SOURCE_LEN, TradeEvent
from telemetry_contract.transport import (
    DEFAULT_LINGER_MS,
    DEFAULT_SNDHWM,
    DEFAULT_ZMQ_ADDRESS,
)

from trading_publisher.sockets import monitored_push_socket

_NOBLOCK = zmq.NOBLOCK
_PEER_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED


def default_source() -> str:
    """``hostname-pid``: unique per process, so restarts start a fresh seq stream."""
    suffix = f"-{os.getpid()}"
    return _socket.gethostname()[: MAX_SOURCE_LEN - len(suffix)] + suffix


@dataclass(frozen=True)
class PublisherStats:
    sent: int
    dropped: int
    connected: bool


class Publisher:
    """Publishes trade events to the sidecar over ZeroMQ PUSH."""

    def __init__(
        self,
        address: str = DEFAULT_ZMQ_ADDRESS,
        *,
        source: str | None = None,
        sndhwm: int = DEFAULT_SNDHWM,
        linger_ms: int = DEFAULT_LINGER_MS,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.address = address
        self.source = source or default_source()
        self._encode = TradeEncoder(self.source)
        self._encode_now = self._encode.now
        self._own_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._socket, monitor = monitored_push_socket(
            self._context, address, _PEER_EVENTS, sndhwm=sndhwm, linger_ms=linger_ms
        )
        self._monitor: zmq.Socket[bytes] | None = monitor
        self._send = self._socket.send
        self._peer_fds: set[int] = set()
        self._seq = 0
        #: Events handed to ZeroMQ (queued or already on the wire).
        self.sent = 0
        #: Events refused because the queue was full or the socket unusable.
        self.dropped = 0

    def trade(self, side: str, qty: float, ts: float | None = None) -> bool:
        """Emit one trade; ``False`` means it was dropped (see :attr:`dropped`).

        Raises ``ValueError`` only for a bad ``side``/``qty``/``ts``: that is a bug in
        the caller, not a transport condition. Without ``ts`` the encoder stamps the
        event itself (its quick route); see docs/benchmark.md for what this costs.
        """
        seq = self._seq
        if ts is None:
            frame = self._encode_now(side, qty, seq)
        else:
            frame = self._encode(side, qty, ts, seq)
        self._seq = seq + 1
        try:
            self._send(frame, _NOBLOCK)
        except zmq.ZMQError:  # zmq.Again (queue full) or a closed socket/context
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def publish(self, event: TradeEvent) -> bool:
        """Emit a prepared event; its own ``src``/``seq`` are replaced by this client's."""
        return self.trade(event.side, event.qty, event.ts)

    @property
    def connected(self) -> bool:
        """Whether a TCP connection to the sidecar is up right now.

        Tracked per socket descriptor (both events carry the fd), not as a running
        count: a reconnect attempt that fails can report a disconnect for a connection
        that was never the live one, and a count would then go wrong for good.
        """
        monitor = self._monitor
        if monitor is None:
            return False
        while monitor.poll(0):
            frames = monitor.recv_multipart()
            event = int.from_bytes(frames[0][:2], "little")
            fd = int.from_bytes(frames[0][2:6], "little")
            if event == zmq.EVENT_CONNECTED:
                self._peer_fds.add(fd)
            elif event == zmq.EVENT_DISCONNECTED:
                self._peer_fds.discard(fd)
        return bool(self._peer_fds)

    def stats(self) -> PublisherStats:
        return PublisherStats(sent=self.sent, dropped=self.dropped, connected=self.connected)

    def close(self, linger_ms: int | None = None) -> None:
        """Flush for up to ``linger_ms`` (default: the socket's linger), then release."""
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        if not self._socket.closed:
            self._socket.close(linger=linger_ms)
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
