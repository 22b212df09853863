"""The benchmark's output as a person reads it: every table within a 100-column terminal,
"–" where a number does not apply, percentiles in order, and every plot readable (no text
cut off or on top of another, axes labelled, what it claims drawn). Rows are built with
the real row factory, shaped like real runs' rows; nothing is timed."""

from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from plot_support import assert_readable  # noqa: E402
from trading_bench import report, targets, terminal  # noqa: E402
from trading_bench.latency import Percentiles  # noqa: E402
from trading_bench.rows import Row, make_row  # noqa: E402

LATENCY = Percentiles(2000, 1.5, 3.25, 53.0, 217.0, 3586.0)
HOTPATH_VARIANTS = (
    "empty", "floor", "client", "seed-json", "prometheus-client", "opentelemetry", "statsd",
)  # fmt: skip


def hotpath_rows() -> list[Row]:
    rows = []
    for variant in HOTPATH_VARIANTS:
        extra = {"timer_overhead_us": 0.106}
        if variant != "empty":
            extra |= {
                "net_p50_us": 1.4, "net_p99_us": 52.9, "net_p999_us": 216.9,
                "ratio_p50": 1.2, "ratio_p99": 0.8, "ratio_p999": 0.96,
            }  # fmt: skip
        rows.append(
            make_row(
                run_id="t",
                mode="hotpath",
                variant=variant,
                events=2000,
                sent=2000,
                elapsed_s=0.012,
                latency=LATENCY,
                started_at=time.time(),
                extra=extra,
            )  # fmt: skip
        )
    return rows


def burst_rows(received: int = 19_000, lost: int = 300) -> list[Row]:
    extra = {"delivered_rate": 118_995.0, "drained_s": 0.168} if received >= 0 else {}
    return [
        make_row(
            run_id="t",
            mode="burst",
            variant="client",
            events=20_000,
            sent=19_500,
            dropped=500,
            received=received,
            lost=lost,
            elapsed_s=0.096,
            started_at=time.time(),
            extra=extra,
        )  # fmt: skip
    ]


#: (variant, events/s, extras) of an ingest run, shaped like a real one's report.
INGEST = (
    ("raw-recv", 4_326_230.0, {"ratio_to_floor": 1.0, "ratio_to_naive": 171.3}),
    ("sidecar", 197_661.0, {"ratio_to_floor": 0.0457, "ratio_to_naive": 7.83}),
    ("sidecar-batch", 488_072.0, {"ratio_to_floor": 0.113, "ratio_to_naive": 19.3,
                                  "events_per_frame": 64.0}),
    ("sidecar-columns", 379_865.0, {"ratio_to_floor": 0.0878, "ratio_to_naive": 15.0,
                                    "events_per_frame": 1020.4}),
    ("naive-json-prometheus", 25_255.0, {"ratio_to_floor": 0.0058, "ratio_to_naive": 1.0}),
    ("stream", 128_794.0, {"ratio_to_plain": 1.0}),
    ("stream-curve", 76_201.0, {"ratio_to_plain": 0.592}),
    ("stream-batch", 477_763.0, {"ratio_to_plain": 1.0, "events_per_frame": 64.0}),
    ("stream-batch-curve", 355_253.0, {"ratio_to_plain": 0.744, "events_per_frame": 64.0}),
)  # fmt: skip


def ingest_rows() -> list[Row]:
    return [
        make_row(
            run_id="t",
            mode="ingest",
            variant=variant,
            events=100_000,
            sent=100_000,
            received=100_000,
            lost=0,
            elapsed_s=100_000 / rate,
            started_at=time.time(),
            extra={"ns_per_event": 1e9 / rate, "spread": 1.4, **extra},
        )  # fmt: skip
        for variant, rate, extra in INGEST
    ]


def sustained_rows() -> list[Row]:
    """Two rates, each a client row and an e2e row; nothing dropped or lost (zero bars)."""
    rows = []
    for rate in (1_000, 10_000):
        extra = {
            "max_delay_us": 1000.0, "batch_size": 64.0, "achieved_rate": rate * 1.0001,
            "rate_error": 0.0001, "sent_rate": float(rate), "lag_p50_us": 3.1,
            "lag_p99_us": 40.2, "lag_max_us": 812.0, "max_lag_us": 812.0,
            "received_rate": float(rate), "e2e_within_limit": 0.997, "e2e_limit_us": 2000.0,
        }  # fmt: skip
        row = functools.partial(
            make_row, run_id="t", mode="sustained", events=rate * 10, sent=rate * 10,
            received=rate * 10, lost=0, elapsed_s=10.0, target_rate=float(rate),
            started_at=time.time(),
        )  # fmt: skip
        rows.append(row(variant=f"client-{rate}", latency=LATENCY, extra=extra))
        e2e = Percentiles(rate * 10, 250, 500, 1500, 2000, 2500)
        rows.append(row(variant=f"e2e-{rate}", latency=e2e, bounded=True))
    return rows


SAMPLES = {
    "hotpath": hotpath_rows,
    "burst": burst_rows,
    "sustained": sustained_rows,
    "ingest": ingest_rows,
}


@pytest.mark.parametrize("mode", sorted(SAMPLES))
def test_every_table_fits_a_100_column_terminal(mode: str) -> None:
    rows = SAMPLES[mode]()
    checks = targets.CHECKS[mode](rows)
    assert terminal.MAX_WIDTH == 100
    for text in (report.table(mode, rows, checks), report.table(mode, rows, checks, width=100)):
        too_wide = [line for line in text.splitlines() if len(line) > 100]
        assert not too_wide, "\n".join(too_wide)
    # Wrapping keeps every word: each target's name is still there, verdict first.
    joined = " ".join(text.split())
    for t in checks:
        assert " ".join(t.name.split()) in joined, t.name


def test_hotpath_table_keeps_percentile_order() -> None:
    rows = hotpath_rows()
    text = report.table("hotpath", rows, targets.hotpath(rows))
    lines = text.splitlines()
    headers = " ".join(line for line in lines if line.startswith("variant"))
    order = [h for h in headers.split() if re.match(r"(p|net_p|ratio_p)\d", h)]
    assert order.index("p50_us") < order.index("p99_us") < order.index("p99.9_us")
    assert order.index("net_p50_us") < order.index("net_p99_us") < order.index("net_p999_us")
    assert order.index("ratio_p50") < order.index("ratio_p99") < order.index("ratio_p999")
    # No sidecar counts in hotpath: "–", never the contract's -1.
    assert " -1" not in text and report.NOT_APPLICABLE in text
    # Every variant appears in every split table.
    for variant in HOTPATH_VARIANTS:
        assert sum(line.startswith(variant + " ") for line in lines) >= 2, variant


def test_a_narrower_width_splits_further() -> None:
    rows = hotpath_rows()
    text = report.table("hotpath", rows, [], width=60)
    assert all(len(line) <= 60 for line in text.splitlines() if not line.startswith("  "))
    assert text.count("variant ") > 3


def test_burst_latency_columns_are_not_zero_microseconds() -> None:
    rows = burst_rows(received=-1, lost=-1)
    text = report.table("burst", rows, targets.burst(rows))
    assert "p50_us" not in text  # no per-call timing in a burst: no latency table at all
    (row_line,) = [line for line in text.splitlines() if line.startswith("client")]
    cells = row_line.split()
    assert cells.count(report.NOT_APPLICABLE) == 2, row_line  # received, lost
    assert "-1" not in cells


@pytest.mark.parametrize("read_sidecar", [True, False])
def test_burst_report_and_plot_carry_sent_delivered_dropped_lost(
    tmp_path: Path, read_sidecar: bool
) -> None:
    rows = burst_rows() if read_sidecar else burst_rows(received=-1, lost=-1)
    checks = targets.burst(rows)
    data = report.report_dict("burst", "t", {}, rows, checks)
    report.write_json(tmp_path / "burst.json", data)
    summary = json.loads((tmp_path / "burst.json").read_text())["summary"]
    expected: dict[str, float] = {"sent": 19_500, "dropped": 500, "events": 20_000}
    if read_sidecar:
        expected |= {"delivered": 19_000, "lost": 300, "delivered_rate": 118_995.0}
    else:
        expected |= {"delivered": -1, "lost": -1, "delivered_rate": -1.0}
    assert summary == expected

    png = tmp_path / "burst.png"
    report.plot(png, "burst", "t", rows, checks)
    assert png.stat().st_size > 0
    fig, _ = report.figure("burst", "t", rows, checks)
    try:
        ax = fig.axes[0]
        heights = [bar.get_height() for bar in ax.patches if isinstance(bar, Rectangle)]
        shown = [max(summary[k], 0.0) for k in ("sent", "delivered", "dropped", "lost")]
        assert heights == shown
        labels = {t.get_text() for t in ax.texts}
        assert report._fmt(summary["sent"]) in labels
        assert (report.NOT_APPLICABLE in labels) is not read_sidecar
    finally:
        plt.close(fig)


@pytest.mark.parametrize("mode", sorted(SAMPLES))
def test_every_plot_is_readable(mode: str) -> None:
    """No text leaves the figure or lands on another; the axes say what they show."""
    rows = SAMPLES[mode]()
    checks = targets.CHECKS[mode](rows)
    fig, _ = report.figure(mode, "20261207T231500", rows, checks)
    try:
        assert_readable(fig)
        assert "trading-bench " + mode in fig.get_suptitle()
        for ax in fig.axes:
            assert ax.get_title(), f"{mode}: an axes without a title"
            assert ax.get_xlabel() or mode == "burst", f"{mode}: no x label"
        main = fig.axes[0]
        assert main.get_ylabel() or main.get_yticklabels(), f"{mode}: no y label"
    finally:
        plt.close(fig)


@pytest.mark.parametrize("mode", ["hotpath", "sustained", "ingest"])  # burst's limits are 0
def test_every_target_is_drawn_and_a_zero_still_shows(mode: str) -> None:
    """One row per target in the targets panel, each with a visible marker at its value,
    so a value of zero (a bar of no width) is still seen."""
    rows = SAMPLES[mode]()
    lined = [t for t in targets.CHECKS[mode](rows) if t.limit > 0]
    assert lined, f"{mode}: no target with a limit above zero to draw"
    fig, _ = report.figure(mode, "t", rows, lined)
    try:
        tax = fig.axes[1]
        names = [label.get_text().replace("\n", " ") for label in tax.get_yticklabels()]
        assert len(names) == len(lined)
        for t, name in zip(lined, names, strict=True):
            assert " ".join(t.name.split()) in " ".join(name.split()), (t.name, name)
        (markers,) = [c for c in tax.collections if isinstance(c, PathCollection)]
        offsets = np.asarray(markers.get_offsets())
        assert [round(float(x), 9) for x in offsets[:, 0]] == [
            round(t.value / t.limit, 9) for t in lined
        ]
        assert markers.get_sizes()[0] > 0
    finally:
        plt.close(fig)


def test_sustained_zero_values_are_written_not_blank() -> None:
    rows = sustained_rows()
    for row in rows:
        if "rate_error" in row.extra:
            row.extra["rate_error"] = 0.0
    fig, _ = report.figure("sustained", "t", rows, targets.sustained(rows))
    try:
        written = [t.get_text() for t in fig.axes[1].texts]
        assert written.count("✓ 0") == 2, written
    finally:
        plt.close(fig)


def test_hotpath_plot_draws_every_latency_bound_once_with_its_verdict() -> None:
    """Targets that bound one variant's percentile are dashed lines on the percentile
    plot, each named once in the legend with ✓/✗ (two targets on one bound: one line)."""
    rows = hotpath_rows()
    checks = [t for t in targets.hotpath(rows) if t.limit_us is not None]
    assert checks, "the hotpath targets carry no latency bound to draw"
    fig, _ = report.figure("hotpath", "t", rows, checks)
    try:
        ax = fig.axes[0]
        bounds = {(t.variant, t.percentile, t.limit_us) for t in checks}
        labels = set(report.bound_labels(checks).values())
        lines = [
            c for c in ax.collections if isinstance(c, LineCollection) and c.get_label() in labels
        ]
        assert len(lines) == len(bounds)
        ys = sorted(float(seg[0][1]) for c in lines for seg in c.get_segments())
        assert ys == sorted(float(b[2]) for b in bounds if b[2] is not None)
        legend = fig.axes[0].get_legend()
        assert legend is not None
        texts = [t.get_text() for t in legend.get_texts()]
        for (variant, percentile, limit_us), label in report.bound_labels(checks).items():
            assert label in texts and variant in label and percentile in label
            mark = "✓" if all(t.met for t in checks if t.limit_us == limit_us) else "✗"
            assert label.startswith(mark)
    finally:
        plt.close(fig)
