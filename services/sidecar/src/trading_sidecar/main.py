"""``trading-sidecar``: the console script used by ``make run`` and the container image.

uvicorn owns signal handling: on SIGTERM it stops accepting HTTP and runs the lifespan
shutdown (which counts every frame already queued, then closes the socket). It then
re-raises the signal to whatever handler was there before it started; the handler
installed here turns that into a clean exit 0, which is what Kubernetes and ``make run``
expect from a graceful stop.

Every listener is opened before anything is served, each failure one line naming the
address and its setting (exit 1): the ZeroMQ address is tried first (and released: the
app binds it for real in its lifespan, after the CURVE handler is up), then the HTTP
port and the probe port (``TT_SIDECAR_PROBE_PORT``, off by default; the chart sets it),
which is served by a second server on its own thread (``telemetry_contract.http_server``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import uvicorn
import zmq
from telemetry_contract.cli import argument_type, load_or_exit, new_parser, overlay
from telemetry_contract.graceful_exit import exit_zero_on_signals
from telemetry_contract.http_server import (
    ListenError,
    ThreadedServer,
    announce,
    listen,
    server_config,
)
from telemetry_contract.settings_source import port, port_or_off, zmq_bind

from trading_sidecar import settings as settings_mod
from trading_sidecar.app import create_app
from trading_sidecar.curve import CurveConfigError

PROG = "trading-sidecar"


def build_parser(defaults: settings_mod.SidecarSettings) -> argparse.ArgumentParser:
    """The command line over the loaded settings; every option's dest is a field name."""
    parser = new_parser(
        PROG,
        "Pull trade events over ZeroMQ and serve them as Prometheus metrics.\n"
        f"Every option also reads from {settings_mod.PREFIX}<NAME> and .env "
        "(docs/configuration.md lists them all).",
        "trading-sidecar",
    )
    parser.add_argument(
        "--zmq-bind",
        type=argument_type(zmq_bind),
        default=defaults.zmq_bind,
        help="ZeroMQ PULL bind address",
    )
    parser.add_argument("--http-host", default=defaults.http_host, help="HTTP listen host")
    parser.add_argument(
        "--http-port", type=argument_type(port), default=defaults.http_port, help="HTTP port"
    )
    parser.add_argument(
        "--log-level",
        default=defaults.log_level,
        choices=settings_mod.LOG_LEVELS,
        type=str.lower,
        help="logging threshold",
    )
    parser.add_argument(
        "--probe-port",
        type=argument_type(port_or_off),
        default=defaults.probe_port,
        help="port answering only /healthz and /readyz (0: none)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    defaults = load_or_exit(settings_mod.load, PROG)
    parser = build_parser(defaults)
    # overlay() replaces the fields the options name and keeps every other one.
    settings = overlay(defaults, parser.parse_args(argv))
    if settings.probe_port and settings.probe_port == settings.http_port:
        parser.error(f"the probe port must differ from the HTTP port ({settings.http_port})")
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    exit_zero_on_signals()
    try:
        app = create_app(settings)
    except CurveConfigError as exc:
        parser.error(str(exc))
    try:
        check_zmq_bind(settings.zmq_bind)
        sock = listen(settings.http_host, settings.http_port, f"{settings_mod.PREFIX}HTTP_PORT")
        probe_sock = (
            listen(settings.http_host, settings.probe_port, f"{settings_mod.PREFIX}PROBE_PORT")
            if settings.probe_port
            else None
        )
    except ListenError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    announce(sock, "/metrics, /healthz, /readyz")
    probe = None
    if probe_sock is not None:
        announce(probe_sock, "/healthz, /readyz (probe port)")
        probe = ThreadedServer(app.state.probe_app, probe_sock, log_level=settings.log_level)
        probe.start()
    try:
        uvicorn.Server(server_config(app, log_level=settings.log_level)).run(sockets=[sock])
    finally:
        if probe is not None:
            probe.stop()
        for opened in (sock, probe_sock):
            if opened is not None:
                opened.close()


def check_zmq_bind(address: str) -> None:
    """Bind ``address`` once and let it go, so a taken port is one line naming the setting.

    The app binds it again in its lifespan, after the CURVE handler is up; binding for
    good here would let peers in before that. A wildcard port (``:*``) cannot clash.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = context.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(address)
        except zmq.ZMQError as exc:
            raise ListenError(
                f"cannot bind {address} ({settings_mod.PREFIX}ZMQ_BIND): {exc}"
            ) from None
        finally:
            sock.close()
    finally:
        context.term()


if __name__ == "__main__":
    main()
