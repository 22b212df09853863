"""Names the operator, the CRD, the chart and the NetworkPolicy must agree on.

They are fixed by docs/interfaces (the chart's Role, the NetworkPolicy's pod selector and
the CRD file all spell them out too), so they live in one module the tests compare against.
"""

from __future__ import annotations

from typing import Final

from telemetry_contract.ports import CHART_NAME

GROUP: Final = "telemetry.trading-telemetry.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "LatencyBenchmark"
PLURAL: Final = "latencybenchmarks"
SINGULAR: Final = "latencybenchmark"
SHORT_NAME: Final = "lbench"

#: Labels every benchmark Job and its pods carry; the NetworkPolicy in front of the
#: sidecar admits pods by ``instance`` and ``component``, so these are not cosmetic.
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
APP_NAME: Final = CHART_NAME
BENCH_COMPONENT: Final = "benchmark"
MANAGED_BY: Final = "trading-operator"

#: The benchmark container's name inside the Job's pod; the result is read from it.
CONTAINER: Final = "benchmark"
#: Where the benchmark writes its one result frame (Kubernetes' default path).
TERMINATION_LOG: Final = "/dev/termination-log"
