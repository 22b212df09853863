"""The publisher's end of the PUSH/PULL pipe: connected PUSH sockets.

Here rather than in the contract because only the services that open sockets depend
on pyzmq (the contract is installed where none is opened); the numbers (queue depth,
linger) still come from the contract.
"""

from __future__ import annotations

import zmq
from telemetry_contract.transport import DEFAULT_LINGER_MS, DEFAULT_SNDHWM, Heartbeat


def push_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    address: str,
    *,
    sndhwm: int = DEFAULT_SNDHWM,
    linger_ms: int = DEFAULT_LINGER_MS,
    heartbeat: Heartbeat | None = None,
) -> zmq.Socket[bytes]:
    """A connected PUSH socket; connecting never fails because the peer is absent."""
    sock = _push(context, sndhwm, linger_ms)
    apply_heartbeat(sock, heartbeat)
    sock.connect(address)
    return sock


def _push(
    context: zmq.Context[zmq.Socket[bytes]], sndhwm: int, linger_ms: int
) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.LINGER, linger_ms)
    return sock


def apply_heartbeat(sock: zmq.Socket[bytes], heartbeat: Heartbeat | None) -> None:
    """ZMQ_HEARTBEAT_IVL/_TIMEOUT/_TTL on ``sock``; before connect/bind, or they do not apply.

    ``None`` or a zero interval leaves heartbeats off (libzmq's default): a dead peer is
    then noticed only when the kernel gives up on the TCP connection.
    """
    if heartbeat is None or not heartbeat.interval_ms:
        return
    sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat.interval_ms)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, heartbeat.timeout_ms)
    sock.setsockopt(zmq.HEARTBEAT_TTL, heartbeat.ttl_ms)
