"""Ports, default addresses and the chart's object names every part of the system agrees on.

The one place they are spelled (docs/contract.md): the services' settings, the operator,
the benchmark, ``make run`` and the docs generator import them from here. A module of plain
constants with no imports beyond ``typing``, so anything can read a port without pulling in
pyzmq. ``values.yaml`` and the ``mk/`` files cannot import Python: tests/unit/chart/test_chart.py
checks the rendered chart against these, tests/unit/contract/test_ports.py the Makefiles
and ``.env.sample``.
"""

from typing import Final

#: Where a local run listens: loopback, so nothing is exposed unless asked for.
LOOPBACK: Final = "127.0.0.1"

#: The sidecar's ZeroMQ PULL port (the chart's ``sidecar.zmqPort``).
DEFAULT_ZMQ_PORT: Final = 5555
#: The sidecar's HTTP port: ``/metrics``, ``/healthz``, ``/readyz`` (``sidecar.metricsPort``).
DEFAULT_SIDECAR_HTTP_PORT: Final = 8001
#: The publisher's optional ``POST /trade/{side}`` endpoint.
DEFAULT_PUBLISHER_HTTP_PORT: Final = 8002
#: The sidecar's probe-only HTTP port (``TT_SIDECAR_PROBE_PORT``): it answers ``/healthz``
#: and ``/readyz`` and nothing else, so a NetworkPolicy can admit the kubelet's probes
#: from anywhere without also exposing ``/metrics`` to anything that can reach the pod.
DEFAULT_SIDECAR_PROBE_PORT: Final = 8003
#: The Streamlit UI (the chart's ``publisher.uiPort``).
DEFAULT_UI_PORT: Final = 8501
#: The Prometheus ``make run`` starts when the binary is installed.
DEFAULT_PROMETHEUS_PORT: Final = 9090

#: Where a local sidecar pulls and a local publisher pushes.
DEFAULT_ZMQ_ADDRESS: Final = f"tcp://{LOOPBACK}:{DEFAULT_ZMQ_PORT}"
#: A local sidecar's HTTP base URL.
DEFAULT_SIDECAR_URL: Final = f"http://{LOOPBACK}:{DEFAULT_SIDECAR_HTTP_PORT}"

#: The chart's name, and the release name ``make deploy`` uses; with a release name that
#: contains it, the chart's ``fullname`` is the release name itself.
CHART_NAME: Final = "trading-telemetry"
#: ``<fullname>`` + this: the chart's Service on sidecar replica 0 alone, which benchmarks
#: send to and read back from (one replica's counts).
BENCH_SERVICE_SUFFIX: Final = "-sidecar-bench"
#: That Service for the default release, as the operator targets it out of the box.
DEFAULT_BENCH_SERVICE: Final = f"{CHART_NAME}{BENCH_SERVICE_SUFFIX}"

#: ``make infra-up``'s containers (docker-compose.infra.yml): Grafana, and a Prometheus
#: on 9091 so it runs beside ``make run``'s. ``make open`` opens them when they answer.
INFRA_GRAFANA_PORT: Final = 3000
INFRA_PROMETHEUS_PORT: Final = 9091
