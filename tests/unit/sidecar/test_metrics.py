"""``metrics``: trades in, trade series out. Every series before the first event, the e2e
histogram, and the loss rule per (src, stream) with epochs (docs/contract.md), table-driven on
the real TradeMetrics.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX
from telemetry_contract.errors import Reason
from telemetry_contract.events import MAX_SEQ_GAP, BenchmarkResult, Trade
from trading_sidecar.bench_metrics import BenchMetrics, register_bench
from trading_sidecar.exporter import register_exporter
from trading_sidecar.metrics import (
    JUMP,
    MAX_TRACKED_STREAMS,
    LossTracker,
    MetricsState,
    TradeMetrics,
    lost_between,
    register,
)
from trading_sidecar.state import register_state


def _registry(metrics: TradeMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    register(metrics, registry)
    return registry


NOW = 1_700_000_000.0


def t(seq: int, *, src: str = "p", stream: int | None = None, epoch: int | None = None) -> Trade:
    return Trade("buy", 1.0, NOW, src, seq, stream, epoch)


def test_every_series_exists_before_the_first_event() -> None:
    reg = _registry(TradeMetrics())
    for side in ("buy", "sell"):
        assert reg.get_sample_value(names.TRADES, {"side": side}) == 0
        assert reg.get_sample_value(names.VOLUME, {"side": side}) == 0
    for reason in Reason:
        assert reg.get_sample_value(names.INVALID, {"reason": reason.value}) == 0
    assert reg.get_sample_value(names.LAST_TRADE_TS) == 0
    assert reg.get_sample_value(names.E2E_LATENCY + "_count") == 0


def test_latency_histogram_is_cumulative_and_counts_match() -> None:
    metrics = TradeMetrics()
    reg = _registry(metrics)
    for latency in (0.00001, 0.0003, 0.0003, 0.02, 50.0, -3.0):  # -3: skewed clock
        metrics.record((Trade("buy", 1.0, 100.0),), 100.0 + latency)
    bucket = names.E2E_LATENCY + "_bucket"
    assert reg.get_sample_value(bucket, {"le": "5e-05"}) == 2  # 10 µs and the clamped skew
    assert reg.get_sample_value(bucket, {"le": "0.0005"}) == 4
    assert reg.get_sample_value(bucket, {"le": "10.0"}) == 5
    assert reg.get_sample_value(bucket, {"le": "+Inf"}) == 6
    assert reg.get_sample_value(names.E2E_LATENCY + "_count") == 6
    assert reg.get_sample_value(names.LAST_TRADE_TS) == 100.0


def test_seq_restart_is_not_loss_and_sources_are_bounded() -> None:
    metrics = TradeMetrics()
    for seq in (5, 6, 0, 1, 3):  # restart at 0 after 6; then one missing
        metrics.record((Trade("sell", 1.0, 1.0, "p", seq),), 1.0)
    assert metrics.lost == 1
    for i in range(MAX_TRACKED_STREAMS + 10):
        metrics.record((Trade("buy", 1.0, 1.0, f"s{i}", 0),), 1.0)
    assert len(metrics.streams.positions) == MAX_TRACKED_STREAMS


def test_no_created_series_and_help_text_on_every_family() -> None:
    from prometheus_client import generate_latest

    registry = _registry(TradeMetrics())
    register_bench(BenchMetrics(), registry)
    thresholds = dict.fromkeys(names.ALERT_THRESHOLDS, 1.0)
    register_exporter(registry, healthy=lambda: True, thresholds=thresholds)
    register_state(None, registry)
    text = generate_latest(registry).decode()
    assert "_created" not in text
    for name in names.ALL:
        family = name.removesuffix("_total")
        assert f"# HELP {family}" in text or f"# HELP {name}" in text, name


@pytest.mark.parametrize(
    ("last", "seq", "epoch", "lost"),
    [
        ((10, 0), 11, 0, 0),  # next in line
        ((10, 0), 14, 0, 3),  # drops in the same connection
        ((10, 0), 14, 1, 3),  # the next epoch: this replica saw the previous one
        ((10, 0), 14, 2, 0),  # epochs in between went elsewhere: re-baseline
        ((10, 3), 500, 9, 0),
        ((10, 0), 10, 0, 0),  # duplicate
        ((10, 0), 2, 0, 0),  # restart
        ((10, 2), 50, 1, 0),  # an older epoch: re-baseline, never loss
        ((0, 0), 1 + MAX_SEQ_GAP, 0, MAX_SEQ_GAP),  # the largest gap that is loss
        ((0, 0), 2 + MAX_SEQ_GAP, 0, JUMP),  # one more: a stream reset, no loss
        ((0, 0), 2**53 - 1, 1, JUMP),  # also at the next epoch
    ],
)
def test_the_rule_case_by_case(last: tuple[int, int], seq: int, epoch: int, lost: int) -> None:
    assert lost_between(last, seq, epoch) == lost


def test_streams_of_one_source_interleaved_report_no_false_loss() -> None:
    metrics = TradeMetrics()
    # One publisher, three sockets (streams) round-robin to the same sidecar.
    events = [t(seq, stream=stream) for seq in range(100) for stream in (7, 8, 2**53 - 1)]
    for start in range(0, len(events), 17):  # chunk borders anywhere
        metrics.record(events[start : start + 17], NOW)
    assert metrics.lost == 0 and metrics.trades["buy"] == 300
    # Without streams the same traffic would look like loss: they are what keeps it exact.
    naive = TradeMetrics()
    naive.record([t(seq) for seq in (0, 5, 1, 6, 2, 7)], NOW)
    assert naive.lost > 0


def test_epoch_plus_one_gap_is_counted_and_an_epoch_jump_re_baselines() -> None:
    metrics = TradeMetrics()
    metrics.record([t(0, stream=1, epoch=0), t(1, stream=1, epoch=0)], NOW)
    metrics.record([t(5, stream=1, epoch=1)], NOW)  # reconnected here; 2..4 lost
    assert metrics.lost == 3
    metrics.record([t(40, stream=1, epoch=4)], NOW)  # epochs 2, 3 went to other replicas
    assert metrics.lost == 3
    metrics.record([t(41, stream=1, epoch=4), t(45, stream=1, epoch=4)], NOW)  # drops
    assert metrics.lost == 6


def test_seq_gaps_from_drops_are_counted_per_stream() -> None:
    metrics = TradeMetrics()
    metrics.record([t(0, stream=1), t(0, stream=2), t(3, stream=1), t(10, stream=2)], NOW)
    assert metrics.lost == 2 + 9


def test_benchmark_traffic_is_counted_apart() -> None:
    counted = BenchMetrics()
    metrics = TradeMetrics(others=counted.record)
    bench = BENCH_SOURCE_PREFIX + "x"
    metrics.record([t(0, src=bench), t(4, src=bench), t(0), t(2)], NOW)
    assert (counted.lost, counted.trades) == (3, 2)
    assert (metrics.lost, metrics.trades["buy"]) == (1, 2)


def test_the_table_is_bounded_and_least_recently_seen_goes_first() -> None:
    tracker = LossTracker(capacity=3)
    for stream in (1, 2, 3):
        tracker.observe("p", stream, 0, 0)
    tracker.observe("p", 1, 1, 0)  # stream 1 is now the most recent
    tracker.observe("p", 4, 0, 0)  # the table is full: stream 2 goes
    assert set(tracker.positions) == {("p", 1), ("p", 3), ("p", 4)}
    metrics = TradeMetrics()
    metrics.record([t(0, src=f"s{i}") for i in range(metrics.streams.capacity + 50)], NOW)
    assert len(metrics.streams.positions) == metrics.streams.capacity


def test_snapshot_and_restore_carry_totals_and_positions() -> None:
    metrics = TradeMetrics()
    metrics.record([t(0, stream=1, epoch=0), t(1, stream=1, epoch=0)], NOW)
    state = metrics.snapshot()
    metrics.record([t(2, stream=1, epoch=0)], NOW)  # the snapshot is a copy
    restored = TradeMetrics()
    restored.restore(state)
    assert restored.trades["buy"] == 2 and restored.streams.positions == {("p", 1): (1, 0)}
    restored.record([t(5, stream=1, epoch=1)], NOW)  # a restart with its snapshot: epoch + 1
    assert restored.lost == 3


@pytest.mark.parametrize("stream", [None, 7])
def test_one_frame_cannot_claim_an_absurd_loss(stream: int | None) -> None:
    """seq 0 then 2**53 - 1 is a stream reset, counted by reason, not 9e15 lost events;
    the stream goes on from there (its next gap is loss again), here and after restore."""
    metrics = TradeMetrics()
    registry = _registry(metrics)
    metrics.record([t(0, stream=stream), t(2**53 - 1, stream=stream)], NOW)
    assert metrics.lost == 0
    metrics.record([t(2**53 - 5, src="q"), t(2**53 - 4, src="q")], NOW)  # others unaffected
    metrics.record((t(0, stream=stream),), NOW)  # a restart: not counted as a jump
    metrics.record((t(3, stream=stream),), NOW)  # an ordinary gap after it: loss
    assert metrics.lost == 2
    metrics.record((t(3 + MAX_SEQ_GAP + 2, stream=stream),), NOW)  # via observe()
    assert metrics.lost == 2
    sample = registry.get_sample_value(names.STREAM_RESETS, {"reason": "seq_jump"})
    assert sample == 2.0
    again = TradeMetrics()
    again.restore(metrics.snapshot())
    assert again.streams.jumps == 2


def test_benchmark_streams_follow_the_same_bound() -> None:
    bench = BenchMetrics()
    metrics = TradeMetrics(others=bench.record)
    src = f"{BENCH_SOURCE_PREFIX}x"
    metrics.record([t(0, src=src), t(2**53 - 1, src=src), t(2**53 - 1 - 0, src=src)], NOW)
    assert bench.lost == 0 and bench.streams.jumps == 1


@pytest.mark.parametrize(
    ("last", "seq", "epoch", "lost"),
    [
        ((10, 0), 11, 0, 0),
        ((10, 0), 14, 0, 3),
        ((10, 0), 14, 1, 3),
        ((10, 0), 14, 2, 0),
        ((10, 0), 10, 0, 0),
        ((10, 0), 2, 0, 0),
        ((10, 2), 50, 1, 0),
        ((10, 1), 14, 0, 0),
    ],
)
@pytest.mark.parametrize("one_chunk", [True, False])
def test_record_follows_the_rule_within_a_chunk_and_across_chunks(
    last: tuple[int, int], seq: int, epoch: int, lost: int, one_chunk: bool
) -> None:
    """record() follows a stream in its loop for consecutive events (one chunk)
    and asks the table across chunks: the same table holds for both paths."""
    assert lost_between(last, seq, epoch) == lost
    metrics = TradeMetrics()
    first, then = t(last[0], stream=1, epoch=last[1]), t(seq, stream=1, epoch=epoch)
    if one_chunk:
        metrics.record([first, then], NOW)
    else:
        metrics.record([first], NOW)
        metrics.record([then], NOW)
    assert metrics.lost == lost
    # Two gaps in one chunk add up.
    metrics.record([t(seq + 3, stream=1, epoch=epoch), t(seq + 6, stream=1, epoch=epoch)], NOW)
    assert metrics.lost == lost + 2 + 2


def test_the_table_remembers_each_position() -> None:
    tracker = LossTracker()
    assert tracker.observe("p", 1, 0, 0) == 0
    assert tracker.observe("p", 1, 5, 0) == 4
    assert tracker.observe("p", 1, 9, 0) == 3
    # Switching src inside a chunk writes the followed stream's position back first.
    metrics = TradeMetrics()
    metrics.record([t(0, src="a"), t(0, src="b"), t(3, src="a"), t(2, src="b")], NOW)
    assert metrics.lost == 2 + 1
    assert metrics.streams.positions == {("a", 0): (3, 0), ("b", 0): (2, 0)}


def test_totals_add_up_across_chunks_for_both_sides() -> None:
    metrics = TradeMetrics()
    metrics.record(
        [
            Trade("buy", 2.0, NOW - 1.0),
            Trade("sell", 3.0, NOW - 2.0),
            Trade("sell", 0.5, NOW - 0.5),
        ],
        NOW,
    )
    metrics.record([Trade("sell", 1.0, NOW - 0.25), Trade("buy", 4.0, NOW - 0.125)], NOW)
    assert metrics.trades == {"buy": 2, "sell": 3}
    assert metrics.volume == {"buy": 6.0, "sell": 4.5}
    assert metrics.latency_sum == 1.0 + 2.0 + 0.5 + 0.25 + 0.125
    assert sum(metrics.latency_counts) == 5
    assert metrics.last_trade_ts == NOW - 0.125  # the last one in arrival order
    metrics.record([], NOW)  # a chunk with no trade changes nothing
    assert metrics.last_trade_ts == NOW - 0.125 and metrics.latency_sum == 3.875
    metrics.record_invalid(Reason.OVERSIZE)
    metrics.record_invalid(Reason.OVERSIZE)
    assert metrics.invalid[Reason.OVERSIZE] == 2


def test_events_that_are_not_trades_go_to_others_and_the_chunk_goes_on() -> None:
    handed: list[object] = []
    metrics = TradeMetrics(others=lambda events, _: handed.extend(events))
    result = _benchmark_result()
    metrics.record([result, Trade("sell", 1.0, NOW), result], NOW)
    assert handed == [result, result]
    assert metrics.trades["sell"] == 1


def _benchmark_result() -> BenchmarkResult:
    return BenchmarkResult(
        run_id="r", mode="hotpath", variant="client", events=1, sent=1, dropped=0,
        received=-1, lost=-1, elapsed_s=1.0, rate=1.0, target_rate=0.0, p50_us=1.0,
        p90_us=1.0, p99_us=1.0, p999_us=1.0, max_us=1.0, started_at=NOW, finished_at=NOW,
    )  # fmt: skip


def test_an_event_without_stream_is_stream_zero() -> None:
    metrics = TradeMetrics()
    metrics.record([t(4)], NOW)
    assert metrics.streams.positions == {("p", 0): (4, 0)}


def _busy() -> TradeMetrics:
    """Metrics with every field away from its default."""
    metrics = TradeMetrics()
    metrics.streams.capacity = 5
    metrics.record([t(0, stream=1), t(3, stream=1), Trade("sell", 2.5, NOW - 0.2)], NOW)
    metrics.received = 7
    metrics.record_invalid(Reason.MALFORMED_JSON)
    return metrics


def test_a_snapshot_carries_every_field_and_restore_brings_them_all_back() -> None:
    metrics = _busy()
    state = metrics.snapshot()
    assert state == MetricsState(
        trades={"buy": 2, "sell": 1},
        volume={"buy": 2.0, "sell": 2.5},
        last_trade_ts=NOW - 0.2,
        received=7,
        invalid={**{r.value: 0 for r in Reason}, Reason.MALFORMED_JSON: 1},
        lost=2,
        latency_counts=list(metrics.latency_counts),
        latency_sum=metrics.latency_sum,
        streams=LossTracker({("p", 1): (3, 0)}, capacity=5),
    )
    assert metrics.latency_sum > 0 and sum(metrics.latency_counts) == 3
    restored = TradeMetrics()
    restored.restore(state)
    restored.streams.capacity = 5
    assert restored.snapshot() == state


def test_restore_keeps_zeros_for_what_an_older_state_lacks() -> None:
    """Keys of closed sets missing from a saved state, and a histogram saved with other
    buckets, start at zero rather than failing or mixing layouts."""
    old = MetricsState(
        trades={"buy": 3},
        volume={"sell": 1.5},
        invalid={"oversize": 2},
        latency_counts=[1, 2, 3],
        latency_sum=9.0,
    )
    metrics = TradeMetrics()
    metrics.restore(old)
    assert metrics.trades == {"buy": 3, "sell": 0}
    assert metrics.volume == {"buy": 0.0, "sell": 1.5}
    assert metrics.invalid == {**{r.value: 0 for r in Reason}, "oversize": 2}
    assert sum(metrics.latency_counts) == 0 and metrics.latency_sum == 0.0
