"""The paced mode's rows → targets, table and plot, from synthetic rows (no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plot_support import assert_readable
from telemetry_contract.events import PACED_VARIANTS, paced_variant
from trading_bench import paced, paced_report, report, targets
from trading_bench.latency import Percentiles
from trading_bench.rows import Row, make_row

PLAN = paced.loops((1_000.0, 10_000.0, 100_000.0), 1.0, 1_000_000)


def row(variant: str, style: str, rate: float, scale: float, over: float, slow: int) -> Row:
    latency = Percentiles(1000, scale, 2 * scale, 10 * scale, 40 * scale, 1000 * scale)
    return make_row(
        run_id="t",
        mode="paced",
        variant=paced_variant(variant, style, rate),
        events=1000,
        sent=1000,
        elapsed_s=1.0,
        target_rate=rate,
        latency=latency,
        started_at=0.0,
        extra={"over_100us": over, "over_1ms": float(slow), "mean_us": scale, "rounds": 3.0},
    )


def rows(client_scale: float) -> list[Row]:
    scales = {v: 1.0 for v in PACED_VARIANTS} | {"client": client_scale, "statsd": 9.0}
    return [
        row(v, style, rate, scales[v], 0.001 * scales[v], int(scales[v]))
        for v in PACED_VARIANTS
        for style, rate, _ in PLAN
    ]


def test_targets_follow_the_ratios() -> None:
    good = targets.paced(rows(0.2))
    bad = targets.paced(rows(3.0))
    assert good and all(t.met for t in good if "statsd" not in t.name)
    names = {t.name for t in bad if not t.met}
    assert "busy-10000: client p99 / prometheus-client p99" in names
    assert "continuous: client max / prometheus-client max" in names
    assert "continuous: client calls > 1 ms - prometheus-client's" in names


def test_table_fits_100_columns_and_judges_every_target() -> None:
    found = rows(0.2)
    checks = targets.paced(found)
    text = paced_report.table(found, checks)
    assert text.startswith("== paced ==")
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.count("[MET   ]") + text.count("[MISSED]") == len(checks)
    for loop in ("busy-1000", "sleep-100000", "continuous"):
        assert loop in text


def test_names_split_back_into_variant_and_loop() -> None:
    assert paced_report.split("client-unbatched-busy-10000") == ("client-unbatched", "busy-10000")
    assert paced_report.split("prometheus-client-continuous") == (
        "prometheus-client",
        "continuous",
    )


def test_plot_is_written_with_nothing_overlapping_or_clipped(tmp_path: Path) -> None:
    found = rows(0.2)
    png = tmp_path / "paced.png"
    report.plot(png, "paced", "t", found, targets.paced(found))  # raises when unreadable
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig, _ = report.figure("paced", "t", found, targets.paced(found))
    try:
        assert_readable(fig)  # the same check every other mode's plot passes
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_layout_check_sees_overlap_and_clipping() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(4, 3))
    left.set_title("a long title that is much wider than this small figure can hold " * 2)
    right.set_title("another long title, drawn right over the first one")
    problems = paced_report.check_layout(fig)
    plt.close(fig)
    assert any("outside the figure" in p for p in problems)
    assert any("overlapping labels" in p for p in problems)


@pytest.mark.parametrize("style", ["busy", "sleep"])
def test_loops_plan_every_style_at_every_rate_then_the_continuous_run(style: str) -> None:
    plan = paced.loops((1_000.0, 10_000.0), 0.5, 1234)
    assert (style, 1_000.0, 500) in plan and (style, 10_000.0, 5000) in plan
    assert plan[-1] == ("continuous", 0.0, 1234)
