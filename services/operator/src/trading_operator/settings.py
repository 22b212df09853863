"""Operator configuration, read once at start-up from ``TT_OPERATOR_*`` variables.

The chart sets every field (interfaces: POD_NAMESPACE aside, these are the operator's
env); the defaults match a release called ``trading-telemetry`` so ``make operator-dev``
works against such an install without extra setup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.settings_source import load_settings

PREFIX = "TT_OPERATOR_"


@dataclass(frozen=True)
class OperatorSettings:
    """Everything a benchmark Job needs that is not in the LatencyBenchmark spec."""

    #: The publisher image, which also ships ``trading-bench``.
    bench_image: str = "trading-telemetry-publisher:latest"
    image_pull_policy: str = "IfNotPresent"
    #: Helm release name; put on Job pods so the sidecar's NetworkPolicy admits them.
    instance: str = "trading-telemetry"
    #: ZMQ Service a LatencyBenchmark targets when its spec names none.
    default_service: str = "trading-telemetry-zmq"
    zmq_port: int = 5555
    #: The sidecar's HTTP base URL; the benchmark reads received/lost counts there.
    sidecar_url: str = "http://trading-telemetry-metrics:8001"


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> OperatorSettings:
    return load_settings(OperatorSettings, PREFIX, environ, dotenv)
