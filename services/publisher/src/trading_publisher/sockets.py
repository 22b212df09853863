"""The publisher's end of the PUSH/PULL pipe: how a PUSH socket is set up.

:func:`client_socket` is the one place the client's sockets get their options
(``ZMQ_IMMEDIATE``, HWM, linger, heartbeats, CURVE); :func:`push_socket` is a plain
connected PUSH for callers that send ready frames and may outlive an absent peer (the
benchmark's floor, its result delivery, tests): no ``IMMEDIATE``, so a frame sent before
the connection is up waits in the queue instead of blocking or failing. Here rather than
in the contract because only the services that open sockets depend on pyzmq; the
numbers still come from the contract.
"""

from __future__ import annotations

import zmq
from telemetry_contract.transport import DEFAULT_LINGER_MS, DEFAULT_SNDHWM, Heartbeat

from trading_publisher.options import CurveKeys


def push_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    address: str,
    *,
    sndhwm: int = DEFAULT_SNDHWM,
    linger_ms: int = DEFAULT_LINGER_MS,
    heartbeat: Heartbeat | None = None,
) -> zmq.Socket[bytes]:
    """A plain connected PUSH socket (no ``IMMEDIATE``, no CURVE: not the client's set-up,
    see :func:`client_socket`); connecting never fails because the peer is absent."""
    sock = _push(context, sndhwm, linger_ms)
    apply_heartbeat(sock, heartbeat)
    sock.connect(address)
    return sock


def client_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    *,
    sndhwm: int,
    linger_ms: int,
    heartbeat: Heartbeat | None,
    curve: CurveKeys | None,
) -> zmq.Socket[bytes]:
    """A PUSH socket set up as every client socket is, not yet connected (the caller
    attaches its monitor first, or the first CONNECTED can be missed)."""
    sock = _push(context, sndhwm, linger_ms)
    # Queue only on a live connection: a frame never outlives its connection to reach
    # the next peer under an old epoch (docs/contract.md).
    sock.setsockopt(zmq.IMMEDIATE, 1)
    apply_heartbeat(sock, heartbeat)
    if curve is not None:
        sock.curve_serverkey = curve.server_public
        sock.curve_publickey = curve.public
        sock.curve_secretkey = curve.secret
    return sock


def _push(
    context: zmq.Context[zmq.Socket[bytes]], sndhwm: int, linger_ms: int
) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.LINGER, linger_ms)
    return sock


def apply_heartbeat(sock: zmq.Socket[bytes], heartbeat: Heartbeat | None) -> None:
    """ZMQ_HEARTBEAT_* on ``sock`` (before connect/bind, or they do not apply); ``None``
    or a zero interval leaves them off (:meth:`Heartbeat.socket_options`)."""
    for name, value in heartbeat.socket_options() if heartbeat is not None else ():
        sock.setsockopt(getattr(zmq, name), value)
