"""The sidecar's end of the PUSH/PULL pipe: a bound PULL socket with the contract's caps.

Here rather than in the contract because only the services that open sockets depend
on pyzmq; the numbers (high-water mark, frame cap) still come from the contract.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq
from telemetry_contract.transport import DEFAULT_RCVHWM, ZMQ_MAX_MSG_BYTES, Heartbeat


def pull_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    address: str,
    *,
    rcvhwm: int = DEFAULT_RCVHWM,
    max_msg_bytes: int = ZMQ_MAX_MSG_BYTES,
    configure: Callable[[zmq.Socket[bytes]], None] | None = None,
    heartbeat: Heartbeat | None = None,
) -> zmq.Socket[bytes]:
    """A bound PULL socket whose libzmq layer refuses absurdly large frames outright.

    ``configure`` runs on the socket just before ``bind``: options such as CURVE's
    server keys only take effect when set before it.
    """
    sock = context.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_msg_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    apply_heartbeat(sock, heartbeat)
    if configure is not None:
        configure(sock)
    sock.bind(address)
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
