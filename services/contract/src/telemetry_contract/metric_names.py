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
#: Loss-table resets, label ``reason`` (closed set: ``seq_jump``, a seq gap above
#: events.MAX_SEQ_GAP, which is not counted as loss).
STREAM_RESETS = "telemetry_stream_resets_total"

# Benchmark results (``type: "benchmark"`` messages), labelled mode/variant (both closed
# sets in events.py); BENCH_RUN carries the run_id of the row each (mode, variant) shows.
BENCH_RUN = "telemetry_benchmark_run_info"
BENCH_RESULTS = "telemetry_benchmark_results_total"
#: In seconds (the rows carry microseconds); labelled BENCH_PERCENTILE_LABEL, not
#: ``quantile``, which Prometheus reserves for summaries (``promtool check metrics``).
BENCH_LATENCY = "telemetry_benchmark_latency_seconds"
BENCH_PERCENTILE_LABEL: Final = "percentile"
#: The closed set of BENCH_PERCENTILE_LABEL values, each a BenchmarkResult field + "_us".
BENCH_PERCENTILES: Final = ("p50", "p90", "p99", "p999", "max")
BENCH_RATE = "telemetry_benchmark_rate_events_per_second"
BENCH_TARGET_RATE = "telemetry_benchmark_target_rate_events_per_second"
BENCH_EVENTS = "telemetry_benchmark_events"
BENCH_ELAPSED = "telemetry_benchmark_elapsed_seconds"
BENCH_FINISHED = "telemetry_benchmark_finished_timestamp_seconds"

# Benchmark traffic: trades whose src starts with codec.BENCH_SOURCE_PREFIX are counted
# here instead of in TRADES/VOLUME/LAST_TRADE_TS/LOST/E2E_LATENCY (they still count in
# RECEIVED, which is every frame pulled).
BENCH_TRADES = "telemetry_benchmark_trades_received_total"
BENCH_LOST = "telemetry_benchmark_events_lost_total"
BENCH_E2E_LATENCY = "telemetry_benchmark_e2e_latency_seconds"

#: The Prometheus job name of every sidecar scrape (prometheus.yml's job_name; in
#: Kubernetes the ServiceMonitor's jobLabel). The alert rules select ``up`` and
#: ``process_*`` by it, since those series exist for every target, not only sidecars.
SIDECAR_JOB: Final = "trading-sidecar"

# The exporter's own health and identity (trading_sidecar.exporter), beside prometheus_client's
# process_* and python_* collectors. The alert rules (deploy/prometheus/alerts.yml) read them.
RECEIVER_HEALTHY = "telemetry_receiver_healthy"
BUILD_INFO = "trading_telemetry_build_info"
#: Alert thresholds as series (label ``threshold``), so one rules file serves every
#: deployment: each sidecar exports the values its own settings give.
ALERT_THRESHOLD = "telemetry_alert_threshold"
#: The closed set of ``threshold`` label values of ALERT_THRESHOLD.
ALERT_THRESHOLDS: Final = ("no_trades_seconds", "e2e_p99_seconds", "invalid_ratio")
#: Publishers refused by the CURVE allow-list (right server key, client key not allowed).
CURVE_DENIED = "telemetry_curve_clients_denied_total"

#: The state snapshot (trading_sidecar.state): writes that failed (while they fail,
#: /metrics answers without waiting for its snapshot: the alert is the only signal), and
#: snapshots found unusable at start (label ``reason``, STATE_RESTORE_REASONS), each
#: moved aside and replaced by a start from zero.
STATE_WRITE_FAILURES = "telemetry_state_write_failures_total"
STATE_RESTORE_FAILURES = "telemetry_state_restore_failures_total"
STATE_RESTORE_REASONS: Final = ("unreadable", "header", "checksum", "content")

#: Every metric family name the sidecar exports (histograms by their base name).
ALL: Final = (
    TRADES, VOLUME, LAST_TRADE_TS, RECEIVED, INVALID, LOST, E2E_LATENCY,
    BENCH_RESULTS, BENCH_RUN, BENCH_LATENCY, BENCH_RATE, BENCH_TARGET_RATE, BENCH_EVENTS,
    BENCH_ELAPSED, BENCH_FINISHED, BENCH_TRADES, BENCH_LOST, BENCH_E2E_LATENCY,
    RECEIVER_HEALTHY, BUILD_INFO, ALERT_THRESHOLD, CURVE_DENIED,
    STREAM_RESETS, STATE_WRITE_FAILURES, STATE_RESTORE_FAILURES,
)  # fmt: skip

#: Upper bounds (seconds) of the end-to-end latency histograms (trading and benchmark
#: traffic alike): loopback sits in the
#: tens of microseconds, a cross-node hop in the milliseconds. The bounds are dense up
#: to 250 µs because the benchmark reads its e2e percentiles from this histogram, and
#: 250 µs (the unbatched p99 target at 10k events/s) must be a bound so that share is
#: exact; 1.5 ms and 2 ms likewise for the batched client (p99 <= its 1 ms max delay
#: + 1 ms).
E2E_LATENCY_BUCKETS: Final = (
    0.000025, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.00025, 0.0005, 0.001,
    0.0015, 0.002, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: ``counts_from`` in the sidecar's ``GET /`` answer: where this process's totals began.
#: The UI's restart notice reads it to say which happened after a restart.
COUNTS_FROM_SAVED_STATE: Final = "saved_state"
COUNTS_FROM_ZERO: Final = "zero"
