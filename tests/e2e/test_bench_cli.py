"""trading-bench as a user runs it: the real console script, every mode at a tiny size.

One real sidecar serves the whole module; each mode runs once against it (as the
in-cluster Job does, with --address and --sidecar-url) and the tests read what the run
left behind: the JSON report, the PNG, the termination log and the sidecar's metrics.
Numbers are checked for consistency (counts add up, percentiles ordered), never for speed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from support import BIN, ROOT, Sidecar, new_sidecar, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.codec import decode
from telemetry_contract.events import BENCH_MODES, BenchmarkResult
from trading_bench import ingest
from trading_bench.common import BenchError

BENCH = str(BIN / "trading-bench")
RUN_ID = f"pytest-{os.getpid()}"
TINY: dict[str, list[str]] = {
    "hotpath": ["--events", "2000"],
    "burst": ["--events", "20000"],
    # Two rates: the multi-rate path, and the 10k row as the headline.
    "sustained": ["--rate", "1000,10000", "--duration", "0.3"],
    "ingest": [],  # size from TT_BENCH_EVENTS: the env defaults are part of the CLI
    # One round of tiny loops: 6 worker processes, every loop, the continuous run.
    "paced": ["--duration", "0.05", "--events", "3000", "--rounds", "1"],
}
FIELDS = list(BenchmarkResult.__struct_fields__)


@dataclass
class Run:
    sidecar: Sidecar
    workdir: Path
    results: Path
    reports: dict[str, dict[str, Any]]
    outputs: dict[str, str]


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [BENCH, *args], capture_output=True, text=True, timeout=240, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, f"trading-bench {args} failed:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("bench")
    sidecar = new_sidecar().start(workdir)
    results = workdir / "results"
    reports: dict[str, dict[str, Any]] = {}
    outputs: dict[str, str] = {}
    try:
        for mode in BENCH_MODES:
            done = bench(
                mode, *TINY[mode], "--address", sidecar.zmq_address, "--sidecar-url",
                sidecar.url, "--run-id", RUN_ID, "--results-dir", str(results),
                "--termination-log", str(workdir / f"termination-{mode}"), "--no-progress",
                env={"TT_BENCH_EVENTS": "20000"} if mode == "ingest" else None,
            )  # fmt: skip
            outputs[mode] = done.stdout
            reports[mode] = json.loads((results / RUN_ID / f"{mode}.json").read_text())
        yield Run(sidecar, workdir, results, reports, outputs)
    finally:
        code = sidecar.stop()
    assert code == 0


def test_help_lists_every_mode_and_option() -> None:
    out = bench("--help").stdout
    for word in (*BENCH_MODES, "--address", "--sidecar-url", "--events", "--rate",
                 "--duration", "--rounds", "--run-id", "--results-dir", "--termination-log",
                 "--no-report", "--no-progress", "--no-plot"):  # fmt: skip
        assert word in out


def rows(run: Run, mode: str) -> dict[str, dict[str, Any]]:
    return {row["variant"]: row for row in run.reports[mode]["rows"]}


@pytest.mark.parametrize("mode", BENCH_MODES)
def test_report_has_every_field_and_sane_values(run: Run, mode: str) -> None:
    report = run.reports[mode]
    assert report["run_id"] == RUN_ID and report["mode"] == mode
    assert report["machine"]["cpus"] >= 1
    assert report["rows"] and report["targets"]
    for target in report["targets"]:
        assert target["met"] == (
            target["value"] <= target["limit"] if target["op"] == "<=" else
            target["value"] >= target["limit"]
        )  # fmt: skip
    for row in report["rows"]:
        assert set(FIELDS) <= row.keys()
        BenchmarkResult(**{k: row[k] for k in FIELDS})  # the contract's own type holds it
        assert row["mode"] == mode and row["run_id"] == RUN_ID
        assert row["sent"] + row["dropped"] == row["events"]
        assert row["elapsed_s"] > 0 and row["rate"] > 0
        assert row["started_at"] <= row["finished_at"]
        percentiles = [row[k] for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")]
        assert percentiles == sorted(percentiles), row["variant"]
    # The mode's table went to the terminal, and its plot to the results folder.
    assert f"== {mode} ==" in run.outputs[mode]
    png = run.results / RUN_ID / f"{mode}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hotpath_rows(run: Run) -> None:
    found = rows(run, "hotpath")
    assert set(found) == {"empty", "floor", "client", "client-unbatched", "seed-json",
                          "prometheus-client", "opentelemetry", "statsd",
                          "floor-curve", "client-curve"}  # fmt: skip
    overhead = found["empty"]["p50_us"]
    assert overhead > 0
    floor = found["floor"]
    for name, row in found.items():
        assert row["events"] == 2000 and row["p50_us"] > 0
        assert row["sent"] == 2000 and row["dropped"] == 0, name  # every call completed
        assert row["timer_overhead_us"] == overhead
        assert row["percentile_kind"] == "per_call"
        if name == "empty":
            assert "ratio_p50" not in row
            continue
        # Ratios are on net values: each percentile minus the empty call's p50.
        for p, field in (("p50", "p50_us"), ("p99", "p99_us"), ("p999", "p999_us")):
            net = max(row[field] - overhead, 0.001)
            assert row[f"net_{p}_us"] == pytest.approx(net)
            assert row[f"ratio_{p}"] == pytest.approx(net / floor[f"net_{p}_us"])
    assert floor["ratio_p50"] == floor["ratio_p99"] == floor["ratio_p999"] == 1.0
    targets = {t["name"]: t for t in run.reports["hotpath"]["targets"]}
    seed = targets["seed-json net p50 / client net p50"]["value"]
    assert seed == pytest.approx(found["seed-json"]["net_p50_us"] / found["client"]["net_p50_us"])


def test_paced_rows_tables_and_targets(run: Run) -> None:
    """Every variant at every loop, each from its own process; the table fits 100
    columns; every issue-17 target is judged; drops would show (none at this size)."""
    found = rows(run, "paced")
    loops = [f"{style}-{rate}" for style in ("busy", "sleep") for rate in (1000, 10000, 100000)]
    expected = {
        f"{v}-{loop}"
        for v in ("client", "client-unbatched", "prometheus-client", "statsd",
                  "opentelemetry", "floor")
        for loop in (*loops, "continuous")
    }  # fmt: skip
    assert set(found) == expected
    for name, row in found.items():
        assert row["events"] == (3000 if name.endswith("continuous") else row["target_rate"] * 0.05)
        assert 0 <= row["over_100us"] <= 1 and 0 <= row["over_1ms"] <= row["events"]
        assert row["dropped"] == 0
    table = run.outputs["paced"].split("report:")[0]
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "MISSED" in table or "MET" in table
    names = {t["name"] for t in run.reports["paced"]["targets"]}
    for loop in ("busy-10000", "busy-100000", "sleep-1000", "sleep-10000"):
        assert f"{loop}: client p99 / prometheus-client p99" in names
        assert f"{loop}: client p99.9 / prometheus-client p99.9" in names
    assert "continuous: client calls > 1 ms - prometheus-client's" in names
    assert "continuous: client max / prometheus-client max" in names


def test_burst_counts_match_the_sidecar(run: Run) -> None:
    row = rows(run, "burst")["client"]
    assert row["events"] == 20000
    assert row["dropped"] == 0 and row["received"] == row["sent"] == 20000
    assert row["lost"] == 0
    # Counted everything only after sending everything: at most the sending rate.
    assert 0 < row["drained_s"] and row["elapsed_s"] <= row["drained_s"]
    assert row["delivered_rate"] == pytest.approx(row["received"] / row["drained_s"])
    assert row["delivered_rate"] <= row["rate"] * 1.000001


@pytest.mark.parametrize("rate", [1000, 10000])
def test_sustained_rows(run: Run, rate: int) -> None:
    found = rows(run, "sustained")
    assert set(found) == {"client-1000", "e2e-1000", "client-10000", "e2e-10000"}
    client, e2e = found[f"client-{rate}"], found[f"e2e-{rate}"]
    events = round(rate * 0.3)
    assert client["target_rate"] == rate and client["events"] == events
    assert client["received"] == client["sent"] == events and client["lost"] == 0
    assert client["achieved_rate"] == pytest.approx(client["rate"])
    assert client["sent_rate"] == pytest.approx(client["sent"] / client["elapsed_s"])
    assert client["received_rate"] == pytest.approx(client["received"] / client["elapsed_s"])
    assert 0 <= client["lag_p50_us"] <= client["lag_p99_us"] <= client["lag_max_us"]
    assert client["max_lag_us"] >= 0
    # e2e: bucket upper bounds of the sidecar's benchmark histogram, said so in the JSON.
    assert e2e["percentile_kind"] == "bucket_upper_bound"
    assert client["percentile_kind"] == "per_call"
    bounds_us = {round(b * 1e6, 6) for b in names.E2E_LATENCY_BUCKETS}
    le = [client[f"e2e_{p}_le_us"] for p in ("p50", "p90", "p99", "p999", "max")]
    assert le == sorted(le) and all(round(v, 6) in bounds_us for v in le)
    assert le == [e2e[k] for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")]
    assert 0 <= client["e2e_within_250us"] <= 1
    assert (client["e2e_within_250us"] >= 0.99) == (client["e2e_p99_le_us"] <= 250)
    assert client["e2e_overflow"] == 0
    assert "≤" in run.outputs["sustained"]  # the table marks bounds as bounds


def test_ingest_rows(run: Run) -> None:
    found = rows(run, "ingest")
    curve = ("stream", "stream-curve", "stream-batch", "stream-batch-curve")
    assert set(found) == {
        "raw-recv", "sidecar", "sidecar-batch", "sidecar-columns", "naive-json-prometheus", *curve,
    }  # fmt: skip
    for name in curve:  # trading_bench.curve: CURVE's cost in ingest, sender and consumer at once
        row = found.pop(name)
        assert row["received"] == row["sent"] == row["events"] == 20000 and row["lost"] == 0
        assert row["ratio_to_plain"] > 0 and row["spread"] >= 0
        assert row["events_per_frame"] == (1 if "batch" not in name else pytest.approx(20000 / 313))
        if not name.endswith("curve"):
            assert row["ratio_to_plain"] == 1.0
    assert found["sidecar"]["ratio_to_floor"] > 0
    for row in found.values():
        # received: what each consumer itself counted, in the round that counted least.
        assert row["events"] == 20000 and row["received"] == 20000 and row["lost"] == 0
        assert row["spread"] >= 0
        assert row["ns_per_event"] == pytest.approx(row["elapsed_s"] * 1e9 / 20000)
    floor, naive = found["raw-recv"], found["naive-json-prometheus"]
    assert floor["ratio_to_floor"] == 1.0 and naive["ratio_to_naive"] == 1.0
    for name in ("sidecar", "sidecar-batch"):
        side = found[name]
        assert side["ratio_to_floor"] == pytest.approx(side["rate"] / floor["rate"])
        assert side["ratio_to_naive"] == pytest.approx(side["rate"] / naive["rate"])
    assert found["sidecar"]["events_per_frame"] == 1
    assert found["sidecar-batch"]["events_per_frame"] == pytest.approx(20000 / 313)
    assert found["sidecar-columns"]["events_per_frame"] == pytest.approx(20000 / 20)
    verdicts = {t["name"]: t for t in run.reports["ingest"]["targets"]}
    columns = verdicts["sidecar events/s on the client's columnar frames (one core)"]
    assert columns["value"] == found["sidecar-columns"]["rate"]
    assert columns["limit"] == 2_000_000
    single = verdicts[
        "sidecar events/s / naive json+prometheus_client events/s (single-event frames)"
    ]
    batch = verdicts["sidecar events/s on batch frames of 64 / raw single-frame recv rate"]
    assert single["value"] == found["sidecar"]["ratio_to_naive"] and single["limit"] == 6.0
    assert batch["value"] == found["sidecar-batch"]["ratio_to_floor"] and batch["limit"] == 0.5
    assert single["met"] == (single["value"] >= 6.0)


def test_ingest_fails_clearly_when_the_queue_cannot_hold_the_events() -> None:
    """Queues of one frame each: filling stalls at the socket buffers, and says so."""
    frames = [b"x" * 60_000] * 2_000  # ~120 MB: beyond any loopback buffering
    with pytest.raises(BenchError, match=r"use --events [0-9,]+ or fewer"):
        ingest._measure("raw-recv", frames, sndhwm=1, rcvhwm=1, stall_s=0.5)


def test_benchmark_traffic_never_reached_the_trading_series(run: Run) -> None:
    """The module's sidecar got nothing but benchmark traffic: trades_total stayed 0,
    and the benchmark counter has at least every event the runs say was sent to it."""
    samples = run.sidecar.scrape()
    assert value(samples, names.TRADES, side="buy") == value(samples, names.TRADES, side="sell")
    assert value(samples, names.TRADES, side="buy") == 0
    assert value(samples, names.E2E_LATENCY + "_count") == 0
    sent = sum(r["sent"] for r in run.reports["burst"]["rows"])
    sent += sum(r["sent"] for r in run.reports["sustained"]["rows"] if "client" in r["variant"])
    sent += sum(rows(run, "hotpath")[v]["sent"] for v in ("floor", "client", "seed-json"))
    assert value(samples, names.BENCH_TRADES) >= sent > 0
    assert value(samples, names.BENCH_LOST) == 0


@pytest.mark.prometheus
def test_promtool_accepts_the_scrape_taken_after_the_benchmark_ran(run: Run) -> None:
    """Prometheus's own linter on every family, benchmark rows and traffic included."""
    total = sum(len(r["rows"]) for r in run.reports.values())
    wait_for(
        lambda: value(run.sidecar.scrape(), names.BENCH_RESULTS) == total,
        what="every benchmark row counted by the sidecar",
    )
    text = httpx.get(f"{run.sidecar.url}/metrics", timeout=5).text
    assert f"{names.BENCH_LATENCY}{{" in text and f"{names.BENCH_E2E_LATENCY}_bucket{{" in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make system-deps (Debian package prometheus)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mode", BENCH_MODES)
def test_termination_log_is_one_contract_frame(run: Run, mode: str) -> None:
    frame = (run.workdir / f"termination-{mode}").read_bytes()
    assert len(frame) < 4096
    [result] = decode(frame).events
    assert isinstance(result, BenchmarkResult)
    assert result.run_id == RUN_ID and result.mode == mode
    expected = {"hotpath": "client", "burst": "client", "sustained": "client-10000",
                "ingest": "sidecar", "paced": "client-busy-10000"}  # fmt: skip
    assert result.variant == expected[mode]
    assert result == BenchmarkResult(**{k: rows(run, mode)[result.variant][k] for k in FIELDS})


def test_every_row_reached_the_sidecar(run: Run) -> None:
    total = sum(len(r["rows"]) for r in run.reports.values())
    wait_for(
        lambda: value(run.sidecar.scrape(), names.BENCH_RESULTS) == total,
        what="every benchmark row counted by the sidecar",
    )
    samples = run.sidecar.scrape()
    for mode, report in run.reports.items():
        for row in report["rows"]:
            labels = {"mode": mode, "variant": row["variant"]}
            assert value(samples, names.BENCH_RUN, run_id=RUN_ID, **labels) == 1
            assert value(samples, names.BENCH_RATE, **labels) == row["rate"]
            p99 = value(samples, names.BENCH_LATENCY, percentile="p99", **labels)
            assert p99 == pytest.approx(row["p99_us"] * 1e-6, rel=1e-12)
            assert value(samples, names.BENCH_EVENTS, outcome="lost", **labels) == row["lost"]


def test_local_run_starts_its_own_sidecar(tmp_path: Path) -> None:
    """Without --address (as `make benchmark` runs it) the CLI brings its own sidecar."""
    bench("burst", "--events", "5000", "--results-dir", str(tmp_path), "--run-id", "own",
          "--no-progress", "--no-plot")  # fmt: skip
    report = json.loads((tmp_path / "own" / "burst.json").read_text())
    assert report["parameters"]["own_sidecar"] is True
    row = report["rows"][0]
    assert row["received"] == row["sent"] == 5000 and row["lost"] == 0
    assert not (tmp_path / "own" / "burst.png").exists()


def test_a_run_id_the_sidecar_would_refuse_is_refused_up_front() -> None:
    result = subprocess.run(
        [BENCH, "burst", "--run-id", "two words", "--no-progress"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--run-id must match" in result.stderr
