"""Operator configuration, read once at start-up from ``TT_OPERATOR_*`` variables.

The chart sets every field (interfaces: POD_NAMESPACE aside, these are the operator's
env); the defaults match a release called ``trading-telemetry`` so ``make operator-dev``
works against such an install without extra setup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.ports import (
    CHART_NAME,
    DEFAULT_BENCH_SERVICE,
    DEFAULT_SIDECAR_HTTP_PORT,
    DEFAULT_ZMQ_PORT,
)
from telemetry_contract.settings_source import load_settings, port, setting

PREFIX = "TT_OPERATOR_"


@dataclass(frozen=True)
class OperatorSettings:
    """Everything a benchmark Job needs that is not in the LatencyBenchmark spec."""

    bench_image: str = setting(
        f"{CHART_NAME}-bench:latest",
        "the benchmark Job's image (it ships `trading-bench`); the chart passes its "
        "`benchmark.image`",
    )
    image_pull_policy: str = setting("IfNotPresent", "the Job container's pull policy")
    image_pull_secrets: str = setting(
        "",
        "comma-separated Secret names for pulling the Job's image from a private registry "
        "(the chart passes its `imagePullSecrets`); unset for a public or preloaded image",
    )
    instance: str = setting(
        CHART_NAME,
        "Helm release name, put on Job pods as `app.kubernetes.io/instance` so the sidecar's "
        "NetworkPolicy admits them",
    )
    default_service: str = setting(
        DEFAULT_BENCH_SERVICE,
        "ZMQ Service a LatencyBenchmark targets when its `spec.service` is empty: the chart's "
        "Service on sidecar replica 0 alone, so sent and received/lost are one replica's counts",
    )
    zmq_port: int = setting(DEFAULT_ZMQ_PORT, "port when `spec.port` is empty", parse=port)
    sidecar_url: str = setting(
        f"http://{DEFAULT_BENCH_SERVICE}:{DEFAULT_SIDECAR_HTTP_PORT}",
        "the sidecar's HTTP base URL (the same replica) when `spec.sidecarUrl` is empty; the "
        "benchmark reads received/lost there",
    )

    @property
    def pull_secret_names(self) -> list[str]:
        """``image_pull_secrets`` as names, blanks and repeats dropped, order kept."""
        names = (name.strip() for name in self.image_pull_secrets.split(","))
        return list(dict.fromkeys(name for name in names if name))


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> OperatorSettings:
    return load_settings(OperatorSettings, PREFIX, environ, dotenv)
