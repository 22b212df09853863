"""trading-bench as a user runs it: the real console script, every mode at a tiny size.

One real sidecar serves the whole module; each mode runs once against it (as the
in-cluster Job does, with --address and --sidecar-url) and the tests read what the run
left behind: the JSON report, the PNG, the termination log and the sidecar's metrics.
Numbers are checked for consistency (counts add up, percentiles ordered), never for speed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import BIN, ROOT, Sidecar, new_sidecar, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.codec import decode
from telemetry_contract.events import BENCH_MODES, BenchmarkResult

BENCH = str(BIN / "trading-bench")
RUN_ID = f"pytest-{os.getpid()}"
TINY: dict[str, list[str]] = {
    "hotpath": ["--events", "2000"],
    "burst": ["--events", "20000"],
    "sustained": ["--rate", "1000", "--duration", "0.5"],
    "ingest": [],  # size from TT_BENCH_EVENTS: the env defaults are part of the CLI
}
FIELDS = [f.name for f in dataclasses.fields(BenchmarkResult)]


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
                 "--duration", "--run-id", "--results-dir", "--termination-log",
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
    assert set(found) == {"floor", "client", "seed-json", "prometheus-client", "opentelemetry",
                          "statsd"}  # fmt: skip
    for row in found.values():
        assert row["events"] == 2000 and row["p50_us"] > 0
        assert row["ratio_p50"] == pytest.approx(row["p50_us"] / found["floor"]["p50_us"])
    assert found["floor"]["ratio_p50"] == 1.0
    assert found["client"]["dropped"] == 0  # a live sidecar drains: nothing refused


def test_burst_counts_match_the_sidecar(run: Run) -> None:
    row = rows(run, "burst")["client"]
    assert row["events"] == 20000
    assert row["dropped"] == 0 and row["received"] == row["sent"] == 20000
    assert row["lost"] == 0


def test_sustained_rows(run: Run) -> None:
    found = rows(run, "sustained")
    client, e2e = found["client-1000"], found["e2e-1000"]
    assert client["target_rate"] == 1000 and client["events"] == 500
    assert client["received"] == client["sent"] == 500 and client["lost"] == 0
    assert client["achieved_rate"] == pytest.approx(client["rate"])
    assert 0 <= client["e2e_within_250us"] <= 1
    assert e2e["p50_us"] > 0 and e2e["p99_us"] == client["e2e_p99_us"]


def test_ingest_rows(run: Run) -> None:
    found = rows(run, "ingest")
    assert set(found) == {"raw-recv", "sidecar", "naive-json-prometheus"}
    for row in found.values():
        assert row["events"] == 20000 and row["received"] == 20000 and row["lost"] == 0
    assert found["raw-recv"]["ratio_to_floor"] == 1.0
    assert found["naive-json-prometheus"]["ratio_to_naive"] == 1.0


@pytest.mark.parametrize("mode", BENCH_MODES)
def test_termination_log_is_one_contract_frame(run: Run, mode: str) -> None:
    frame = (run.workdir / f"termination-{mode}").read_bytes()
    assert len(frame) < 4096
    result = decode(frame)
    assert isinstance(result, BenchmarkResult)
    assert result.run_id == RUN_ID and result.mode == mode
    expected = {"hotpath": "client", "burst": "client", "sustained": "client-1000",
                "ingest": "sidecar"}  # fmt: skip
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
            labels = {"run_id": RUN_ID, "mode": mode, "variant": row["variant"]}
            assert value(samples, names.BENCH_RATE, **labels) == row["rate"]
            assert value(samples, names.BENCH_LATENCY, quantile="0.99", **labels) == row["p99_us"]
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
