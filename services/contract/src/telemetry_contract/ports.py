"""Port numbers every part of the system agrees on, and nothing else.

A module of plain constants with no imports beyond ``typing``, so the chart's tests,
the sidecar and the docs can read a port without pulling in pyzmq. The older port
constants still live in :mod:`telemetry_contract.transport`; new ones start here.
"""

from typing import Final

#: The sidecar's probe-only HTTP port (``TT_SIDECAR_PROBE_PORT``): it answers ``/healthz``
#: and ``/readyz`` and nothing else, so a NetworkPolicy can admit the kubelet's probes
#: from anywhere without also exposing ``/metrics`` to anything that can reach the pod.
DEFAULT_SIDECAR_PROBE_PORT: Final = 8003
