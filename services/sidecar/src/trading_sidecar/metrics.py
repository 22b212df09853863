"""The trade series: typed trades in, Prometheus families out, kept as plain numbers.

The receiver hands typed events (decoded and validated by the contract) to
:meth:`TradeMetrics.record`, a chunk at a time, from one thread. :func:`tally` is the one
hot loop: sums in locals, written back once per chunk, so an event costs a few local
updates instead of prometheus_client's lock per ``inc()``. ``collect()`` reads without a
lock, safe because every key exists from start-up and every label value comes from the
contract's closed sets (no input can create a series).

Benchmark trades and results are set aside and handed to ``others`` (the app routes them
to :mod:`trading_sidecar.bench_metrics`), so a benchmark never touches a trade series.
Loss is counted per (src, stream) and epoch by one rule, :func:`lost_between`
(docs/contract.md); totals and the loss table are plain data (:class:`MetricsState`) so
they can be snapshotted and restored.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX
from telemetry_contract.errors import Reason
from telemetry_contract.events import MAX_SEQ_GAP, SIDES, Event, Trade

#: (src, stream) keys whose position is remembered; beyond this the least recently
#: seen is forgotten, so made-up ``src``/``stream`` values cannot grow memory.
MAX_TRACKED_STREAMS = 4096
E2E_BOUNDS = names.E2E_LATENCY_BUCKETS

#: A (src, stream) key, and its position: (last seq, last epoch).
StreamKey = tuple[str, int]
Position = tuple[int, int]


#: The one value of the ``reason`` label of ``telemetry_stream_resets_total`` so far.
SEQ_JUMP = "seq_jump"
STREAM_RESET_REASONS = (SEQ_JUMP,)
#: What :func:`lost_between` returns for a gap too large to be loss (a stream reset).
JUMP = -1


def lost_between(last: Position, seq: int, epoch: int) -> int:
    """Events the gap from ``last`` to (``seq``, ``epoch``) says this sidecar lost.

    Same epoch, or the very next one (this sidecar saw the previous connection, so no
    other replica got the gap): a jump in seq is loss, up to MAX_SEQ_GAP events. A
    larger jump (seq 0 then 2**53 - 1) is no loss anyone could have: a stream reset,
    :data:`JUMP`, counted apart. An epoch further ahead means the connections in between
    went to another replica, which counted them: no loss here. seq at or below the last
    one (a duplicate, a publisher restart) or an older epoch: start over from it, no
    loss. Every case re-baselines at (seq, epoch).
    """
    last_seq, last_epoch = last
    if last_epoch <= epoch <= last_epoch + 1 and seq > last_seq + 1:
        gap = seq - last_seq - 1
        return gap if gap <= MAX_SEQ_GAP else JUMP
    return 0


@dataclass(slots=True)
class LossTracker:
    """Last (seq, epoch) per (src, stream): a bounded LRU table, insertion-ordered dict.

    The most recently seen key is the last one in the dict (it is re-inserted when it
    changes), so the first key is the one to forget when the table is full.
    """

    positions: dict[StreamKey, Position] = field(default_factory=dict)
    capacity: int = MAX_TRACKED_STREAMS
    #: Gaps above MAX_SEQ_GAP, taken as stream resets rather than loss.
    jumps: int = 0

    def observe(self, src: str, stream: int, seq: int, epoch: int) -> int:
        """Record one event's position; returns how many events its gap says were lost."""
        positions = self.positions
        key = (src, stream)
        last = positions.pop(key, None)
        if last is None:
            while len(positions) >= self.capacity:  # the write-back of tally() may add one
                del positions[next(iter(positions))]
            positions[key] = (seq, epoch)
            return 0
        positions[key] = (seq, epoch)
        return self.gap(last, seq, epoch)

    def gap(self, last: Position, seq: int, epoch: int) -> int:
        """:func:`lost_between`, with a stream reset counted in :attr:`jumps` as no loss."""
        lost = lost_between(last, seq, epoch)
        if lost == JUMP:
            self.jumps += 1
            return 0
        return lost


@dataclass(slots=True)
class Tally:
    """What :func:`tally` counted in one chunk, for its caller to add to its totals."""

    buys: int
    sells: int
    buy_volume: float
    sell_volume: float
    #: ts of the last trade counted (the caller's previous value when none was).
    last_ts: float
    latency_sum: float
    lost: int


def tally(
    events: Sequence[Event],
    received_at: float,
    streams: LossTracker,
    latency_counts: list[int],
    last_ts: float,
    aside: Callable[[Event], None],
    aside_prefix: str | None = None,
) -> Tally:
    """Count a chunk of events, in order: the one hot loop of trades and benchmark traffic.

    Events that are not trades, and trades whose ``src`` starts with ``aside_prefix``, go
    to ``aside`` instead. Each trade's e2e latency goes into ``latency_counts`` (a slot
    per E2E_BOUNDS bound plus +Inf); its seq gap goes through ``streams``, which applies
    the one loss rule (:func:`lost_between`). Written for the interpreter: sums stay in
    locals, and so does the position of the stream being followed while consecutive
    events come from it (the usual case), so the loss table and the prefix test are
    touched once per run of events; an event that is simply the next one of its stream
    costs one comparison, and anything else asks the rule.
    """
    bounds = E2E_BOUNDS
    positions = streams.positions
    buys = sells = lost = 0
    buy_volume = sell_volume = latency_sum = 0.0
    slot = bisect_left
    trade = Trade
    # The src followed in locals: whether it is set aside, and (when ``f_held``) its
    # stream's key and position, written back to the table on leaving it.
    f_src: str | None = None
    f_aside = f_held = False
    f_key: StreamKey = ("", 0)
    f_stream = f_seq = f_epoch = 0
    for event in events:
        if type(event) is not trade:
            aside(event)
            continue
        src = event.src
        if src is not None:
            if src != f_src:
                if f_held:
                    positions[f_key] = (f_seq, f_epoch)
                    f_held = False
                f_src = src
                f_aside = aside_prefix is not None and src.startswith(aside_prefix)
            if f_aside:
                aside(event)
                continue
            seq = event.seq
            if seq is not None:
                stream = event.stream or 0
                epoch = event.epoch or 0
                if f_held and stream == f_stream:
                    if seq != f_seq + 1 or epoch != f_epoch:
                        lost += streams.gap((f_seq, f_epoch), seq, epoch)
                else:
                    if f_held:
                        positions[f_key] = (f_seq, f_epoch)
                    lost += streams.observe(src, stream, seq, epoch)
                    f_key, f_stream, f_held = (src, stream), stream, True
                f_seq, f_epoch = seq, epoch
        ts = event.ts
        latency = received_at - ts
        if latency < 0.0:  # two hosts' clocks disagree: count it as instant
            latency = 0.0
        if event.side == "buy":
            buys += 1
            buy_volume += event.qty
        else:
            sells += 1
            sell_volume += event.qty
        last_ts = ts
        latency_counts[slot(bounds, latency)] += 1
        latency_sum += latency
    if f_held:
        positions[f_key] = (f_seq, f_epoch)
    return Tally(buys, sells, buy_volume, sell_volume, last_ts, latency_sum, lost)


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
    streams: LossTracker = field(default_factory=LossTracker)


#: Where :meth:`TradeMetrics.record` hands the events that are not trading traffic.
Others = Callable[[Sequence[Event], float], None]


def _uncounted(events: Sequence[Event], received_at: float) -> None:
    """``others`` of a TradeMetrics on its own (the ingest benchmark, tests): it has no
    benchmark series, and these events are not trades, so nothing here counts them."""


class TradeMetrics(MetricsState):
    """Running totals of the trading traffic, and the one ingest path.

    ``others`` receives, once per :meth:`record` call and in arrival order, the events
    that are not trading traffic (see the module doc); by default nobody counts them.
    """

    __slots__ = ("others",)

    def __init__(self, others: Others | None = None) -> None:
        super().__init__()
        self.others: Others = others or _uncounted

    def record(self, events: Sequence[Event], received_at: float) -> None:
        """Count decoded events, in order, all received at ``received_at`` (epoch s);
        benchmark traffic and results are handed to ``others`` once, in order."""
        aside: list[Event] = []
        counted = tally(
            events,
            received_at,
            self.streams,
            self.latency_counts,
            self.last_trade_ts,
            aside.append,
            BENCH_SOURCE_PREFIX,
        )
        trades, volume = self.trades, self.volume
        trades["buy"] += counted.buys
        trades["sell"] += counted.sells
        volume["buy"] += counted.buy_volume
        volume["sell"] += counted.sell_volume
        self.last_trade_ts = counted.last_ts
        self.latency_sum += counted.latency_sum
        self.lost += counted.lost
        if aside:
            self.others(aside, received_at)

    def record_invalid(self, reason: Reason) -> None:
        self.invalid[reason.value] += 1

    def snapshot(self) -> MetricsState:
        """A copy of the counted state."""
        return MetricsState(
            trades=dict(self.trades),
            volume=dict(self.volume),
            last_trade_ts=self.last_trade_ts,
            received=self.received,
            invalid=dict(self.invalid),
            lost=self.lost,
            latency_counts=list(self.latency_counts),
            latency_sum=self.latency_sum,
            streams=LossTracker(
                dict(self.streams.positions), self.streams.capacity, self.streams.jumps
            ),
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
        self.streams.positions = dict(state.streams.positions)
        self.streams.jumps = state.streams.jumps


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
        resets = CounterMetricFamily(
            names.STREAM_RESETS,
            "Streams started over from an event instead of counting its gap as loss, by "
            f"reason; seq_jump: a seq gap above {MAX_SEQ_GAP} (no loss anyone could have).",
            labels=["reason"],
        )
        resets.add_metric([SEQ_JUMP], m.streams.jumps)
        yield resets
        yield histogram_family(
            names.E2E_LATENCY,
            "Receive time minus event ts: publish-to-sidecar latency, in seconds.",
            E2E_BOUNDS,
            m.latency_counts,
            m.latency_sum,
        )


def histogram_family(
    name: str,
    documentation: str,
    bounds: Sequence[float],
    counts: Sequence[int],
    sum_value: float,
) -> HistogramMetricFamily:
    """A histogram kept as per-slot counts (last slot: +Inf), as Prometheus exposes it.

    Both latency histograms (trades here, benchmark traffic in bench_metrics) count into
    one plain slot per bound on the hot path; the cumulative ``le`` buckets are summed
    only here, at scrape time.
    """
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip(bounds, counts, strict=False):
        cumulative += count
        buckets.append((repr(bound), cumulative))
    cumulative += counts[-1]
    buckets.append(("+Inf", cumulative))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=sum_value)


def register(metrics: TradeMetrics, registry: CollectorRegistry) -> TradeCollector:
    """Expose ``metrics`` in ``registry`` (the benchmark's series: bench_metrics.register_bench)."""
    collector = TradeCollector(metrics)
    registry.register(collector)
    return collector
