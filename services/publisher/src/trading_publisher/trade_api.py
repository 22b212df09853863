"""``POST /trade/{side}``: emit a trade event over HTTP, for callers that are not Python.

A thin door in front of the same never-blocking :class:`Publisher` the UI uses. The
endpoints are ``async def`` on purpose: they all run on the event loop's one thread,
so the (thread-unsafe) ZeroMQ socket is never shared between threads and needs no
lock, and ``Publisher.trade`` never blocks, so it cannot stall the loop either.

Input is checked here, before the encoder, with the contract's own types, so a caller
gets a 4xx that says what was wrong (413 for a body above MAX_BODY_BYTES) and never a
500; nothing invalid ever reaches the sidecar. A dropped event is
still a 202 with ``"sent": false``: the request was fine, telemetry was shed by design.

Any web page open in a user's browser can send requests here, so before anything else
(OWASP's CSRF advice): ``Host`` must be an allowed one (DNS rebinding), a body must come as
``application/json`` (which a cross-site form cannot send without a CORS preflight, which
is never granted), and a browser's ``Origin`` / ``Sec-Fetch-Site`` must say same-origin.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telemetry_contract.cli import argument_type, load_or_exit, new_parser, overlay
from telemetry_contract.events import MAX_QTY, SIDES, Qty
from telemetry_contract.graceful_exit import exit_zero_on_signals
from telemetry_contract.http_server import ListenError, announce, listen, server_config
from telemetry_contract.settings_source import port, zmq_connect

from trading_publisher import settings as settings_mod
from trading_publisher.client import Publisher
from trading_publisher.settings import PublisherSettings

DEFAULT_QTY = 1.0
#: A trade request is a few bytes; refuse to buffer anything much larger (413).
MAX_BODY_BYTES = 4096


class BadRequest(ValueError):
    """Input the caller must fix; the message is returned to them verbatim."""

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


class TradeBody(msgspec.Struct, forbid_unknown_fields=True):
    """The optional JSON body: ``{"qty": 2}``; qty bounded exactly as on the wire."""

    qty: Qty | None = None


_BODY: Final = msgspec.json.Decoder(TradeBody).decode
_BODY_HINT: Final = 'body must be a JSON object such as {"qty": 2}'
_QTY_RANGE: Final = f"qty must be a finite number >= 0 and <= {MAX_QTY:g}"


def _check_qty(raw: float) -> float:
    """A query-string qty, validated by the contract's own ``Qty`` type."""
    try:
        qty: float = msgspec.convert(raw, Qty)
    except msgspec.ValidationError:
        raise BadRequest(f"{_QTY_RANGE}, got {raw!r}") from None
    return qty


#: A query-string qty: ASCII decimal digits with an optional fraction. ``float()`` would
#: also take ``1_000``, other scripts' digits, exponents, ``inf`` and surrounding blanks.
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _qty_from_query(raw: str) -> float:
    if not _DECIMAL.fullmatch(raw):
        raise BadRequest(f"qty must be a decimal number such as 2 or 0.5, got {raw!r}")
    return _check_qty(float(raw))


def _refusal(request: Request, hosts: frozenset[str], origins: frozenset[str]) -> str | None:
    """Why a browser-reachable request is refused (403), or None: see the module doc."""
    host = request.headers.get("host", "").lower()
    if "*" not in hosts and host not in hosts and host.rsplit(":", 1)[0] not in hosts:
        return f"Host {host!r} is not allowed (TT_PUBLISHER_HTTP_ALLOWED_HOSTS)"
    origin = request.headers.get("origin")
    if origin is not None:
        if origin.lower() not in origins and origin.lower() != f"http://{host}":
            return f"cross-site request from {origin!r} refused"
    elif request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused (Sec-Fetch-Site)"
    return None


def _json_content_type(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


async def _qty_from_body(request: Request) -> float | None:
    """The body's ``qty``, or ``None`` when there is no body at all.

    msgspec parses and validates in one step and refuses what ``json.loads`` would let
    through or choke on: NaN/Infinity literals, 1e309, and nesting deep enough to
    raise ``RecursionError`` (a 500 before). Every failure is a :class:`BadRequest`.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", 413)
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", 413)
    except ClientDisconnect:  # gone, or closed for sending too slowly: no one to answer
        raise BadRequest("the client went away before its body arrived", 400) from None
    if not body.strip():
        return None
    if not _json_content_type(request):
        raise BadRequest("a body must be sent as content-type: application/json", 415)
    try:
        payload = _BODY(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.startswith("Object contains unknown field"):
            raise BadRequest(f"{text}; the body takes only qty") from None
        if "$.qty" in text:
            if text.startswith("Expected `float | null`, got"):
                raise BadRequest(f"qty must be a number ({text})") from None
            raise BadRequest(f"{_QTY_RANGE} ({text})") from None
        raise BadRequest(_BODY_HINT) from None
    except msgspec.DecodeError as exc:  # includes NaN/Infinity literals: not JSON
        raise BadRequest(f"body is not valid JSON ({exc}); {_BODY_HINT}") from None
    except RecursionError:
        raise BadRequest(f"body nests too deep; {_BODY_HINT}") from None
    return payload.qty


async def _read_qty(request: Request) -> float:
    raw_query = request.query_params.getlist("qty")
    if len(raw_query) > 1:
        raise BadRequest("give qty once")
    from_body = await _qty_from_body(request)
    if raw_query and from_body is not None:
        raise BadRequest("give qty in the query string or in the body, not both")
    if raw_query:
        return _qty_from_query(raw_query[0])
    return DEFAULT_QTY if from_body is None else from_body


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def create_app(settings: PublisherSettings, publisher: Publisher | None = None) -> Starlette:
    """The app; given a ``publisher``, it uses that one and leaves closing it to the caller."""
    state: dict[str, Publisher] = {}
    hosts = allowed_hosts(settings)
    origins = frozenset(o.lower() for o in _items(settings.http_allowed_origins))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = publisher is None
        # One frame per request, sent before the response (batch_size=1).
        state["pub"] = publisher or Publisher.from_settings(settings, batch_size=1)
        try:
            yield
        finally:
            pub = state.pop("pub")
            if own:
                pub.close()  # flushes what is queued for up to the linger time

    async def trade(request: Request) -> Response:
        side = request.path_params["side"]
        if side not in SIDES:
            return _error(404, f"unknown side {side!r}: use /trade/{' or /trade/'.join(SIDES)}")
        refused = _refusal(request, hosts, origins)
        if refused is not None:
            return _error(403, refused)
        if "content-type" in request.headers and not _json_content_type(request):
            # A form (urlencoded, multipart, text/plain) is what a cross-site page can send.
            return _error(415, "send no body, or a body as content-type: application/json")
        try:
            qty = await _read_qty(request)
        except BadRequest as exc:
            return _error(exc.status_code, str(exc))
        pub = state["pub"]
        ts = time.time()
        sent = pub.trade(side, qty, ts)
        return JSONResponse(
            {
                "event": {"type": "trade", "side": side, "qty": qty, "ts": ts, "src": pub.source},
                "sent": sent,
                "publisher": {"sent": pub.sent, "dropped": pub.dropped},
            },
            status_code=202,
        )

    async def healthz(request: Request) -> Response:
        # Healthy even without a sidecar: events queue (or are counted as dropped).
        stats = state["pub"].stats()
        return JSONResponse(
            {
                "status": "ok",
                "sidecar_connected": stats.connected,
                "sent": stats.sent,
                "dropped": stats.dropped,
            }
        )

    return Starlette(
        routes=[
            Route("/trade/{side}", trade, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def allowed_hosts(settings: PublisherSettings) -> frozenset[str]:
    """``Host`` values served: the setting's, or loopback by name and address with the port."""
    given = _items(settings.http_allowed_hosts)
    if given:
        return frozenset(host.lower() for host in given)
    port = settings.http_port
    return frozenset({f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"})


PROG = "trading-publisher-http"


def build_parser(defaults: settings_mod.PublisherSettings) -> argparse.ArgumentParser:
    """The command line over the loaded settings; every option's dest is a field name."""
    parser = new_parser(
        PROG,
        'Serve POST /trade/{buy,sell}?qty=N (or a JSON body {"qty": N}) and publish each\n'
        "trade to the sidecar. Every option also reads from "
        f"{settings_mod.PREFIX}<NAME> and .env.",
        "trading-publisher",
    )
    parser.add_argument(
        "--zmq-connect",
        type=argument_type(zmq_connect),
        default=defaults.zmq_connect,
        help="sidecar ZMQ address",
    )
    parser.add_argument("--http-host", default=defaults.http_host, help="HTTP listen host")
    parser.add_argument(
        "--http-port", type=argument_type(port), default=defaults.http_port, help="HTTP port"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    defaults = load_or_exit(settings_mod.load, PROG)
    # overlay() replaces the fields the options name and keeps every other one.
    settings = overlay(defaults, build_parser(defaults).parse_args(argv))
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exit_zero_on_signals()
    try:
        sock = listen(settings.http_host, settings.http_port, f"{settings_mod.PREFIX}HTTP_PORT")
    except ListenError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    announce(sock, "POST /trade/{side}")
    try:
        uvicorn.Server(server_config(create_app(settings))).run(sockets=[sock])
    finally:
        sock.close()


if __name__ == "__main__":
    main()
