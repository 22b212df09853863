"""Open a listening socket, or say in one line which port and which setting failed.

``[Errno 98] Address already in use`` alone does not say which of a service's listeners
clashed, nor which variable moves it. Standard library only, so the Streamlit launcher
(which has no uvicorn) checks its port the same way as the uvicorn servers bind theirs.
"""

from __future__ import annotations

import socket


class ListenError(Exception):
    """A listener could not be opened; the message is the one line to show."""


def listen(host: str, port: int, setting: str) -> socket.socket:
    """A bound TCP socket (SO_REUSEADDR, as uvicorn binds), or :class:`ListenError`
    naming ``host:port`` and the ``setting`` the port came from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and one made with proto 0 (as uvicorn makes its own) passes that on
    # to every accepted connection. A response is written as head then body, so with
    # Nagle on, each answer on a kept-alive connection waited ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        reason = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {shown}:{port} ({setting}): {reason}") from None
    return sock
