"""The client's sockets: one PUSH socket per sidecar endpoint, each its own seq stream.

Exact loss accounting (docs/contract.md, "The publisher's side") is kept here: each
socket has a random 53-bit ``stream`` id and its own ``seq``; ``epoch`` counts the
socket's TCP connections (monitor ``EVENT_CONNECTED``) after the first and is read
right before a frame is stamped; ``ZMQ_IMMEDIATE`` makes a frame die with its
connection instead of reaching the next peer under an old epoch; and events the client
gives up still consume ``seq`` numbers (:meth:`Streams.consume`), so the sidecar that
sees the stream's next frame counts them as lost.
"""

from __future__ import annotations

import ctypes
import secrets
from collections.abc import Callable
from typing import Final

import zmq
from telemetry_contract.transport import Heartbeat

from trading_publisher import zmq_direct
from trading_publisher.options import CurveKeys
from trading_publisher.sockets import client_socket

DONTWAIT: Final = zmq_direct.ZMQ_DONTWAIT
_PEER_EVENTS: Final = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED

#: pyzmq's Cython ``Socket.send`` itself, skipping the Python-level wrapper of
#: ``zmq.Socket`` (routing/str checks the client never needs); the wrapper elsewhere.
socket_send: Callable[[zmq.Socket[bytes], bytes, int], object]
try:
    from zmq.backend.cython._zmq import Socket as _CythonSocket

    socket_send = _CythonSocket.send  # type: ignore[assignment]
except ImportError:  # another pyzmq backend
    socket_send = zmq.Socket.send


class Stream:
    """One PUSH socket: its stream id, epoch, next seq and live connections."""

    __slots__ = (
        "address", "epoch", "handle", "monitor", "mhandle", "peers", "seen", "seq",
        "socket", "stream",
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


class Streams:
    """Every socket of one client, in round-robin order, and how to send on them."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        addresses: list[str],
        *,
        sndhwm: int,
        linger_ms: int,
        curve: CurveKeys | None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.sndhwm = sndhwm
        self.heartbeat = heartbeat
        self.linger_ms = linger_ms
        self._context = context
        self._direct = zmq_direct.load()
        self._mbuf = ctypes.create_string_buffer(256)
        self.all: list[Stream] = []
        try:
            for address in addresses:
                self.all.append(self._open(address, curve))
        except BaseException:
            self.close(0)  # a caller's context must still terminate: none left open
            raise
        #: Index of the stream the next frame tries first.
        self.rr = 0
        #: The round-robin successor of each socket index, looked up instead of computed.
        self.next_rr = [(i + 1) % len(self.all) for i in range(len(self.all))]
        #: ``send(stream, frame) -> bool`` without blocking; GIL-holding when available.
        self.send = self._send_direct if self._direct is not None else self._send_pyzmq

    def _open(self, address: str, curve: CurveKeys | None) -> Stream:
        sock = client_socket(
            self._context,
            sndhwm=self.sndhwm,
            linger_ms=self.linger_ms,
            heartbeat=self.heartbeat,
            curve=curve,
        )
        # The monitor is attached before connect, or the first CONNECTED can be missed.
        monitor = sock.get_monitor_socket(_PEER_EVENTS)
        try:
            sock.connect(address)
        except zmq.ZMQError as exc:
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close(linger=0)
            raise ValueError(f"cannot connect to {address!r}: {exc.strerror}") from None
        return Stream(sock, monitor, address)

    def _send_direct(self, s: Stream, frame: bytes) -> bool:
        """``zmq_send`` holding the GIL (see :mod:`trading_publisher.zmq_direct`)."""
        assert self._direct is not None
        return bool(self._direct.send(s.handle, frame, len(frame), DONTWAIT) >= 0)

    @staticmethod
    def _send_pyzmq(s: Stream, frame: bytes) -> bool:
        """The fallback send (no direct libzmq): same contract, via pyzmq."""
        try:
            s.socket.send(frame, zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        return True

    def poll(self) -> None:
        """Apply every socket's pending connection events."""
        for s in self.all:
            self.poll_one(s)

    def poll_one(self, s: Stream) -> None:
        """Apply the socket's connection events; a new connection after the first is a
        new epoch (docs/contract.md). Called right before stamping frames for ``s``."""
        direct = self._direct
        while True:
            if direct is not None:
                buf = self._mbuf
                if direct.recv(s.mhandle, buf, 256, DONTWAIT) < 0:
                    return
                head = buf.raw[:6]
                direct.recv(s.mhandle, buf, 256, DONTWAIT)  # endpoint part
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
                s.peers.add(fd)
            elif event == zmq.EVENT_DISCONNECTED:
                s.peers.discard(fd)

    def next_live(self) -> Stream | None:
        """The next stream in turn with a live connection (its monitor read just now),
        made the current one; ``None`` when no socket has a connection."""
        for _ in range(len(self.all)):
            s = self.all[self.rr]
            self.poll_one(s)
            if s.peers:
                return s
            self.rr = self.next_rr[self.rr]
        return None

    def advance(self) -> None:
        """The next frame goes to the next socket (round-robin)."""
        self.rr = self.next_rr[self.rr]

    def consume(self, count: int) -> None:
        """``count`` events given up: they take seq numbers of the next stream in turn, so
        the sidecar that receives that stream's next frame counts them as lost."""
        if count > 0:
            self.all[self.rr].seq += count
            self.advance()

    @property
    def connected(self) -> bool:
        self.poll()
        return any(s.peers for s in self.all)

    def describe(self) -> list[tuple[str, int, int, int]]:
        return [(s.address, s.stream, s.epoch, s.seq) for s in self.all]

    def close(self, linger_ms: int) -> None:
        for s in self.all:
            s.peers.clear()
            s.socket.disable_monitor()
            s.monitor.close(linger=0)
            s.socket.close(linger=linger_ms)
