"""Where a run's rows go: the terminal, JSON, a PNG, the termination log and the sidecar."""

from __future__ import annotations

import json
import os
import platform
import re
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
from telemetry_contract.codec import encode
from trading_publisher.sockets import push_socket

from trading_bench import paced_report
from trading_bench.rows import Row
from trading_bench.targets import Target
from trading_bench.terminal import terminal_width, wrap

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_PERCENTILE_LABELS = ("p50", "p90", "p99", "p99.9", "max")


def machine() -> dict[str, Any]:
    """Enough to tell two machines' results apart."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count() or 0,
        "cpu_model": model or platform.processor(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


#: Printed where a number does not apply (no sidecar counts, no per-call timing).
NOT_APPLICABLE = "–"
_PERCENTILE_ORDER = {"p50": 0, "p90": 1, "p99": 2, "p999": 3, "max": 4}


def _fmt(value: float) -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if abs(value) < 0.001:
        return f"{value:.2g}"  # 0.0001 is not "0.000"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def extra_order(name: str) -> tuple[str, int, str]:
    """Sort key: extras of one family together, their percentiles in order (p50 before
    p99 before p999), so ``net_p50_us, net_p99_us, net_p999_us`` rather than alphabetical."""
    for token, rank in _PERCENTILE_ORDER.items():
        match = re.search(rf"(^|_){token}(_|$)", name)
        if match:
            return (name[: match.start()] + "#" + name[match.end() :], rank, name)
    return (name, -1, name)


def _is_latency(name: str) -> bool:
    return name.endswith("_us") or bool(re.match(r"ratio_p\d+$", name))


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[Row], str]


def _counts_columns(rows: Sequence[Row], extras: Sequence[str]) -> list[_Column]:
    def counted(get: Callable[[Row], float]) -> Callable[[Row], str]:
        # -1 is the contract's "unknown" (no sidecar URL): not applicable, not a count.
        return lambda row: NOT_APPLICABLE if get(row) < 0 else _fmt(get(row))

    return [
        _Column("events", lambda row: _fmt(row.result.events)),
        _Column("sent", lambda row: _fmt(row.result.sent)),
        _Column("dropped", lambda row: _fmt(row.result.dropped)),
        _Column("received", counted(lambda row: row.result.received)),
        _Column("lost", counted(lambda row: row.result.lost)),
        _Column("elapsed_s", lambda row: f"{row.result.elapsed_s:.3f}"),
        _Column("rate/s", lambda row: _fmt(row.result.rate)),
        *(_extra_column(name) for name in extras),
    ]


def _latency_columns(extras: Sequence[str]) -> list[_Column]:
    def percentile(field: str) -> Callable[[Row], str]:
        def cell(row: Row) -> str:
            if row.latency is None and not row.bounded:
                return NOT_APPLICABLE  # no per-call timing in this row: 0 would read as 0 µs
            # Bucket upper bounds are not measurements of a value: say so in every cell.
            return ("≤" if row.bounded else "") + _fmt(getattr(row.result, field))

        return cell

    return [
        _Column("p50_us", percentile("p50_us")),
        _Column("p90_us", percentile("p90_us")),
        _Column("p99_us", percentile("p99_us")),
        _Column("p99.9_us", percentile("p999_us")),
        _Column("max_us", percentile("max_us")),
        *(_extra_column(name) for name in extras),
    ]


def _extra_column(name: str) -> _Column:
    return _Column(name, lambda row: _fmt(row.extra[name]) if name in row.extra else NOT_APPLICABLE)


def _render(rows: Sequence[Row], columns: Sequence[_Column]) -> list[str]:
    """Fixed-width lines; the variant column first, numbers right-aligned."""
    grid = [["variant", *(c.header for c in columns)]]
    grid += [[row.result.variant, *(c.cell(row) for c in columns)] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    return [
        "  ".join(
            cell.rjust(w) if n and i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for n, line in enumerate(grid)
    ]


def _fit(rows: Sequence[Row], columns: Sequence[_Column], width: int) -> list[list[str]]:
    """Split ``columns`` into as few tables as fit ``width``, each repeating the variant."""
    tables: list[list[str]] = []
    chunk: list[_Column] = []
    for column in columns:
        if chunk and max(len(line) for line in _render(rows, [*chunk, column])) > width:
            tables.append(_render(rows, chunk))
            chunk = []
        chunk.append(column)
    if chunk:
        tables.append(_render(rows, chunk))
    return tables


def table(
    mode: str, rows: Sequence[Row], targets: Sequence[Target], width: int | None = None
) -> str:
    """Counts, then latencies (only when some row has them), each split to fit ``width``
    (default: the terminal's, or :data:`MAX_WIDTH`); then the targets with verdicts,
    wrapped to the same width."""
    if mode == "paced":
        return paced_report.table(rows, targets, terminal_width() if width is None else width)
    width = terminal_width() if width is None else width
    extras = sorted({key for row in rows for key in row.extra}, key=extra_order)
    count_extras = [name for name in extras if not _is_latency(name)]
    latency_extras = [name for name in extras if _is_latency(name)]
    out = [f"== {mode} =="]
    for lines in _fit(rows, _counts_columns(rows, count_extras), width):
        out += [*lines, ""]
    if any(row.latency is not None or row.bounded for row in rows):
        out.append(f"-- {mode}: latency (µs) --")
        for lines in _fit(rows, _latency_columns(latency_extras), width):
            out += [*lines, ""]
    if any(row.bounded for row in rows):
        out.append(
            "  ≤X: e2e percentiles are the upper bound of the sidecar histogram bucket\n"
            "  they fall in (no finer data); e2e_within_250us is exact"
        )
    out.append(
        f"  {NOT_APPLICABLE}: not applicable to this row (no sidecar counts, no per-call timing)"
    )
    for t in targets:
        verdict = "MET   " if t.met else "MISSED"
        out.append(f"  [{verdict}] {t.name}: {_fmt(t.value)} (target {t.op} {_fmt(t.limit)})")
    return "\n".join(wrapped for line in out for wrapped in wrap(line, width))


def report_dict(
    mode: str,
    run_id: str,
    parameters: dict[str, Any],
    rows: Sequence[Row],
    targets: Sequence[Target],
) -> dict[str, Any]:
    report = {
        "run_id": run_id,
        "mode": mode,
        "created_at": time.time(),
        "machine": machine(),
        "parameters": parameters,
        "rows": [row.as_dict() for row in rows],
        "targets": [t.as_dict() for t in targets],
    }
    if mode == "burst":
        report["summary"] = burst_summary(rows)
    return report


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")


def burst_summary(rows: Sequence[Row]) -> dict[str, float]:
    """What happened to a burst's events: sent, delivered (counted by the sidecar),
    dropped (by the client, queue full), lost (seq gaps) and the delivered rate.
    Delivered and lost are -1 when the sidecar's counts were not read."""
    r = rows[0]
    return {
        "events": r.result.events,
        "sent": r.result.sent,
        "delivered": r.result.received,
        "dropped": r.result.dropped,
        "lost": r.result.lost,
        "delivered_rate": r.extra.get("delivered_rate", -1.0),
    }


def plot(
    path: Path, mode: str, run_id: str, rows: Sequence[Row], targets: Sequence[Target] = ()
) -> None:
    """One PNG per mode (see :func:`figure`), its description in the PNG's metadata."""
    import matplotlib.pyplot as plt

    fig, description = figure(mode, run_id, rows, targets)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Description": description})
    plt.close(fig)


def figure(
    mode: str, run_id: str, rows: Sequence[Row], targets: Sequence[Target] = ()
) -> tuple[Figure, str]:
    """The figure of one mode and a one-line description of what it shows.

    Latency percentiles per variant (log scale) when rows are timed; a burst as what
    happened to its events; rates as horizontal bars otherwise (names never collide).
    Beside it, every target as a bar of value/limit against a dashed line at 1, with
    its value written at the bar (a zero still shows: a marker). No text is placed where
    it could land on another: tests/plot_support.py checks every text's extent.
    The caller closes the figure.
    """
    if mode == "paced":
        return paced_report.figure(run_id, rows, targets)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lined = [t for t in targets if t.limit > 0]
    main_height = max(4.5, 0.45 * len(rows) + 1.5) if not _timed_or_burst(mode, rows) else 4.5
    height = max(main_height, 0.75 * len(lined) + 1.5)
    fig, axes = plt.subplots(
        1,
        2 if lined else 1,
        figsize=(15 if lined else 9, height),
        dpi=100,
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": [1.0, 1.15]} if lined else None,
    )
    fig.suptitle(f"trading-bench {mode} — run {run_id}")
    ax = axes[0][0]
    description = f"trading-bench {mode} run {run_id}"
    timed = [row for row in rows if row.latency is not None]
    if mode == "burst":
        description += _draw_burst(ax, rows)
    elif timed:
        description += _draw_latencies(ax, timed, targets)
    else:
        _draw_rates(ax, rows)
    if lined:
        _draw_targets(axes[0][1], lined)
        description += " targets=" + ",".join(f"{t.name}:{t.op}{t.limit:g}" for t in lined)
    return fig, description


def _timed_or_burst(mode: str, rows: Sequence[Row]) -> bool:
    return mode == "burst" or any(row.latency is not None for row in rows)


def _draw_burst(ax: Axes, rows: Sequence[Row]) -> str:
    summary = burst_summary(rows)
    labels = ["sent", "delivered", "dropped", "lost"]
    values = [max(summary[k], 0.0) for k in labels]
    colours = ["#4c72b0", "#1a7f37", "#dd8452", "#cf222e"]
    ax.bar(labels, values, color=colours)
    for i, key in enumerate(labels):
        shown = _fmt(summary[key]) if summary[key] >= 0 else NOT_APPLICABLE
        ax.annotate(
            shown, (i, values[i]), xytext=(0, 3), textcoords="offset points", ha="center",
            va="bottom",
        )  # fmt: skip
    ax.set_ylim(0, max(values, default=0.0) * 1.15 or 1.0)  # room for the labels
    ax.set_ylabel("events")
    ax.set_title("what happened to the burst's events")
    rate = summary["delivered_rate"]
    ax.set_xlabel(f"delivered rate: {_fmt(rate)} events/s" if rate >= 0 else "delivered rate: –")
    return " " + " ".join(f"{k}={v:g}" for k, v in summary.items())


def bound_labels(targets: Sequence[Target]) -> dict[tuple[str, str, float], str]:
    """One legend label per distinct latency bound (variant, percentile, limit µs).

    Several targets can bound the same point (the same limit reached two ways); one
    line and one label each, never two texts on one spot.
    """
    labels: dict[tuple[str, str, float], list[Target]] = {}
    for t in targets:
        if t.limit_us is None or t.percentile not in _PERCENTILE_LABELS:
            continue
        labels.setdefault((t.variant, t.percentile, t.limit_us), []).append(t)
    return {
        key: ("✓" if all(t.met for t in found) else "✗") + f" {key[0]} {key[1]} ≤ {_fmt(key[2])} µs"
        for key, found in labels.items()
    }


def _draw_latencies(ax: Axes, timed: Sequence[Row], targets: Sequence[Target]) -> str:
    by_variant: dict[str, Any] = {}  # a matplotlib colour
    for row in timed:
        r = row.result
        values = [r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us]
        (line,) = ax.plot(_PERCENTILE_LABELS, values, marker="o", label=r.variant)
        by_variant[r.variant] = line.get_color()
    # A latency bound of one variant at one percentile: a dashed bar at the bound, in
    # that variant's colour; what it bounds and ✓/✗ are in the legend, not beside it.
    drawn = []
    for (variant, percentile, limit_us), label in bound_labels(targets).items():
        x = _PERCENTILE_LABELS.index(percentile)
        colour = by_variant.get(variant, "black")
        ax.hlines(limit_us, x - 0.3, x + 0.3, colors=colour, linestyles="dashed", label=label)
        drawn.append(f"{variant}@{percentile}<={limit_us:g}")
    ax.set_yscale("log")
    ax.set_ylabel("latency (µs, log scale)")
    ax.set_xlabel("percentile")
    ax.set_title("latency per call by percentile")
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return " target-lines=" + ",".join(drawn) if drawn else ""


def _draw_rates(ax: Axes, rows: Sequence[Row]) -> None:
    names = [row.result.variant for row in rows]
    rates = [row.result.rate for row in rows]
    positions = range(len(rows))
    ax.barh(positions, rates, color="#4c72b0")
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    top = max(rates, default=0.0)
    low = min((r for r in rates if r > 0), default=0.0)
    if low > 0 and top / low > 100:
        ax.set_xscale("log")
        ax.set_xlim(low / 2, top * 8)  # room right of the longest bar for its label
        ax.set_xlabel("events per second (log scale)")
    else:
        ax.set_xlim(0, top * 1.35 or 1.0)
        ax.set_xlabel("events per second")
    for i, rate in enumerate(rates):
        ax.annotate(
            f"{rate:,.0f}", (rate, i), xytext=(4, 0), textcoords="offset points", va="center",
            fontsize="small",
        )  # fmt: skip
    ax.set_title("throughput per variant")


def _draw_targets(ax: Axes, lined: Sequence[Target]) -> None:
    ratios = [t.value / t.limit for t in lined]
    positions = range(len(lined))
    colours = ["#1a7f37" if t.met else "#cf222e" for t in lined]
    ax.barh(positions, ratios, color=colours, alpha=0.7)
    # A value of zero (or near it) draws no bar: a marker shows where it is.
    ax.scatter(ratios, positions, marker="D", color=colours, zorder=3, s=18)
    ax.axvline(1.0, color="black", linestyle="dashed", linewidth=1)
    ax.set_yticks(
        positions,
        [
            textwrap.fill(f"{t.name} (target {t.op} {_fmt(t.limit)})", 44, break_on_hyphens=False)
            for t in lined
        ],
        fontsize="small",
    )
    ax.invert_yaxis()
    right = max([*ratios, 1.0])
    ax.set_xlim(0, right * 1.45)
    for i, t in enumerate(lined):
        ax.annotate(
            ("✓ " if t.met else "✗ ") + _fmt(t.value), (ratios[i], i), xytext=(5, 0),
            textcoords="offset points", va="center", fontsize="small",
        )  # fmt: skip
    ax.set_xlabel("value / limit (dashed: the limit)")
    ax.set_title("targets (green: met, red: missed)")


def write_termination_log(path: Path, row: Row) -> None:
    """The headline row as one contract frame; Kubernetes caps the message at 4 KiB."""
    frame = encode(row.result)
    if len(frame) >= 4096:
        raise ValueError(f"termination message is {len(frame)} bytes, over 4 KiB")
    path.write_bytes(frame)


def deliver(address: str, rows: Sequence[Row], timeout_s: float = 5.0) -> None:
    """Send every row to a sidecar as ``type: "benchmark"`` messages, one per row.

    Waits up to ``timeout_s`` for them to leave; a sidecar that is not there then
    simply does not get them (the JSON report still has every row).
    """
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = push_socket(ctx, address, linger_ms=int(timeout_s * 1000))
    try:
        for row in rows:
            sock.send(encode(row.result))
    finally:
        sock.close()
    ctx.term()  # waits for the frames to leave, up to the linger
