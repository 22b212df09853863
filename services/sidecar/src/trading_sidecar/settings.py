"""Sidecar configuration, read once at start-up from ``TT_SIDECAR_*`` variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> SidecarSettings:
    return load_settings(SidecarSettings, PREFIX, environ, dotenv)
