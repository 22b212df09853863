"""The sidecar's end of the PUSH/PULL pipe: a bound PULL socket with the contract's caps.

Here rather than in the contract because only the services that open sockets depend
on pyzmq; the numbers (high-water mark, frame cap) still come from the contract.
"""

from __future__ import annotations

import zmq
from telemetry_contract.transport import DEFAULT_RCVHWM, ZMQ_MAX_MSG_BYTES


def pull_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    address: str,
    *,
    rcvhwm: int = DEFAULT_RCVHWM,
    max_msg_bytes: int = ZMQ_MAX_MSG_BYTES,
) -> zmq.Socket[bytes]:
    """A bound PULL socket whose libzmq layer refuses absurdly large frames outright."""
    sock = context.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_msg_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(address)
    return sock
