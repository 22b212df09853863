"""``zmq_send``/``zmq_recv`` called through ctypes *without* releasing the GIL.

Why: the publisher's flusher (a background thread) formats and sends batch frames while
the trading thread keeps running Python. pyzmq's ``send`` releases the GIL around
``zmq_msg_send``; a thread that gives the GIL away while another thread is busy in pure
Python gets it back only after the interpreter's switch interval (5 ms), so a flusher
sending 30 frames that way needs 30 switch intervals, falls behind and makes the trading
thread stall 30 times. A non-blocking ``zmq_send`` (``ZMQ_DONTWAIT``) never waits, so
holding the GIL through it is harmless, and one flush becomes one GIL hold: one pause of
the trading thread instead of many. It is also cheaper per call (~0.35 µs of ctypes
overhead against ~1.3 µs for pyzmq's ``send``, and no exception object for a full queue).

The functions come from the libzmq that pyzmq itself loaded: ``dlsym`` on pyzmq's own
extension module resolves through its dependencies, so this is the same library
instance, never a second copy. Where that is unavailable (another pyzmq backend), the
caller falls back to pyzmq's ``send``; :func:`load` returns ``None`` then.

Arguments are passed without ``argtypes`` (declaring them doubles the call cost): the
socket handle as a ``c_void_p``, the frame as ``bytes`` (``char *`` into the immutable
object, alive for the call), the length and flags as Python ints, which libffi widens
to the register size on the 64-bit ABIs pyzmq ships wheels for; frames are far below
2**31 bytes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

ZMQ_DONTWAIT = 1


@dataclass(frozen=True)
class DirectZmq:
    """Bound libzmq entry points; every call returns libzmq's int (``-1`` on error)."""

    send: Callable[[Any, bytes, int, int], int]
    recv: Callable[[Any, Any, int, int], int]


def load() -> DirectZmq | None:
    """The GIL-holding entry points, or ``None`` when this pyzmq cannot provide them."""
    try:
        from zmq.backend.cython import _zmq

        lib = ctypes.PyDLL(_zmq.__file__)
        send, recv, version = lib.zmq_send, lib.zmq_recv, lib.zmq_version
    except (ImportError, OSError, AttributeError):
        return None
    major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    if (major.value, minor.value, patch.value) != zmq.zmq_version_info():
        return None  # not the library pyzmq uses: never mix two libzmq instances
    send.restype = ctypes.c_int
    recv.restype = ctypes.c_int
    return DirectZmq(send=send, recv=recv)


def handle(socket: zmq.Socket[bytes]) -> ctypes.c_void_p:
    """The socket's ``void *`` for the direct calls (valid until the socket closes)."""
    return ctypes.c_void_p(socket.underlying)
