"""The sidecar's Prometheus metrics, kept as plain numbers and exposed by a Collector.

The receiver thread is the only writer. prometheus_client's Counter takes a lock on
every ``inc()``; here an event costs a few dict/list updates instead, and the lock-free
read in ``collect()`` is safe because every key exists from start-up (no dict resizes)
and the GIL makes each single update atomic. Every label value comes from the
contract's closed sets, so no input can create a new series, and every series exists
from the first scrape. Families carry no ``created`` timestamp, so there is no
``_created`` series.

Trades from a ``src`` starting with ``BENCH_SOURCE_PREFIX`` are benchmark traffic: they
are counted in their own series (trades, seq-gap losses, e2e latency) and never in the
trading ones, so a benchmark run against a production sidecar leaves the trading
dashboard alone and reads back exactly its own events. The fast path pays for the check
once per run of frames from one publisher (a prefix test) plus one flag test per frame
that carries a ``src``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX, BENCH_SOURCE_PREFIX_BYTES
from telemetry_contract.errors import Reason
from telemetry_contract.events import SIDES, BenchmarkResult, TradeEvent

#: Publishers whose last ``seq`` is remembered; beyond this the oldest is forgotten,
#: so a stream of made-up ``src`` values cannot grow memory without bound.
MAX_TRACKED_SOURCES = 4096
E2E_BOUNDS = names.E2E_LATENCY_BUCKETS


def _observe(counts: list[int], received_at: float, ts: float) -> float:
    """Put one e2e latency in its bucket slot and return it (for the running sum).

    A negative latency means two hosts' clocks disagree; it counts as "instant".
    """
    latency = received_at - ts
    if latency < 0.0:
        latency = 0.0
    counts[bisect_left(E2E_BOUNDS, latency)] += 1
    return latency


class TradeMetrics:
    """Running totals for everything the sidecar has received."""

    def __init__(self) -> None:
        self.trades: dict[str, int] = dict.fromkeys(SIDES, 0)
        self.volume: dict[str, float] = dict.fromkeys(SIDES, 0.0)
        self.last_trade_ts = 0.0
        self.received = 0
        self.invalid: dict[str, int] = {reason.value: 0 for reason in Reason}
        self.lost = 0
        self.latency_bounds = E2E_BOUNDS
        # One slot per bound plus the +Inf overflow; non-cumulative, summed at scrape.
        self.latency_counts = [0] * (len(self.latency_bounds) + 1)
        self.latency_sum = 0.0
        #: Benchmark traffic (src starting with BENCH_SOURCE_PREFIX), counted apart.
        self.bench_trades = 0
        self.bench_lost = 0
        self.bench_latency_counts = [0] * (len(self.latency_bounds) + 1)
        self.bench_latency_sum = 0.0
        self._last_seq: dict[str, int] = {}
        self.bench_results = 0
        #: Latest row per (run_id, mode, variant), oldest first, at most MAX_BENCH_ROWS.
        self.bench_rows: dict[tuple[str, str, str], BenchmarkResult] = {}

    def record_trade(self, event: TradeEvent, received_at: float) -> None:
        """Count one valid trade that arrived at ``received_at`` (epoch seconds).

        The general path, for frames the decoder had to parse; frames in the encoder's
        own layout are counted by :meth:`record_canonical`, which must agree with this.
        """
        src, seq = event.src, event.seq
        if src is not None and src.startswith(BENCH_SOURCE_PREFIX):
            self.bench_trades += 1
            self.bench_latency_sum += _observe(self.bench_latency_counts, received_at, event.ts)
            if seq is not None:
                self.bench_lost += self._track_seq(src, seq)
            return
        side = event.side
        self.trades[side] += 1
        self.volume[side] += event.qty
        self.last_trade_ts = event.ts
        self.latency_sum += _observe(self.latency_counts, received_at, event.ts)
        if seq is not None and src is not None:
            self.lost += self._track_seq(src, seq)

    def record_canonical(
        self, batch: Sequence[tuple[bytes | Any, ...]], received_at: float
    ) -> None:
        """Count a batch of frames matched by ``codec.CANONICAL_TRADE_MATCH``.

        The groups are converted here, in one loop with every lookup local, instead of
        one :meth:`record` call per event: the call itself cost as much as the counting.
        Sides are summed in locals and written once; the seq stream being followed stays
        in locals while consecutive frames come from the same publisher (the usual case),
        so its name is decoded and looked up once per run of frames, not per frame. The
        result is exactly :meth:`record` applied frame by frame (a test holds it to
        that). All of the batch was counted at ``received_at``, which is what its e2e
        latency measures (publish to counted). Whether a stream is benchmark traffic is
        decided when the stream changes, with the rest of its state.
        """
        counts = self.latency_counts
        bounds = self.latency_bounds
        last_seq = self._last_seq
        buys = sells = 0
        buy_volume = sell_volume = latency_sum = 0.0
        lost = 0
        ts = self.last_trade_ts
        following: bytes | None = None  # src of the stream held in name/last
        name = ""
        last: int | None = None
        bench = False  # whether the stream held in name/last is benchmark traffic
        bench_prefix = BENCH_SOURCE_PREFIX_BYTES
        bench_counts = self.bench_latency_counts
        bench_trades = bench_lost = 0
        bench_latency_sum = 0.0
        for side, qty_text, ts_text, src, seq in batch:
            if src is not None:  # _track_seq, with the current stream kept in locals
                if src != following:
                    if following is not None and last is not None:
                        last_seq[name] = last
                    following = src
                    name = src.decode("ascii")
                    bench = src.startswith(bench_prefix)
                    last = last_seq.get(name)
                    if last is None and len(last_seq) >= MAX_TRACKED_SOURCES:
                        del last_seq[next(iter(last_seq))]
                number = int(seq)
                if last is not None and number > last + 1:
                    if bench:
                        bench_lost += number - last - 1
                    else:
                        lost += number - last - 1
                last = number
                if bench:  # counted apart, never in the trading series
                    bench_trades += 1
                    latency = received_at - float(ts_text)
                    if latency < 0.0:
                        latency = 0.0
                    bench_counts[bisect_left(bounds, latency)] += 1
                    bench_latency_sum += latency
                    continue
            qty = float(qty_text)
            ts = float(ts_text)
            if side == b"buy":
                buys += 1
                buy_volume += qty
            else:
                sells += 1
                sell_volume += qty
            latency = received_at - ts
            if latency < 0.0:
                latency = 0.0
            counts[bisect_left(bounds, latency)] += 1
            latency_sum += latency
        if following is not None and last is not None:
            last_seq[name] = last
        trades = self.trades
        volume = self.volume
        trades["buy"] += buys
        trades["sell"] += sells
        volume["buy"] += buy_volume
        volume["sell"] += sell_volume
        self.last_trade_ts = ts
        self.latency_sum += latency_sum
        self.lost += lost
        if bench_trades:
            self.bench_trades += bench_trades
            self.bench_lost += bench_lost
            self.bench_latency_sum += bench_latency_sum

    def _track_seq(self, src: str, seq: int) -> int:
        """Follow ``src``'s seq stream; returns how many events its gap says were lost."""
        last = self._last_seq.get(src)
        gap = 0
        if last is not None and seq > last + 1:
            gap = seq - last - 1
        elif last is None and len(self._last_seq) >= MAX_TRACKED_SOURCES:
            del self._last_seq[next(iter(self._last_seq))]
        # seq <= last means the publisher restarted (or reordered): start over from it.
        self._last_seq[src] = seq
        return gap

    def record_invalid(self, reason: Reason) -> None:
        self.invalid[reason.value] += 1

    def record_benchmark(self, result: BenchmarkResult) -> None:
        """Keep the newest result per run/mode/variant; rare, so a plain rebuild is fine."""
        self.bench_results += 1
        key = (result.run_id, result.mode, result.variant)
        rows = dict(self.bench_rows)
        rows.pop(key, None)
        rows[key] = result
        while len(rows) > names.MAX_BENCH_ROWS:
            del rows[next(iter(rows))]
        self.bench_rows = rows  # swapped whole, so a concurrent scrape sees old or new


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
            "Frames pulled from the ZeroMQ socket, valid or not.",
            value=m.received,
        )
        invalid = CounterMetricFamily(
            names.INVALID,
            "Frames dropped because they break the contract, by reason.",
            labels=["reason"],
        )
        for reason, count in list(m.invalid.items()):
            invalid.add_metric([reason], count)
        yield invalid
        yield CounterMetricFamily(
            names.LOST,
            "Events a publisher sent that never arrived, from gaps in its seq numbers.",
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


_ROW_LABELS = ["run_id", "mode", "variant"]
_QUANTILES = (("0.5", "p50_us"), ("0.9", "p90_us"), ("0.99", "p99_us"),
              ("0.999", "p999_us"), ("1", "max_us"))  # fmt: skip
_OUTCOMES = ("events", "sent", "dropped", "received", "lost")


def _benchmark_families(rows: dict[tuple[str, str, str], BenchmarkResult]) -> Iterator[Metric]:
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
        for quantile, field in _QUANTILES:
            latency.add_metric([*labels, quantile], getattr(row, field))
        for outcome in _OUTCOMES:
            events.add_metric([*labels, outcome], getattr(row, outcome))
        rate.add_metric(labels, row.rate)
        target.add_metric(labels, row.target_rate)
        elapsed.add_metric(labels, row.elapsed_s)
        finished.add_metric(labels, row.finished_at)
    yield from (latency, rate, target, events, elapsed, finished)


def register(metrics: TradeMetrics, registry: CollectorRegistry) -> TradeCollector:
    collector = TradeCollector(metrics)
    registry.register(collector)
    return collector
