"""The benchmark's series in the sidecar: its traffic and its results, apart from trades.

:class:`~trading_sidecar.metrics.TradeMetrics` sets aside what is not trading traffic and
the app routes it here, once per chunk, on the receive thread (the only writer):
benchmark trades (``src`` starting with ``BENCH_SOURCE_PREFIX``), counted by the trade
path's own loop in a loss table of their own, and benchmark result rows, the newest per
(mode, variant), exported as gauges.

Why in the sidecar at all: the JSON report and the operator's status carry one run to
whoever started it, but only Prometheus keeps history beside what the sidecar was doing,
and the benchmark's e2e latency can only be measured where it is received. Everything
benchmark-shaped the sidecar knows is in this one file. Series stay bounded: mode and
variant are closed enums in the contract, and a row expires ``row_ttl`` seconds after it
arrived (TT_SIDECAR_BENCH_ROW_TTL_SECONDS), so old run ids stop being exported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX
from telemetry_contract.events import BenchmarkResult, Event

from trading_sidecar.metrics import E2E_BOUNDS, LossTracker, histogram_family, tally


@dataclass(slots=True)
class BenchState:
    """What the sidecar counts of benchmark traffic and results, as plain data."""

    trades: int = 0
    lost: int = 0
    #: One slot per e2e bound plus the +Inf overflow; non-cumulative, summed at scrape.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(E2E_BOUNDS) + 1))
    latency_sum: float = 0.0
    results: int = 0
    streams: LossTracker = field(default_factory=LossTracker)


#: How long a benchmark row stays exported after it arrived, by default: a week keeps
#: last week's runs on the benchmark dashboard, and no run id lives on for ever.
DEFAULT_ROW_TTL_SECONDS = 7 * 86_400.0

RowKey = tuple[str, str]


class BenchMetrics(BenchState):
    """Running totals of benchmark traffic, and the newest benchmark row per (mode, variant)."""

    __slots__ = ("clock", "entries", "row_ttl")

    def __init__(
        self,
        row_ttl: float = DEFAULT_ROW_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.row_ttl = row_ttl
        self.clock = clock
        #: Latest row per (mode, variant) with the time it was received: both closed
        #: sets, so the table is bounded; rows older than ``row_ttl`` are dropped.
        self.entries: dict[RowKey, tuple[BenchmarkResult, float]] = {}

    @property
    def rows(self) -> dict[RowKey, BenchmarkResult]:
        """The rows still exported now (received less than ``row_ttl`` seconds ago)."""
        return {key: row for key, (row, _) in self._live(self.clock()).items()}

    def _live(self, now: float) -> dict[RowKey, tuple[BenchmarkResult, float]]:
        oldest = now - self.row_ttl
        entries = self.entries  # read once: the writer swaps the dict whole
        return {key: entry for key, entry in entries.items() if entry[1] > oldest}

    def record(self, events: Sequence[Event], received_at: float) -> None:
        """Count what TradeMetrics set aside: benchmark trades and results, in order.

        Every trade handed here is counted as benchmark traffic (TradeMetrics sends only
        those whose ``src`` has the prefix), by the trade path's own loop
        (:func:`~trading_sidecar.metrics.tally`) in this module's loss table.
        """

        def result(event: Event) -> None:
            assert isinstance(event, BenchmarkResult)
            self.record_result(event, received_at)

        counted = tally(events, received_at, self.streams, self.latency_counts, 0.0, result)
        self.trades += counted.buys + counted.sells
        self.lost += counted.lost
        self.latency_sum += counted.latency_sum

    def record_result(self, result: BenchmarkResult, received_at: float) -> None:
        """Keep the newest row per (mode, variant), dropping expired ones; rare, so a
        plain rebuild is fine."""
        self.results += 1
        entries = self._live(received_at)
        entries[(result.mode, result.variant)] = (result, received_at)
        self.entries = entries  # swapped whole, so a concurrent scrape sees old or new

    def snapshot(self) -> BenchState:
        """A copy of the counts (not the rows: they are gauges the next run replaces)."""
        return BenchState(
            trades=self.trades,
            lost=self.lost,
            latency_counts=list(self.latency_counts),
            latency_sum=self.latency_sum,
            results=self.results,
            streams=LossTracker(
                dict(self.streams.positions), self.streams.capacity, self.streams.jumps
            ),
        )

    def restore(self, state: BenchState) -> None:
        """Continue from ``state`` (a histogram with other bounds is not restored)."""
        self.trades = state.trades
        self.lost = state.lost
        if len(state.latency_counts) == len(self.latency_counts):
            self.latency_counts[:] = state.latency_counts
            self.latency_sum = state.latency_sum
        self.results = state.results
        self.streams.positions = dict(state.streams.positions)
        self.streams.jumps = state.streams.jumps


class BenchCollector(Collector):
    """Exposes a :class:`BenchMetrics` to a registry, building fresh families per scrape."""

    def __init__(self, bench: BenchMetrics) -> None:
        self._b = bench

    def collect(self) -> Iterator[Metric]:
        b = self._b
        yield CounterMetricFamily(
            names.BENCH_RESULTS, "Benchmark result messages received.", value=b.results
        )
        yield CounterMetricFamily(
            names.BENCH_TRADES,
            f"Valid trades from benchmark sources (src {BENCH_SOURCE_PREFIX}*), "
            "kept out of the trading series.",
            value=b.trades,
        )
        yield CounterMetricFamily(
            names.BENCH_LOST,
            "Benchmark events that never arrived, from gaps in their seq numbers.",
            value=b.lost,
        )
        yield histogram_family(
            names.BENCH_E2E_LATENCY,
            "Receive time minus event ts of benchmark trades, in seconds.",
            E2E_BOUNDS,
            b.latency_counts,
            b.latency_sum,
        )
        yield from _row_families(b.rows)


#: Both closed sets in the contract: the number of benchmark series is bounded by
#: len(BENCH_MODES) * len(BENCH_VARIANTS) per family, whatever run ids arrive.
_ROW_LABELS = ["mode", "variant"]
_PERCENTILES = tuple((p, f"{p}_us") for p in names.BENCH_PERCENTILES)
_OUTCOMES = tuple(
    (outcome, outcome) for outcome in ("events", "sent", "dropped", "received", "lost")
)
#: The gauges of a row, in exposition order: (name, help, the label they add or None,
#: (that label's value, the BenchmarkResult field) per sample of a row, the scale).
_ROW_GAUGES: tuple[tuple[str, str, str | None, tuple[tuple[str, str], ...], float], ...] = (
    (
        names.BENCH_LATENCY,
        "Per-call latency percentile of a benchmark row, in seconds (max: the largest).",
        names.BENCH_PERCENTILE_LABEL,
        _PERCENTILES,
        1e-6,  # the row's microseconds
    ),
    (names.BENCH_RATE, "Achieved event rate.", None, (("", "rate"),), 1.0),
    (
        names.BENCH_TARGET_RATE,
        "Requested event rate; 0 when unpaced.",
        None,
        (("", "target_rate"),),
        1.0,
    ),
    (
        names.BENCH_EVENTS,
        "Event counts of a benchmark row by outcome; -1 where the mode cannot know.",
        "outcome",
        _OUTCOMES,
        1.0,
    ),
    (names.BENCH_ELAPSED, "Wall time of the row.", None, (("", "elapsed_s"),), 1.0),
    (
        names.BENCH_FINISHED,
        "When the row finished, epoch seconds.",
        None,
        (("", "finished_at"),),
        1.0,
    ),
)


def _row_families(rows: dict[RowKey, BenchmarkResult]) -> Iterator[Metric]:
    run = InfoMetricFamily(
        names.BENCH_RUN.removesuffix("_info"),
        "The run whose row each (mode, variant) series shows; replaced by the next run.",
        labels=_ROW_LABELS,
    )
    for key, row in rows.items():
        run.add_metric(list(key), {"run_id": row.run_id})
    yield run
    for name, documentation, label, samples, scale in _ROW_GAUGES:
        family = GaugeMetricFamily(
            name, documentation, labels=_ROW_LABELS if label is None else [*_ROW_LABELS, label]
        )
        for key, row in rows.items():
            for value, field_name in samples:
                labels = list(key) if label is None else [*key, value]
                family.add_metric(labels, getattr(row, field_name) * scale)
        yield family


def register_bench(bench: BenchMetrics, registry: CollectorRegistry) -> BenchCollector:
    """Expose ``bench`` in ``registry``, next to the trade collector (metrics.register)."""
    collector = BenchCollector(bench)
    registry.register(collector)
    return collector
