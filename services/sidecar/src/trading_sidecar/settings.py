"""Sidecar configuration, read once at start-up from ``TT_SIDECAR_*`` variables.

Each field's ``doc`` is its row in docs/configuration.md (``make config-docs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.ports import (
    DEFAULT_SIDECAR_HTTP_PORT,
    DEFAULT_SIDECAR_PROBE_PORT,
    DEFAULT_ZMQ_ADDRESS,
    DEFAULT_ZMQ_PORT,
    LOOPBACK,
)
from telemetry_contract.settings_source import (
    load_settings,
    number,
    port,
    port_or_off,
    setting,
    whole_number,
    zmq_bind,
)
from telemetry_contract.transport import (
    DEFAULT_HEARTBEAT_IVL_MS,
    DEFAULT_HEARTBEAT_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_TTL_MS,
    DEFAULT_RCVHWM,
    MAX_HEARTBEAT_TTL_MS,
    Heartbeat,
)

from trading_sidecar.bench_metrics import DEFAULT_ROW_TTL_SECONDS

PREFIX = "TT_SIDECAR_"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def log_level(text: str) -> str:
    """One of :data:`LOG_LEVELS`, any case: refused at start-up, not by ``logging`` later."""
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0: refused at start-up, not misbehaving later."""
    seconds = float(text)
    if not 0.0 < seconds < float("inf"):
        raise ValueError("expected a number of seconds above 0")
    return seconds


@dataclass(frozen=True)
class SidecarSettings:
    """Loopback by default: listening on all interfaces must be asked for explicitly."""

    zmq_bind: str = setting(
        DEFAULT_ZMQ_ADDRESS,
        f"PULL bind address; `tcp://0.0.0.0:{DEFAULT_ZMQ_PORT}` to accept other hosts",
        parse=zmq_bind,
    )
    http_host: str = setting(LOOPBACK, "`/metrics`, `/healthz`, `/readyz` listen host")
    http_port: int = setting(DEFAULT_SIDECAR_HTTP_PORT, "HTTP port (1-65535)", parse=port)
    rcvhwm: int = setting(
        DEFAULT_RCVHWM,
        "events the receive queue holds before ZeroMQ pushes back (>= 1)",
        parse=whole_number(1),
    )
    log_level: str = setting(
        "info", "`debug`, `info`, `warning`, `error` or `critical`", parse=log_level
    )
    stall_seconds: float = setting(
        5.0,
        "`/healthz` turns 503 when the receive loop has not checked in for this long (> 0)",
        parse=number(0),
    )
    probe_port: int = setting(
        0,
        "second HTTP port answering only `/healthz` and `/readyz`, served apart from "
        f"`/metrics` (the chart sets `{DEFAULT_SIDECAR_PROBE_PORT}`, for kubelet probes "
        "through a NetworkPolicy); `0`: none, the probes are on the HTTP port",
        parse=port_or_off,
    )
    metrics_concurrency: int = setting(
        4,
        "`/metrics` renders at once (1-1000); a scrape beyond them is answered 503 at once, so "
        "a flood of scrapers cannot starve `/healthz`",
        parse=whole_number(1, 1000),
    )
    curve_secret_key_file: str = setting(
        "",
        "the server's `*.key_secret` certificate; with the next one, turns CURVE on "
        "(docs/operations.md)",
    )
    curve_clients_dir: str = setting(
        "",
        "folder of allowed publishers' public `*.key` certificates (zmq.auth's layout), "
        "re-read at every handshake",
    )
    state_dir: str = setting(
        "",
        "folder for the state snapshot: counts and loss positions survive restarts "
        "(docs/operations.md); unset: nothing persisted",
    )
    heartbeat_ivl_ms: int = setting(
        DEFAULT_HEARTBEAT_IVL_MS,
        "ZMQ_HEARTBEAT_IVL of the PULL socket: a ZMTP PING to each publisher this often; "
        "`0` turns heartbeats off",
        parse=whole_number(0),
    )
    heartbeat_timeout_ms: int = setting(
        DEFAULT_HEARTBEAT_TIMEOUT_MS,
        "ZMQ_HEARTBEAT_TIMEOUT: a publisher link with no traffic this long after a PING is "
        "dropped (a peer whose node died)",
        parse=whole_number(0),
    )
    heartbeat_ttl_ms: int = setting(
        DEFAULT_HEARTBEAT_TTL_MS,
        "ZMQ_HEARTBEAT_TTL: publishers drop the link when they hear nothing from this "
        "sidecar for this long (0.1 s resolution)",
        parse=whole_number(0, MAX_HEARTBEAT_TTL_MS),
    )
    bench_row_ttl_seconds: float = setting(
        DEFAULT_ROW_TTL_SECONDS,
        "a benchmark row (and its run id) stops being exported this long after it arrived",
        parse=positive_seconds,
    )
    alert_no_trades_seconds: float = setting(
        900.0, "`TradingNoTrades` fires after this long without a trade (> 0)", parse=number(0)
    )
    alert_e2e_p99_seconds: float = setting(
        0.1,
        "exported for dashboards built on it; no rule reads it (latency alerts use the SLO) (> 0)",
        parse=number(0),
    )
    alert_invalid_ratio: float = setting(
        0.01,
        "`TradingInvalidEventsHigh` fires when more than this share of events is refused (0-1)",
        parse=number(0, 1, low_open=False),
    )

    @property
    def heartbeat(self) -> Heartbeat:
        """The three heartbeat settings as one value; raises ``ValueError`` when out of range."""
        return Heartbeat(self.heartbeat_ivl_ms, self.heartbeat_timeout_ms, self.heartbeat_ttl_ms)


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> SidecarSettings:
    return load_settings(SidecarSettings, PREFIX, environ, dotenv)
