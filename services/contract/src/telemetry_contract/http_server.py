"""Every HTTP listener the project runs (sidecar ``/metrics``, its probe port, the publisher's
``POST /trade/{side}``) is a uvicorn server set up here, one way.

- ``listeners.listen`` binds the socket first, so a taken port or a bad host is one line
  naming the address and the setting it came from, never uvicorn's bare ``[Errno 98]``.
- uvicorn closes a connection that sits idle after a response (``timeout_keep_alive``) but
  arms no timer before the first request, nor while a request's head or body trickles in:
  a slowloris client held a connection (a file descriptor, a protocol object) forever.
  :func:`deadline_protocol` gives each request :data:`REQUEST_TIMEOUT_S` from the moment
  the server starts waiting for it until its last byte arrives; then the connection closes.
- :class:`ThreadedServer` runs a server on its own thread and event loop, so what it
  answers (the kubelet's probes) never queues behind work on the main loop.

Import it only where uvicorn is installed (the sidecar, ``trading-publisher[http]``): it is
here, as ``cli`` is, because both services import it and neither depends on the other.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, Final

import h11
import uvicorn
from uvicorn.config import LifespanType
from uvicorn.protocols.http.h11_impl import H11Protocol

from telemetry_contract.listeners import ListenError, listen

__all__ = ["ListenError", "ThreadedServer", "announce", "deadline_protocol", "listen"]

#: An ASGI application (uvicorn's own alias is private).
ASGIApp = Callable[..., Any]

#: From the moment a connection is accepted (or its previous response is sent) until the
#: request's last byte: a request is a few hundred bytes, so a client that needs longer is
#: stalled or hostile. Kubelet probes time out after a second or more; Prometheus sends
#: its whole scrape request at once.
REQUEST_TIMEOUT_S: Final = 10.0
#: A kept-alive connection with no next request is closed after this long (uvicorn's own).
IDLE_TIMEOUT_S: Final = 5

log = logging.getLogger(__name__)


def deadline_protocol(timeout: float = REQUEST_TIMEOUT_S) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline on each request's arrival (see module doc).

    The deadline is armed when the connection opens and after each response, and
    disarmed once h11 has the whole request (head and body); the app's own time is not
    limited. uvicorn's keep-alive timer still closes an idle connection sooner.
    """

    class DeadlineH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
                self._disarm()  # the whole request is in (or the connection is done)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state in (
                h11.IDLE,
                h11.SEND_BODY,
            ):
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                log.debug("closing %s: no complete request within %ss", self.client, timeout)
                self.transport.close()

    return DeadlineH11Protocol


def server_config(
    app: ASGIApp,
    *,
    log_level: str = "info",
    lifespan: LifespanType = "auto",
    request_timeout: float = REQUEST_TIMEOUT_S,
) -> uvicorn.Config:
    """The one uvicorn configuration: h11 with request deadlines, no access log."""
    return uvicorn.Config(
        app,
        http=deadline_protocol(request_timeout),
        timeout_keep_alive=IDLE_TIMEOUT_S,
        log_level=log_level,
        access_log=False,
        lifespan=lifespan,
    )


def announce(sock: socket.socket, what: str) -> None:
    """Log where ``sock`` listens (uvicorn logs this only for sockets it binds itself)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    log.info("listening on http://%s:%d (%s)", shown, port, what)


class ThreadedServer:
    """A uvicorn server on a thread of its own (its own event loop), for ``sock``.

    uvicorn installs no signal handlers off the main thread; the owner stops it with
    :meth:`stop`. The app runs without a lifespan: it only reads state the main app owns.
    """

    def __init__(self, app: ASGIApp, sock: socket.socket, *, log_level: str) -> None:
        self.server = uvicorn.Server(server_config(app, log_level=log_level, lifespan="off"))
        self.sock = sock
        # Not a daemon: the interpreter waits for it at exit, so its event loop is closed
        # by asyncio.run, never finalised half-torn-down (a traceback on Ctrl-C).
        self.thread = threading.Thread(target=self._run, name="http-probe", daemon=False)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException:  # noqa: BLE001 - a dead probe server is logged, not silent
            log.exception("the probe server stopped")

    def start(self) -> ThreadedServer:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
