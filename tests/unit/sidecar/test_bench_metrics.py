"""trading_sidecar.bench_metrics: benchmark traffic and results, routed apart from trades.

In-process: the trade path sets them aside (TradeMetrics.record → ``others``), this
module counts them and exposes the ``telemetry_benchmark_*`` families; the app wires the
two and a frame sent to its socket shows up in the benchmark series only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import msgspec
import pytest
import zmq
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX, encode, encode_trade
from telemetry_contract.events import BenchmarkResult, Event, Side, Trade
from trading_sidecar.app import create_app
from trading_sidecar.bench_metrics import BenchMetrics, BenchState, register_bench
from trading_sidecar.metrics import MAX_TRACKED_STREAMS, MetricsState, TradeMetrics, register
from trading_sidecar.settings import SidecarSettings
from trading_sidecar.settings import load as load_settings

NOW = 1_700_000_000.0
BENCH = BENCH_SOURCE_PREFIX + "x"
ROW = BenchmarkResult(
    run_id="run-1", mode="hotpath", variant="client", events=100, sent=100, dropped=0,
    received=-1, lost=-1, elapsed_s=0.5, rate=200.0, target_rate=0.0, p50_us=1.0,
    p90_us=2.0, p99_us=3.0, p999_us=4.0, max_us=9.0, started_at=NOW, finished_at=NOW + 1,
)  # fmt: skip


def t(seq: int | None, *, src: str | None = BENCH, stream: int | None = None,
      epoch: int | None = None, side: Side = "buy", ts: float = NOW) -> Trade:  # fmt: skip
    return Trade(side, 2.0, ts, src, seq, stream, epoch)


def wired() -> tuple[TradeMetrics, BenchMetrics, CollectorRegistry]:
    """The two collectors as the app wires them, in one registry, with the clock at NOW."""
    bench = BenchMetrics(clock=lambda: NOW)
    metrics = TradeMetrics(others=bench.record)
    registry = CollectorRegistry()
    register(metrics, registry)
    register_bench(bench, registry)
    return metrics, bench, registry


def test_the_trade_path_sets_aside_benchmark_traffic_and_results_in_order() -> None:
    handed: list[Event] = []
    metrics = TradeMetrics(others=lambda events, at: handed.extend(events))
    chunk: list[Event] = [t(0), t(0, src="desk"), ROW, t(1), t(None, src=None), t(2, src="desk")]
    metrics.record(chunk, NOW)
    assert handed == [chunk[0], ROW, chunk[3]]
    assert metrics.trades["buy"] == 3 and metrics.lost == 1  # desk: 0, then 2


def test_only_a_src_that_starts_with_the_prefix_is_benchmark_traffic() -> None:
    """The contract's one rule, exactly: case-sensitive, a prefix, never without a src."""
    handed: list[Event] = []
    metrics = TradeMetrics(others=lambda events, at: handed.extend(events))
    bench = t(0, src=BENCH_SOURCE_PREFIX + "x")
    trading = [
        t(None, src=None),
        t(0, src="desk-" + BENCH_SOURCE_PREFIX),
        t(0, src=BENCH_SOURCE_PREFIX.upper() + "x"),
        t(0, src=BENCH_SOURCE_PREFIX.rstrip("-")),
    ]
    metrics.record([bench, *trading], NOW)
    assert handed == [bench]
    assert metrics.trades["buy"] == len(trading)


def test_benchmark_traffic_moves_only_the_benchmark_series() -> None:
    metrics, bench, registry = wired()
    metrics.record([t(0, ts=NOW - 0.0003), t(4), t(5, src="desk")], NOW)
    assert (bench.trades, bench.lost) == (2, 3)
    assert registry.get_sample_value(names.BENCH_TRADES) == 2
    assert registry.get_sample_value(names.BENCH_LOST) == 3
    hist = names.BENCH_E2E_LATENCY
    assert registry.get_sample_value(hist + "_count") == 2
    assert registry.get_sample_value(hist + "_bucket", {"le": "0.00025"}) == 1
    assert registry.get_sample_value(hist + "_bucket", {"le": "0.0005"}) == 2
    assert registry.get_sample_value(hist + "_sum") == pytest.approx(0.0003, abs=1e-6)
    # The trade series saw only the desk's trade.
    assert registry.get_sample_value(names.TRADES, {"side": "buy"}) == 1
    assert registry.get_sample_value(names.E2E_LATENCY + "_count") == 1
    assert registry.get_sample_value(names.LOST) == 0
    assert registry.get_sample_value(names.LAST_TRADE_TS) == NOW


def test_a_trade_collector_on_its_own_counts_no_benchmark_traffic_as_trades() -> None:
    metrics = TradeMetrics()
    metrics.record([t(0), t(9), ROW], NOW)
    assert metrics.trades == {"buy": 0, "sell": 0} and metrics.lost == 0
    assert metrics.streams.positions == {}


def test_every_benchmark_family_exists_before_the_first_event() -> None:
    registry = CollectorRegistry()
    register_bench(BenchMetrics(), registry)
    for name in (names.BENCH_RESULTS, names.BENCH_TRADES, names.BENCH_LOST):
        assert registry.get_sample_value(name) == 0, name
    assert registry.get_sample_value(names.BENCH_E2E_LATENCY + "_count") == 0


def test_a_result_becomes_row_gauges_and_the_next_run_replaces_it() -> None:
    metrics, bench, registry = wired()
    metrics.record([ROW], NOW)
    row = {"mode": "hotpath", "variant": "client"}
    assert registry.get_sample_value(names.BENCH_RESULTS) == 1
    assert registry.get_sample_value(names.BENCH_RUN, {**row, "run_id": "run-1"}) == 1
    latency = names.BENCH_LATENCY
    assert registry.get_sample_value(latency, {**row, "percentile": "p99"}) == pytest.approx(3e-6)
    assert registry.get_sample_value(latency, {**row, "percentile": "max"}) == pytest.approx(9e-6)
    assert registry.get_sample_value(names.BENCH_EVENTS, {**row, "outcome": "lost"}) == -1
    assert registry.get_sample_value(names.BENCH_RATE, row) == 200.0
    assert registry.get_sample_value(names.BENCH_ELAPSED, row) == 0.5
    assert registry.get_sample_value(names.BENCH_FINISHED, row) == NOW + 1
    newer = msgspec.structs.replace(ROW, run_id="run-2", p99_us=7.0)
    metrics.record([newer], NOW)
    assert registry.get_sample_value(names.BENCH_RUN, {**row, "run_id": "run-1"}) is None
    assert registry.get_sample_value(names.BENCH_RUN, {**row, "run_id": "run-2"}) == 1
    assert registry.get_sample_value(latency, {**row, "percentile": "p99"}) == pytest.approx(7e-6)
    assert registry.get_sample_value(names.BENCH_RESULTS) == 2 and len(bench.rows) == 1


def test_series_stay_bounded_whatever_run_ids_arrive() -> None:
    metrics, bench, registry = wired()
    rows = [
        msgspec.structs.replace(ROW, run_id=f"r{i}", variant=variant)
        for i in range(300)
        for variant in ("client", "floor")
    ]
    metrics.record(rows, NOW)
    assert len(bench.rows) == 2 and bench.results == 600
    run_info = [
        sample
        for family in registry.collect()
        if family.name == names.BENCH_RUN.removesuffix("_info")
        for sample in family.samples
    ]
    assert {s.labels["run_id"] for s in run_info} == {"r299"}


def test_a_row_and_its_run_id_expire_after_the_row_ttl() -> None:
    """Run ids do not live for ever: a row received over row_ttl ago is no longer exported."""
    now = [NOW]
    bench = BenchMetrics(row_ttl=3600.0, clock=lambda: now[0])
    metrics = TradeMetrics(others=bench.record)
    registry = CollectorRegistry()
    register(metrics, registry)
    register_bench(bench, registry)
    row = {"mode": "hotpath", "variant": "client"}
    metrics.record([ROW], NOW)
    now[0] = NOW + 3599.0
    assert registry.get_sample_value(names.BENCH_RUN, {**row, "run_id": "run-1"}) == 1
    now[0] = NOW + 3601.0
    assert registry.get_sample_value(names.BENCH_RUN, {**row, "run_id": "run-1"}) is None
    assert registry.get_sample_value(names.BENCH_RATE, row) is None
    assert bench.rows == {}
    # A later row of another variant drops the expired one from the table too.
    floor = msgspec.structs.replace(ROW, run_id="run-2", variant="floor")
    metrics.record([floor], NOW + 3601.0)
    assert list(bench.entries) == [("hotpath", "floor")]
    assert registry.get_sample_value(names.BENCH_RESULTS) == 2  # the counter never expires


def test_the_row_ttl_is_a_setting_the_app_passes_on() -> None:
    settings = SidecarSettings(zmq_bind="tcp://127.0.0.1:*", bench_row_ttl_seconds=60.0)
    app = create_app(settings, registry=CollectorRegistry())
    with TestClient(app):
        assert app.state.bench.row_ttl == 60.0


@pytest.mark.parametrize("raw", ["0", "-5", "inf", "nan"])
def test_a_row_ttl_that_is_not_a_positive_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="BENCH_ROW_TTL"):
        load_settings({"TT_SIDECAR_BENCH_ROW_TTL_SECONDS": raw}, dotenv=None)


@pytest.mark.parametrize(
    ("positions", "lost"),
    [
        ([(0, 0), (1, 0), (5, 0)], 3),  # drops in one connection
        ([(0, 0), (5, 1)], 4),  # the next epoch: this replica saw the previous one
        ([(0, 0), (40, 3)], 0),  # epochs in between went to another replica
        ([(9, 0), (2, 0), (3, 0)], 0),  # a restart re-baselines
    ],
)
def test_benchmark_loss_follows_the_contract_rule(
    positions: list[tuple[int, int]], lost: int
) -> None:
    bench = BenchMetrics()
    bench.record([t(seq, stream=4, epoch=epoch) for seq, epoch in positions], NOW)
    assert bench.lost == lost


def test_benchmark_sources_cannot_push_trading_streams_out_of_the_table() -> None:
    metrics, bench, _ = wired()
    metrics.record([t(0, src="desk"), t(1, src="desk")], NOW)
    flood = [t(0, src=f"{BENCH_SOURCE_PREFIX}{i}") for i in range(MAX_TRACKED_STREAMS + 10)]
    metrics.record(flood, NOW)
    assert len(bench.streams.positions) == MAX_TRACKED_STREAMS
    metrics.record([t(4, src="desk")], NOW)
    assert metrics.streams.positions == {("desk", 0): (4, 0)} and metrics.lost == 2


def _traffic(rng: random.Random, size: int) -> list[Event]:
    """Trading and benchmark sources interleaved, with streams, epochs, gaps and results."""
    seqs: dict[tuple[str, int], int] = {}
    events: list[Event] = []
    for _ in range(size):
        if rng.random() < 0.02:
            events.append(ROW)
            continue
        src = rng.choice(["desk", "algo", BENCH, BENCH_SOURCE_PREFIX + "y"])
        stream = rng.choice([0, 1, 2])
        seq = seqs.get((src, stream), 0) + rng.choice([1, 1, 1, 2, 5])
        seqs[(src, stream)] = seq
        events.append(t(seq, src=src, stream=stream, side=rng.choice(["buy", "sell"])))
    return events


def _counts(metrics: TradeMetrics, bench: BenchMetrics) -> tuple[MetricsState, BenchState]:
    return metrics.snapshot(), bench.snapshot()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chunk_borders_do_not_change_any_count(seed: int) -> None:
    """The trade loop follows a src in locals; wherever a chunk ends, counts are the same."""
    rng = random.Random(seed)
    events = _traffic(rng, 3000)
    one_by_one, bench_one, _ = wired()
    for event in events:
        one_by_one.record([event], NOW)
    chunked, bench_chunked, _ = wired()
    start = 0
    while start < len(events):
        size = rng.randrange(1, 200)
        chunked.record(events[start : start + size], NOW)
        start += size
    assert _counts(one_by_one, bench_one) == _counts(chunked, bench_chunked)
    assert one_by_one.lost > 0 and bench_one.lost > 0 and bench_one.results > 0


def test_snapshot_is_a_copy_and_restore_continues_the_counts() -> None:
    bench = BenchMetrics()
    bench.record([t(0, stream=1), t(1, stream=1), ROW], NOW - 0.01)
    state = bench.snapshot()
    bench.record([t(2, stream=1)], NOW)
    restored = BenchMetrics()
    restored.restore(state)
    assert (restored.trades, restored.results) == (2, 1)
    assert restored.streams.positions == {(BENCH, 1): (1, 0)}
    assert restored.latency_counts == state.latency_counts and sum(state.latency_counts) == 2
    assert restored.rows == {}  # rows are gauges: the next run sends them again
    restored.record([t(5, stream=1, epoch=1)], NOW)  # restarted with its snapshot: epoch + 1
    assert restored.lost == 3


def test_a_failing_bench_collector_leaves_the_trade_counts_written() -> None:
    def broken(events: Sequence[Event], received_at: float) -> None:
        raise RuntimeError("injected")

    metrics = TradeMetrics(others=broken)
    with pytest.raises(RuntimeError):
        metrics.record([t(0, src="desk"), t(0), t(1, src="desk")], NOW)
    assert metrics.trades["buy"] == 2 and metrics.streams.positions == {("desk", 0): (1, 0)}


def test_the_app_routes_benchmark_frames_to_the_benchmark_series() -> None:
    app = create_app(SidecarSettings(zmq_bind="tcp://127.0.0.1:*"), registry=CollectorRegistry())
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    try:
        with TestClient(app):
            push.connect(app.state.receiver.bound_address)
            push.send(encode(ROW))
            push.send(encode_trade("sell", 1.0, time.time(), src=BENCH, seq=0))
            push.send(encode_trade("sell", 1.0, time.time(), src="desk", seq=0))
            registry: CollectorRegistry = app.state.registry
            deadline = time.monotonic() + 10
            while registry.get_sample_value(names.RECEIVED) != 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert registry.get_sample_value(names.RECEIVED) == 3
            assert registry.get_sample_value(names.BENCH_RESULTS) == 1
            assert registry.get_sample_value(names.BENCH_TRADES) == 1
            assert registry.get_sample_value(names.TRADES, {"side": "sell"}) == 1
            assert app.state.bench.rows == {("hotpath", "client"): ROW}
    finally:
        push.close(linger=0)
        ctx.term()
