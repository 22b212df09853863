"""Names of every series the sidecar exports.

Dashboards, alerts, the Helm chart's tests and the sidecar all read these constants,
so a rename is one edit and a test catches every dashboard query it breaks.
"""

from typing import Final

TRADES = "trades_total"
VOLUME = "volume_total"
LAST_TRADE_TS = "last_trade_ts_seconds"
RECEIVED = "telemetry_messages_received_total"
INVALID = "telemetry_messages_invalid_total"
LOST = "telemetry_events_lost_total"
E2E_LATENCY = "telemetry_e2e_latency_seconds"

#: Every metric family name the sidecar exports (histograms by their base name).
ALL: Final = (TRADES, VOLUME, LAST_TRADE_TS, RECEIVED, INVALID, LOST, E2E_LATENCY)

#: Upper bounds (seconds) of the end-to-end latency histogram: loopback sits in the
#: tens of microseconds, a cross-node hop in the milliseconds.
E2E_LATENCY_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
