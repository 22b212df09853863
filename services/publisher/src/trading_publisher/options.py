"""What configures a publisher client, apart from the client itself.

The defaults, the CURVE key pair and the stats record live here so that
:mod:`trading_publisher.settings` (which reads them from the environment) and
:mod:`trading_publisher.client` (which uses them) both import this module and neither
imports the other: no import circle.
"""

from __future__ import annotations

import os
import socket as _socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from telemetry_contract.events import MAX_SOURCE_LEN
from telemetry_contract.transport import MAX_BATCH_ITEMS

#: Events per frame at most, by default: a columnar frame holds up to MAX_BATCH_ITEMS
#: (1,024) events of ~19 bytes, so a full one is ~20 KB; more events per frame means
#: fewer sends, and each send wakes libzmq's I/O thread (docs/benchmark.md).
DEFAULT_BATCH_SIZE: Final = MAX_BATCH_ITEMS
#: The longest an event waits in the client, by default. Prometheus scrapes once a
#: second, so tens of ms are invisible on a dashboard, while each flusher wake-up costs
#: a busy trading thread a GIL hand-off: the flusher ticks every max_delay/4, 200
#: wake-ups/s at 20 ms (the old 1 ms default meant 2,000/s, and a flush inside trade()
#: once per ms); the e2e target is p99 <= max_delay + 5 ms (docs/benchmark.md).
DEFAULT_MAX_DELAY_S: Final = 0.020
#: What queued telemetry may occupy, by default, however long the sidecar is away.
DEFAULT_MAX_QUEUE_BYTES: Final = 64 * 1024 * 1024


def default_source() -> str:
    """``hostname-pid``: unique per process, so restarts start fresh seq streams."""
    suffix = f"-{os.getpid()}"
    return _socket.gethostname()[: MAX_SOURCE_LEN - len(suffix)] + suffix


def split_addresses(addresses: str | Sequence[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` → ``["a", "b"]`` (blanks dropped, at least one)."""
    parts = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    found = [part.strip() for part in parts if part.strip()]
    if not found:
        raise ValueError(f"no ZeroMQ address in {addresses!r}")
    return found


@dataclass(frozen=True)
class CurveKeys:
    """CURVE keys of the client sockets: the server's public key and our own pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_key_file: str | Path, secret_key_file: str | Path) -> CurveKeys:
        """Read zmq.auth certificate files: the server's ``*.key``, our ``*.key_secret``."""
        from zmq.auth.certs import load_certificate

        server_public, _ = load_certificate(str(server_key_file))
        public, secret = load_certificate(str(secret_key_file))
        if secret is None:
            raise ValueError(f"{secret_key_file} holds no secret key (use the .key_secret file)")
        return cls(server_public, public, secret)


@dataclass(frozen=True)
class PublisherStats:
    sent: int
    dropped: int
    connected: bool
    #: Events accepted but not handed to ZeroMQ yet (batching, or waiting for a route).
    queued: int = 0
