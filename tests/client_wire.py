"""What the publisher client puts on the wire, read in-process by the unit tests.

Real ZeroMQ PULL sockets on ``tcp://127.0.0.1:*`` (the client's monitors report TCP
connections, which inproc has none of) and the contract's own decoders: a frame is read
exactly as a sidecar would read it, so a test pins what a user of the client relies on
(seqs, streams, epochs, the columns of a batch), never how the client got there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq
from telemetry_contract.codec import decode
from telemetry_contract.events import Trade, TradeColumns
from telemetry_contract.frames import is_columns

#: Ceilings for what takes milliseconds on loopback: generous for a shared machine, short
#: enough that a client that never delivers fails fast (the tier runs once per mutant).
ARRIVES_S = 5.0

Row = tuple[str, float, float, str | None, int | None, int | None, int | None]


def rows(raw: bytes) -> list[Row]:
    """Every trade a frame stands for, decoded by the contract: (side, qty, ts, src, seq,
    stream, epoch)."""
    decoded = decode(raw)
    assert not decoded.rejects, decoded.rejects
    trades = [e for e in decoded.events if isinstance(e, Trade)]
    assert len(trades) == len(decoded.events)
    return [(e.side, e.qty, e.ts, e.src, e.seq, e.stream, e.epoch) for e in trades]


def columns(raw: bytes) -> TradeColumns:
    """A columnar frame's fields as sent (the contract's struct)."""
    assert is_columns(raw), raw[:40]
    return msgspec.msgpack.decode(raw, type=TradeColumns)


def single(raw: bytes) -> dict[str, Any]:
    """A single-object frame's JSON fields as sent."""
    assert not is_columns(raw), raw[:40]
    parsed: dict[str, Any] = msgspec.json.decode(raw)
    return parsed


def wait_until(check: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def writable(socks: list[zmq.Socket[bytes]]) -> bool:
    """Whether every PUSH socket can queue a frame now. The monitor's CONNECTED comes at
    TCP connect, before the ZeroMQ handshake: until it completes, an ``IMMEDIATE``
    socket refuses frames (the client holds them for its next flush). Tests that pin
    what one flush sends wait for this first (call with the client's lock held)."""
    return all(int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLOUT for sock in socks)


class Wire:
    """PULL sockets (and silent TCP listeners) on one context, all closed at teardown."""

    def __init__(self) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.socks: list[zmq.Socket[bytes]] = []
        self.listeners: list[socket.socket] = []

    def pull(self, port: int | None = None) -> tuple[zmq.Socket[bytes], str]:
        """A PULL socket bound on loopback (a given port, or one ZeroMQ picks)."""
        sock = self.ctx.socket(zmq.PULL)
        sock.linger = 0
        self.socks.append(sock)
        if port is None:
            port = sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            sock.bind(f"tcp://127.0.0.1:{port}")
        return sock, f"tcp://127.0.0.1:{port}"

    def silent(self) -> str:
        """A TCP listener that never speaks ZeroMQ: the connection is up (the monitor says
        so) but the handshake never completes, so every send on it fails (IMMEDIATE)."""
        server = socket.create_server(("127.0.0.1", 0))
        self.listeners.append(server)
        return f"tcp://127.0.0.1:{server.getsockname()[1]}"

    @staticmethod
    def recv(sock: zmq.Socket[bytes], timeout_s: float = ARRIVES_S) -> bytes | None:
        if not sock.poll(int(timeout_s * 1000)):
            return None
        return sock.recv()

    @staticmethod
    def drain(sock: zmq.Socket[bytes], events: int, extra_s: float = 0.02) -> list[bytes]:
        """Frames until they hold ``events`` events (or nothing comes for ARRIVES_S),
        then any that follow within ``extra_s``: frames sent before the last expected
        one arrive before it (one connection, in order), so a short look suffices."""
        found: list[bytes] = []
        got = 0
        while got < events:
            raw = Wire.recv(sock)
            if raw is None:
                return found
            found.append(raw)
            got += len(columns(raw).qty) if is_columns(raw) else 1
        while sock.poll(int(extra_s * 1000)):
            found.append(sock.recv())
        return found

    def close(self) -> None:
        for sock in self.socks:
            sock.close(linger=0)
        for server in self.listeners:
            server.close()
        self.ctx.term()
