"""Publisher-side configuration, read once from ``TT_PUBLISHER_*`` variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.settings_source import load_settings
from telemetry_contract.transport import (
    DEFAULT_PUBLISHER_HTTP_PORT,
    DEFAULT_SIDECAR_HTTP_PORT,
    DEFAULT_SNDHWM,
    DEFAULT_UI_PORT,
    DEFAULT_ZMQ_ADDRESS,
)

PREFIX = "TT_PUBLISHER_"


@dataclass(frozen=True)
class PublisherSettings:
    #: Where the sidecar's PULL socket listens; in Kubernetes, the ZMQ Service's DNS name.
    zmq_connect: str = DEFAULT_ZMQ_ADDRESS
    sndhwm: int = DEFAULT_SNDHWM
    #: Publisher id sent as ``src``; empty means hostname-pid.
    source: str = ""
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


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> PublisherSettings:
    return load_settings(PublisherSettings, PREFIX, environ, dotenv)
