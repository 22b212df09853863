"""Publisher-side configuration, read once from ``TT_PUBLISHER_*`` variables.

One prefix for the client, the Streamlit UI and the HTTP endpoint: they run side by side
and share the sidecar's address. Each field's ``doc`` is its row in docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.ports import (
    DEFAULT_PUBLISHER_HTTP_PORT,
    DEFAULT_SIDECAR_URL,
    DEFAULT_UI_PORT,
    DEFAULT_ZMQ_ADDRESS,
    LOOPBACK,
)
from telemetry_contract.settings_source import (
    load_settings,
    number,
    port,
    setting,
    whole_number,
    zmq_connect,
)
from telemetry_contract.transport import (
    DEFAULT_HEARTBEAT_IVL_MS,
    DEFAULT_HEARTBEAT_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_TTL_MS,
    MAX_BATCH_ITEMS,
    MAX_HEARTBEAT_TTL_MS,
    Heartbeat,
)

from trading_publisher.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_DELAY_S,
    DEFAULT_MAX_QUEUE_BYTES,
    CurveKeys,
)

PREFIX = "TT_PUBLISHER_"


@dataclass(frozen=True)
class PublisherSettings:
    zmq_connect: str = setting(
        DEFAULT_ZMQ_ADDRESS,
        "the sidecar's ZeroMQ address; comma-separated for several sidecars (one socket and "
        "one seq stream each, batches round-robin; see [the contract](contract.md)). In "
        "Kubernetes, the sidecar Service's DNS name",
        parse=zmq_connect,
    )
    batch_size: int = setting(
        DEFAULT_BATCH_SIZE,
        "events per batch frame; `1` sends one frame per event at once (the UI and the HTTP "
        f"endpoint always use 1); 1-{MAX_BATCH_ITEMS}",
        parse=whole_number(1, MAX_BATCH_ITEMS),
    )
    max_delay_ms: float = setting(
        DEFAULT_MAX_DELAY_S * 1000,
        "the longest an event waits for its batch frame, in ms (> 0, <= 10000)",
        parse=number(0, 10_000),
    )
    max_queue_bytes: int = setting(
        DEFAULT_MAX_QUEUE_BYTES,
        "what queued telemetry may occupy while the sidecar is away or slow; beyond it "
        "events are dropped and counted (>= 1024)",
        parse=whole_number(1024),
        shown_default=f"`{DEFAULT_MAX_QUEUE_BYTES}` ({DEFAULT_MAX_QUEUE_BYTES >> 20} MiB)",
    )
    sndhwm: int = setting(
        0,
        "per-socket ZeroMQ high-water mark in frames; `0` derives it from the queue budget "
        "and the largest frame",
        parse=whole_number(0),
        shown_default="`0` (derived)",
    )
    heartbeat_ivl_ms: int = setting(
        DEFAULT_HEARTBEAT_IVL_MS,
        "ZMQ_HEARTBEAT_IVL of every client socket: a ZMTP PING to the sidecar this often; "
        "`0` turns heartbeats off",
        parse=whole_number(0),
    )
    heartbeat_timeout_ms: int = setting(
        DEFAULT_HEARTBEAT_TIMEOUT_MS,
        "ZMQ_HEARTBEAT_TIMEOUT: a link with no traffic this long after a PING is dropped, "
        "so a sidecar whose node died stops taking frames (they go to the other replicas "
        "or wait) within interval + timeout",
        parse=whole_number(0),
    )
    heartbeat_ttl_ms: int = setting(
        DEFAULT_HEARTBEAT_TTL_MS,
        "ZMQ_HEARTBEAT_TTL: the sidecar drops the link when it hears nothing from this "
        "client for this long (0.1 s resolution)",
        parse=whole_number(0, MAX_HEARTBEAT_TTL_MS),
    )
    source: str = setting("", "the `src` id on every event", shown_default="`hostname-pid`")
    curve_server_key_file: str = setting(
        "",
        "CURVE on every client socket when both this and the next are set: the sidecar's "
        "public certificate (`*.key`), as `zmq.auth` writes it",
    )
    curve_secret_key_file: str = setting(
        "", "this client's own secret certificate (`*.key_secret`), for CURVE"
    )
    sidecar_url: str = setting(
        DEFAULT_SIDECAR_URL,
        "where the UI reads live totals and reachability; comma-separated for several "
        "sidecar replicas (their totals are summed)",
    )
    prometheus_url: str = setting(
        "",
        "when set, the UI reads totals from this Prometheus instead (`sum by (side)` over "
        "every replica it scrapes)",
    )
    http_host: str = setting(LOOPBACK, "listen host of the optional `POST /trade/{side}` endpoint")
    http_port: int = setting(
        DEFAULT_PUBLISHER_HTTP_PORT, "port of the `POST /trade/{side}` endpoint", parse=port
    )
    http_allowed_hosts: str = setting(
        "",
        "comma-separated `Host` values the `POST /trade/{side}` endpoint answers (`host` or "
        "`host:port`; `*`: any); others get 403, so a web page cannot reach it by DNS "
        "rebinding",
        shown_default="`localhost`, `127.0.0.1`, `[::1]` with `TT_PUBLISHER_HTTP_PORT`",
    )
    http_allowed_origins: str = setting(
        "",
        "comma-separated browser origins (`scheme://host:port`) allowed to post trades besides "
        "the endpoint's own; any other `Origin` gets 403",
    )
    ui_host: str = setting(LOOPBACK, "listen host of the Streamlit UI")
    ui_port: int = setting(DEFAULT_UI_PORT, "port of the Streamlit UI", parse=port)

    @property
    def heartbeat(self) -> Heartbeat:
        """The three heartbeat settings as one value; raises ``ValueError`` when out of range."""
        return Heartbeat(self.heartbeat_ivl_ms, self.heartbeat_timeout_ms, self.heartbeat_ttl_ms)


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
