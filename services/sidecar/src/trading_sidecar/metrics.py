"""The sidecar's Prometheus metrics, kept as plain numbers and exposed by a Collector.

One ingest path: the receiver hands typed events (already decoded and validated by the
contract) to :meth:`TradeMetrics.record`, in order, a chunk at a time; nothing here
ever sees bytes. The receiver thread is the only writer. prometheus_client's Counter
takes a lock on every ``inc()``; here an event costs a few local updates, written back
once per chunk, and the lock-free read in ``collect()`` is safe because every key exists
from start-up (no dict resizes) and the GIL makes each single update atomic. Every label
value comes from the contract's closed sets, so no input can create a new series.

Trades from a ``src`` starting with ``BENCH_SOURCE_PREFIX`` are benchmark traffic: they
are counted in their own series (trades, seq-gap losses, e2e latency) and never in the
trading ones, so a benchmark run against a production sidecar leaves the trading
dashboard alone and reads back exactly its own events.

Loss is counted per (src, stream) with the connection epoch, by the rule in
docs/contract.md (:class:`LossTracker`). The running totals and the loss table are
plain data (:class:`MetricsState`), so they can be snapshotted and restored.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX
from telemetry_contract.errors import Reason
from telemetry_contract.events import SIDES, BenchmarkResult, Event, Trade

#: (src, stream) keys whose position is remembered; beyond this the least recently
#: seen is forgotten, so made-up ``src``/``stream`` values cannot grow memory.
MAX_TRACKED_STREAMS = 4096
#: The old name, for readers of the per-src table it replaced.
MAX_TRACKED_SOURCES = MAX_TRACKED_STREAMS
E2E_BOUNDS = names.E2E_LATENCY_BUCKETS

#: A (src, stream) key, and its position: (last seq, last epoch).
StreamKey = tuple[str, int]
Position = tuple[int, int]


def lost_between(last: Position, seq: int, epoch: int) -> int:
    """Events the gap from ``last`` to (``seq``, ``epoch``) says this sidecar lost.

    Same epoch, or the very next one (this sidecar saw the previous connection, so no
    other replica got the gap): a jump in seq is loss. An epoch further ahead means the
    connections in between went to another replica, which counted them: no loss here.
    seq at or below the last one (a duplicate, a publisher restart) or an older epoch:
    start over from it, no loss. Every case re-baselines at (seq, epoch).
    """
    last_seq, last_epoch = last
    if last_epoch <= epoch <= last_epoch + 1 and seq > last_seq + 1:
        return seq - last_seq - 1
    return 0


@dataclass(slots=True)
class LossTracker:
    """Last (seq, epoch) per (src, stream): a bounded LRU table, insertion-ordered dict.

    The most recently seen key is the last one in the dict (it is re-inserted when it
    changes), so the first key is the one to forget when the table is full.
    """

    positions: dict[StreamKey, Position] = field(default_factory=dict)
    capacity: int = MAX_TRACKED_STREAMS

    def observe(self, src: str, stream: int, seq: int, epoch: int) -> int:
        """Record one event's position; returns how many events its gap says were lost."""
        positions = self.positions
        key = (src, stream)
        last = positions.pop(key, None)
        if last is None:
            if len(positions) >= self.capacity:
                del positions[next(iter(positions))]
            positions[key] = (seq, epoch)
            return 0
        positions[key] = (seq, epoch)
        return lost_between(last, seq, epoch)


@dataclass(slots=True)
class MetricsState:
    """Everything the sidecar counts, as plain data (snapshot/restore, tests)."""

    trades: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    volume: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIDES, 0.0))
    last_trade_ts: float = 0.0
    received: int = 0
    invalid: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Reason})
    lost: int = 0
    #: One slot per e2e bound plus the +Inf overflow; non-cumulative, summed at scrape.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(E2E_BOUNDS) + 1))
    latency_sum: float = 0.0
    bench_trades: int = 0
    bench_lost: int = 0
    bench_latency_counts: list[int] = field(default_factory=lambda: [0] * (len(E2E_BOUNDS) + 1))
    bench_latency_sum: float = 0.0
    bench_results: int = 0
    streams: LossTracker = field(default_factory=LossTracker)


class TradeMetrics(MetricsState):
    """Running totals for everything the sidecar has received, and the one ingest path."""

    __slots__ = ("bench_rows", "latency_bounds")

    def __init__(self) -> None:
        super().__init__()
        self.latency_bounds = E2E_BOUNDS
        #: Latest row per (mode, variant): both closed sets, so the table is bounded.
        self.bench_rows: dict[tuple[str, str], BenchmarkResult] = {}

    def record(self, events: Sequence[Event], received_at: float) -> None:
        """Count decoded events, in order, all received at ``received_at`` (epoch s).

        Sums are kept in locals and written once; the (src, stream) being followed stays
        in locals while consecutive events come from it (the usual case), so the loss
        table is touched once per run of events, not per event.
        """
        bounds = self.latency_bounds
        counts = self.latency_counts
        bench_counts = self.bench_latency_counts
        streams = self.streams
        buys = sells = bench_trades = lost = bench_lost = 0
        buy_volume = sell_volume = latency_sum = bench_latency_sum = 0.0
        last_ts = self.last_trade_ts
        prefix = BENCH_SOURCE_PREFIX
        following: StreamKey | None = None  # key whose position is held in position
        position: Position = (0, 0)
        trade = Trade
        for event in events:
            if type(event) is not trade:
                assert isinstance(event, BenchmarkResult)
                self.record_benchmark(event)
                continue
            src = event.src
            bench = False
            if src is not None:
                bench = src.startswith(prefix)
                seq = event.seq
                if seq is not None:
                    key = (src, event.stream or 0)
                    epoch = event.epoch or 0
                    if key == following:
                        gap = lost_between(position, seq, epoch)
                        position = (seq, epoch)
                    else:
                        if following is not None:
                            streams.positions[following] = position
                        gap = streams.observe(src, key[1], seq, epoch)
                        following, position = key, (seq, epoch)
                    if bench:
                        bench_lost += gap
                    else:
                        lost += gap
            ts = event.ts
            latency = received_at - ts
            if latency < 0.0:  # two hosts' clocks disagree: count it as instant
                latency = 0.0
            if bench:
                bench_trades += 1
                bench_counts[bisect_left(bounds, latency)] += 1
                bench_latency_sum += latency
                continue
            if event.side == "buy":
                buys += 1
                buy_volume += event.qty
            else:
                sells += 1
                sell_volume += event.qty
            last_ts = ts
            counts[bisect_left(bounds, latency)] += 1
            latency_sum += latency
        if following is not None:
            streams.positions[following] = position
        trades, volume = self.trades, self.volume
        trades["buy"] += buys
        trades["sell"] += sells
        volume["buy"] += buy_volume
        volume["sell"] += sell_volume
        self.last_trade_ts = last_ts
        self.latency_sum += latency_sum
        self.lost += lost
        if bench_trades or bench_lost:
            self.bench_trades += bench_trades
            self.bench_lost += bench_lost
            self.bench_latency_sum += bench_latency_sum

    def record_trade(self, event: Trade, received_at: float) -> None:
        """One trade: :meth:`record` of a one-event chunk (tests, the HTTP path)."""
        self.record((event,), received_at)

    def record_invalid(self, reason: Reason) -> None:
        self.invalid[reason.value] += 1

    def record_benchmark(self, result: BenchmarkResult) -> None:
        """Keep the newest row per (mode, variant); rare, so a plain rebuild is fine."""
        self.bench_results += 1
        rows = dict(self.bench_rows)
        rows[(result.mode, result.variant)] = result
        self.bench_rows = rows  # swapped whole, so a concurrent scrape sees old or new

    def snapshot(self) -> MetricsState:
        """A copy of the counted state (not the benchmark rows: they are gauges)."""
        return MetricsState(
            trades=dict(self.trades),
            volume=dict(self.volume),
            last_trade_ts=self.last_trade_ts,
            received=self.received,
            invalid=dict(self.invalid),
            lost=self.lost,
            latency_counts=list(self.latency_counts),
            latency_sum=self.latency_sum,
            bench_trades=self.bench_trades,
            bench_lost=self.bench_lost,
            bench_latency_counts=list(self.bench_latency_counts),
            bench_latency_sum=self.bench_latency_sum,
            bench_results=self.bench_results,
            streams=LossTracker(dict(self.streams.positions), self.streams.capacity),
        )

    def restore(self, state: MetricsState) -> None:
        """Continue from ``state`` (keys of closed sets the state lacks stay at 0)."""
        for side in SIDES:
            self.trades[side] = state.trades.get(side, 0)
            self.volume[side] = state.volume.get(side, 0.0)
        for reason in self.invalid:
            self.invalid[reason] = state.invalid.get(reason, 0)
        self.last_trade_ts = state.last_trade_ts
        self.received = state.received
        self.lost = state.lost
        if len(state.latency_counts) == len(self.latency_counts):
            self.latency_counts[:] = state.latency_counts
            self.latency_sum = state.latency_sum
        self.bench_trades = state.bench_trades
        self.bench_lost = state.bench_lost
        if len(state.bench_latency_counts) == len(self.bench_latency_counts):
            self.bench_latency_counts[:] = state.bench_latency_counts
            self.bench_latency_sum = state.bench_latency_sum
        self.bench_results = state.bench_results
        self.streams.positions = dict(state.streams.positions)


class TradeCollector(Collector):
    """Exposes a :class:`TradeMetrics` to a registry, building fresh families per scrape."""

    def __init__(self, metrics: TradeMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        trades = CounterMetricFamily(
            names.TRADES, "Valid trade events received, by side.", labels=["side"]
        )
        volume = CounterMetricFamily(
            names.VOLUME, "Sum of qty over valid trade events, by side.", labels=["side"]
        )
        for side in SIDES:
            trades.add_metric([side], m.trades[side])
            volume.add_metric([side], m.volume[side])
        yield trades
        yield volume
        yield GaugeMetricFamily(
            names.LAST_TRADE_TS,
            "Event timestamp (ts, epoch seconds) of the most recent valid trade; 0 before any.",
            value=m.last_trade_ts,
        )
        yield CounterMetricFamily(
            names.RECEIVED,
            "Frames pulled from the ZeroMQ socket, valid or not (a batch frame is one).",
            value=m.received,
        )
        invalid = CounterMetricFamily(
            names.INVALID,
            "Frames (or batch items) dropped because they break the contract, by reason; "
            "internal_error: the receive loop caught an unexpected exception.",
            labels=["reason"],
        )
        for reason, count in list(m.invalid.items()):
            invalid.add_metric([reason], count)
        yield invalid
        yield CounterMetricFamily(
            names.LOST,
            "Events a publisher sent that never arrived, from gaps in seq per (src, stream).",
            value=m.lost,
        )
        yield HistogramMetricFamily(
            names.E2E_LATENCY,
            "Receive time minus event ts: publish-to-sidecar latency, in seconds.",
            buckets=_cumulative(m.latency_bounds, m.latency_counts),
            sum_value=m.latency_sum,
        )
        yield CounterMetricFamily(
            names.BENCH_RESULTS, "Benchmark result messages received.", value=m.bench_results
        )
        yield CounterMetricFamily(
            names.BENCH_TRADES,
            f"Valid trades from benchmark sources (src {BENCH_SOURCE_PREFIX}*), "
            "kept out of the trading series.",
            value=m.bench_trades,
        )
        yield CounterMetricFamily(
            names.BENCH_LOST,
            "Benchmark events that never arrived, from gaps in their seq numbers.",
            value=m.bench_lost,
        )
        yield HistogramMetricFamily(
            names.BENCH_E2E_LATENCY,
            "Receive time minus event ts of benchmark trades, in seconds.",
            buckets=_cumulative(m.latency_bounds, m.bench_latency_counts),
            sum_value=m.bench_latency_sum,
        )
        yield from _benchmark_families(m.bench_rows)


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-slot counts (last slot: +Inf) as Prometheus' cumulative ``le`` buckets."""
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(bounds, counts, strict=False):
        cumulative += count
        buckets.append((repr(bound), cumulative))
    cumulative += counts[-1]
    buckets.append(("+Inf", cumulative))
    return buckets


#: Both closed sets in the contract: the number of benchmark series is bounded by
#: len(BENCH_MODES) * len(BENCH_VARIANTS) per family, whatever run ids arrive.
_ROW_LABELS = ["mode", "variant"]
_QUANTILES = (("0.5", "p50_us"), ("0.9", "p90_us"), ("0.99", "p99_us"),
              ("0.999", "p999_us"), ("1", "max_us"))  # fmt: skip
_OUTCOMES = ("events", "sent", "dropped", "received", "lost")


def _benchmark_families(rows: dict[tuple[str, str], BenchmarkResult]) -> Iterator[Metric]:
    run = InfoMetricFamily(
        names.BENCH_RUN.removesuffix("_info"),
        "The run whose row each (mode, variant) series shows; replaced by the next run.",
        labels=_ROW_LABELS,
    )
    latency = GaugeMetricFamily(
        names.BENCH_LATENCY,
        "Per-call latency percentile of a benchmark row (quantile 1 is the max).",
        labels=[*_ROW_LABELS, "quantile"],
    )
    rate = GaugeMetricFamily(names.BENCH_RATE, "Achieved event rate.", labels=_ROW_LABELS)
    target = GaugeMetricFamily(
        names.BENCH_TARGET_RATE, "Requested event rate; 0 when unpaced.", labels=_ROW_LABELS
    )
    events = GaugeMetricFamily(
        names.BENCH_EVENTS,
        "Event counts of a benchmark row by outcome; -1 where the mode cannot know.",
        labels=[*_ROW_LABELS, "outcome"],
    )
    elapsed = GaugeMetricFamily(names.BENCH_ELAPSED, "Wall time of the row.", labels=_ROW_LABELS)
    finished = GaugeMetricFamily(
        names.BENCH_FINISHED, "When the row finished, epoch seconds.", labels=_ROW_LABELS
    )
    for key, row in rows.items():
        labels = list(key)
        run.add_metric(labels, {"run_id": row.run_id})
        for quantile, name in _QUANTILES:
            latency.add_metric([*labels, quantile], getattr(row, name))
        for outcome in _OUTCOMES:
            events.add_metric([*labels, outcome], getattr(row, outcome))
        rate.add_metric(labels, row.rate)
        target.add_metric(labels, row.target_rate)
        elapsed.add_metric(labels, row.elapsed_s)
        finished.add_metric(labels, row.finished_at)
    yield from (run, latency, rate, target, events, elapsed, finished)


def register(metrics: TradeMetrics, registry: CollectorRegistry) -> TradeCollector:
    collector = TradeCollector(metrics)
    registry.register(collector)
    return collector
