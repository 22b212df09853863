"""ZeroMQ socket set-up for both ends of the PUSH/PULL pipe.

Kept beside the codec because the two ends must agree on it: the frame cap, the
queue depths, and the fact that the sidecar binds and publishers connect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import zmq

from telemetry_contract.codec import MAX_FRAME_BYTES

DEFAULT_ZMQ_ADDRESS: Final = "tcp://127.0.0.1:5555"
DEFAULT_SIDECAR_HTTP_PORT: Final = 8001
DEFAULT_PUBLISHER_HTTP_PORT: Final = 8002
DEFAULT_UI_PORT: Final = 8501
DEFAULT_PROMETHEUS_PORT: Final = 9090

#: Deep enough that a 1,000,000-event burst into a live sidecar queues instead of
#: dropping: ZMQ's default of 1,000 lost more than half of a 1,000-event burst.
DEFAULT_SNDHWM: Final = 2_000_000
DEFAULT_RCVHWM: Final = 1_000_000

#: Hard cap handed to libzmq as MAXMSGSIZE. Frames between MAX_FRAME_BYTES and this are
#: received and counted as ``oversize``; above it libzmq drops the sender's connection
#: (and whatever it had in flight) before allocating the frame, so memory stays bounded.
ZMQ_MAX_MSG_BYTES: Final = 16 * MAX_FRAME_BYTES

#: How long close() may wait to flush queued events before giving up, in ms.
DEFAULT_LINGER_MS: Final = 1_000


def push_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    address: str,
    *,
    sndhwm: int = DEFAULT_SNDHWM,
    linger_ms: int = DEFAULT_LINGER_MS,
) -> zmq.Socket[bytes]:
    """A connected PUSH socket; connecting never fails because the peer is absent."""
    sock = _push(context, sndhwm, linger_ms)
    sock.connect(address)
    return sock


def monitored_push_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    address: str,
    events: int,
    *,
    sndhwm: int = DEFAULT_SNDHWM,
    linger_ms: int = DEFAULT_LINGER_MS,
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    """Like :func:`push_socket`, plus a monitor socket receiving ``events``.

    The monitor is attached *before* ``connect``: attached after, the first CONNECTED
    event can fire before anyone listens and is lost (seen in about 1 of 20 starts),
    leaving a working link reported as down until it reconnects.
    """
    sock = _push(context, sndhwm, linger_ms)
    monitor = sock.get_monitor_socket(events)
    sock.connect(address)
    return sock, monitor


def _push(
    context: zmq.Context[zmq.Socket[bytes]], sndhwm: int, linger_ms: int
) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.LINGER, linger_ms)
    return sock


def pull_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    address: str,
    *,
    rcvhwm: int = DEFAULT_RCVHWM,
    max_msg_bytes: int = ZMQ_MAX_MSG_BYTES,
    configure: Callable[[zmq.Socket[bytes]], None] | None = None,
) -> zmq.Socket[bytes]:
    """A bound PULL socket whose libzmq layer refuses absurdly large frames outright.

    ``configure`` runs on the socket just before ``bind``: options such as CURVE's
    server keys only take effect when set before it.
    """
    sock = context.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_msg_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    if configure is not None:
        configure(sock)
    sock.bind(address)
    return sock
