"""``trading-sidecar``: the console script used by ``make run`` and the container image.

uvicorn owns signal handling: on SIGTERM it stops accepting HTTP and runs the lifespan
shutdown (which counts every frame already queued, then closes the socket). It then
re-raises the signal to whatever handler was there before it started; the handler
installed here turns that into a clean exit 0, which is what Kubernetes and ``make run``
expect from a graceful stop.

With a probe port (``TT_SIDECAR_PROBE_PORT``, 0 for none) the one uvicorn server listens
on two sockets; :class:`trading_sidecar.app.ProbePortOnly` keeps the second one to
``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import uvicorn
from telemetry_contract.cli import load_or_exit, new_parser, overlay
from telemetry_contract.graceful_exit import exit_zero_on_signals

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
    parser.add_argument("--zmq-bind", default=defaults.zmq_bind, help="ZeroMQ PULL bind address")
    parser.add_argument("--http-host", default=defaults.http_host, help="HTTP listen host")
    parser.add_argument("--http-port", type=int, default=defaults.http_port, help="HTTP port")
    parser.add_argument(
        "--log-level",
        default=defaults.log_level,
        choices=settings_mod.LOG_LEVELS,
        type=str.lower,
        help="logging threshold",
    )
    parser.add_argument(
        "--probe-port",
        type=int,
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
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
        access_log=False,
    )
    sockets = [config.bind_socket()]
    if settings.probe_port:
        sockets.append(_probe_config(config, settings.probe_port).bind_socket())
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()


def _probe_config(config: uvicorn.Config, port: int) -> uvicorn.Config:
    """A config used only to bind the probe socket the way uvicorn binds its own."""
    return uvicorn.Config(
        config.app, host=config.host, port=port, log_level=config.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
