"""Sidecar configuration, read once at start-up from ``TT_SIDECAR_*`` variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.ports import DEFAULT_SIDECAR_PROBE_PORT
from telemetry_contract.settings_source import load_settings
from telemetry_contract.transport import (
    DEFAULT_RCVHWM,
    DEFAULT_SIDECAR_HTTP_PORT,
    DEFAULT_ZMQ_ADDRESS,
)

PREFIX = "TT_SIDECAR_"


@dataclass(frozen=True)
class SidecarSettings:
    """Loopback by default: listening on all interfaces must be asked for explicitly."""

    zmq_bind: str = DEFAULT_ZMQ_ADDRESS
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_SIDECAR_HTTP_PORT
    rcvhwm: int = DEFAULT_RCVHWM
    log_level: str = "info"
    #: Seconds without a loop heartbeat before /healthz turns 503.
    stall_seconds: float = 5.0
    #: Second HTTP port on ``http_host`` answering only /healthz and /readyz; 0: none.
    probe_port: int = DEFAULT_SIDECAR_PROBE_PORT
    #: CURVE is on when both are set: the server's ``*.key_secret`` certificate file and a
    #: folder of allowed client ``*.key`` public certificates (zmq.auth's layout).
    curve_secret_key_file: str = ""
    curve_clients_dir: str = ""
    #: Folder for the state snapshot (counts survive restarts); empty: no persistence.
    state_dir: str = ""
    #: Alert thresholds, exported as ``telemetry_alert_threshold`` for the rules to read.
    alert_no_trades_seconds: float = 900.0
    alert_e2e_p99_seconds: float = 0.1
    alert_invalid_ratio: float = 0.01


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> SidecarSettings:
    return load_settings(SidecarSettings, PREFIX, environ, dotenv)
