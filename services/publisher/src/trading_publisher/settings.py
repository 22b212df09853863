"""Publisher-side configuration, read once from ``TT_PUBLISHER_*`` variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.settings_source import load_settings
from telemetry_contract.transport import (
    DEFAULT_PUBLISHER_HTTP_PORT,
    DEFAULT_SIDECAR_HTTP_PORT,
    DEFAULT_UI_PORT,
    DEFAULT_ZMQ_ADDRESS,
)

from trading_publisher.client import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DELAY_S,
    DEFAULT_MAX_QUEUE_BYTES,
    CurveKeys,
)

PREFIX = "TT_PUBLISHER_"


@dataclass(frozen=True)
class PublisherSettings:
    #: Where the sidecars' PULL sockets listen: one address, or several separated by
    #: commas (one socket, one seq stream each; see docs/contract.md). In Kubernetes,
    #: the ZMQ Service's DNS name.
    zmq_connect: str = DEFAULT_ZMQ_ADDRESS
    #: Events per batch frame (1 = one frame per event, sent at once).
    batch_size: int = DEFAULT_BATCH_SIZE
    #: The longest an event waits for its batch frame, in ms.
    max_delay_ms: float = DEFAULT_MAX_DELAY_S * 1000
    #: What queued telemetry may occupy while the sidecar is away or slow; beyond it
    #: events are dropped and counted.
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    #: Per-socket ZeroMQ high-water mark in frames; 0 = derived from max_queue_bytes.
    sndhwm: int = 0
    #: Publisher id sent as ``src``; empty means hostname-pid.
    source: str = ""
    #: CURVE (off unless both are set): the sidecar's public certificate (``*.key``)
    #: and this client's own secret certificate (``*.key_secret``), zmq.auth format.
    curve_server_key_file: str = ""
    curve_secret_key_file: str = ""
    #: The sidecar's HTTP base URL, for the UI's live totals and reachability banner;
    #: comma-separated for several replicas (the UI sums their totals).
    sidecar_url: str = f"http://127.0.0.1:{DEFAULT_SIDECAR_HTTP_PORT}"
    #: When set, the UI reads totals from this Prometheus (summed over every replica it
    #: scrapes) instead of scraping the sidecars itself.
    prometheus_url: str = ""
    #: The optional ``POST /trade/{side}`` endpoint.
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_PUBLISHER_HTTP_PORT
    #: The Streamlit UI.
    ui_host: str = "127.0.0.1"
    ui_port: int = DEFAULT_UI_PORT


def curve_keys(settings: PublisherSettings) -> CurveKeys | None:
    """The CURVE keys when both files are configured; one without the other is an error."""
    server, secret = settings.curve_server_key_file, settings.curve_secret_key_file
    if not server and not secret:
        return None
    if not (server and secret):
        raise ValueError(
            f"{PREFIX}CURVE_SERVER_KEY_FILE and {PREFIX}CURVE_SECRET_KEY_FILE must be set together"
        )
    return CurveKeys.from_files(server, secret)


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> PublisherSettings:
    return load_settings(PublisherSettings, PREFIX, environ, dotenv)
