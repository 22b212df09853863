"""``trading-sidecar``: the console script used by ``make run`` and the container image.

uvicorn owns signal handling: on SIGTERM it stops accepting HTTP and runs the lifespan
shutdown (which counts every frame already queued, then closes the socket). It then
re-raises the signal to whatever handler was there before it started; the handler
installed here turns that into a clean exit 0, which is what Kubernetes and ``make run``
expect from a graceful stop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn
from telemetry_contract.cli import load_or_exit, new_parser
from telemetry_contract.graceful_exit import exit_zero_on_signals

from trading_sidecar import settings as settings_mod
from trading_sidecar.app import create_app


def main(argv: Sequence[str] | None = None) -> None:
    prog = "trading-sidecar"
    defaults = load_or_exit(settings_mod.load, prog)
    parser = new_parser(
        prog,
        "Pull trade events over ZeroMQ and serve them as Prometheus metrics.\n"
        f"Every option also reads from {settings_mod.PREFIX}<NAME> and .env.",
        "trading-sidecar",
    )
    parser.add_argument("--zmq-bind", default=defaults.zmq_bind, help="ZeroMQ PULL bind address")
    parser.add_argument("--http-host", default=defaults.http_host, help="HTTP listen host")
    parser.add_argument("--http-port", type=int, default=defaults.http_port, help="HTTP port")
    parser.add_argument(
        "--log-level",
        default=defaults.log_level,
        choices=["debug", "info", "warning", "error", "critical"],
        type=str.lower,
        help="logging threshold",
    )
    args = parser.parse_args(argv)
    settings = settings_mod.SidecarSettings(
        zmq_bind=args.zmq_bind,
        http_host=args.http_host,
        http_port=args.http_port,
        rcvhwm=defaults.rcvhwm,
        log_level=args.log_level,
        stall_seconds=defaults.stall_seconds,
    )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    exit_zero_on_signals()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
        access_log=False,
    )


if __name__ == "__main__":
    main()
