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
    """ZMQ_HEARTBEAT_* on ``sock`` (before connect/bind, or they do not apply); ``None``
    or a zero interval leaves them off (:meth:`Heartbeat.socket_options`)."""
    for name, value in heartbeat.socket_options() if heartbeat is not None else ():
        sock.setsockopt(getattr(zmq, name), value)
