"""The benchmark's output as a person reads it: tables within 120 columns, "–" where a
number does not apply, percentiles in order, and a burst plot/report that say what
happened to the events. Rows are built with the real row factory; nothing is timed."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image
from trading_bench import report, targets
from trading_bench.latency import Percentiles
from trading_bench.rows import Row, make_row

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


def png_description(path: Path) -> str:
    with Image.open(path) as image:
        return str(image.info["Description"])


def test_hotpath_table_fits_120_columns_in_percentile_order() -> None:
    rows = hotpath_rows()
    text = report.table("hotpath", rows, targets.hotpath(rows))
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line) > report.MAX_WIDTH]
    assert not too_wide, "\n".join(too_wide)
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
    description = png_description(png)
    for key in ("sent", "delivered", "dropped", "lost", "delivered_rate"):
        assert f"{key}={summary[key]:g}" in description, description


def test_hotpath_plot_draws_every_target_line(tmp_path: Path) -> None:
    rows = hotpath_rows()
    checks = targets.hotpath(rows)
    png = tmp_path / "hotpath.png"
    report.plot(png, "hotpath", "t", rows, checks)
    description = png_description(png)
    for t in checks:
        assert f"{t.name}:{t.op}{t.limit:g}" in description, description


def test_hotpath_plot_draws_latency_bounds_where_they_apply(tmp_path: Path) -> None:
    """Targets that bound one variant's percentile are drawn on the percentile plot."""
    rows = hotpath_rows()
    checks = [t for t in targets.hotpath(rows) if t.limit_us is not None]
    assert checks, "the hotpath targets carry no latency bound to draw"
    png = tmp_path / "hotpath.png"
    report.plot(png, "hotpath", "t", rows, checks)
    description = png_description(png)
    for t in checks:
        assert f"{t.variant}@{t.percentile}<={t.limit_us:g}" in description, description
