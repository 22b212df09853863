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
    #: Comma-separated Secret names for pulling ``bench_image`` from a private registry
    #: (the chart passes its ``imagePullSecrets``); empty for a public or preloaded image.
    image_pull_secrets: str = ""
    #: Helm release name; put on Job pods so the sidecar's NetworkPolicy admits them.
    instance: str = "trading-telemetry"
    #: ZMQ Service a LatencyBenchmark targets when its spec names none: the chart's Service
    #: on sidecar replica 0 alone, so sent and received/lost are one replica's counts.
    default_service: str = "trading-telemetry-sidecar-bench"
    zmq_port: int = 5555
    #: The sidecar's HTTP base URL (the same replica); the benchmark reads received/lost there.
    sidecar_url: str = "http://trading-telemetry-sidecar-bench:8001"

    @property
    def pull_secret_names(self) -> list[str]:
        """``image_pull_secrets`` as names, blanks and repeats dropped, order kept."""
        names = (name.strip() for name in self.image_pull_secrets.split(","))
        return list(dict.fromkeys(name for name in names if name))


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> OperatorSettings:
    return load_settings(OperatorSettings, PREFIX, environ, dotenv)
