"""The paced mode's table (fits 100 columns) and plot (one panel per loop).

Rows are grouped by loop, variants in the same order in every group, so a reader
compares the client with prometheus_client down one column. The plot shows, per loop,
each variant's p50, p99, p99.9 and max on a log scale; text is checked against the
figure's edges and against other labels before saving (:func:`check_layout`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from telemetry_contract.events import PACED_VARIANTS

from trading_bench.rows import Row
from trading_bench.targets import Target
from trading_bench.terminal import MAX_WIDTH, wrap

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_COLUMNS = (
    ("p50", 8), ("p99", 8), ("p99.9", 8), ("max", 9), (">100µs", 9), (">1ms", 6),
    ("@flush", 8),
)  # fmt: skip


def split(variant: str) -> tuple[str, str]:
    """``client-busy-10000`` → (``client``, ``busy-10000``): the longest known prefix."""
    for base in sorted(PACED_VARIANTS, key=len, reverse=True):
        if variant.startswith(base + "-"):
            return base, variant[len(base) + 1 :]
    return variant, ""


def _num(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _at_flush(value: float) -> str:
    return "–" if value < 0 else f"{value:.0f}"


def grouped(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Rows by loop, in run order of loops, variants in the contract's order."""
    order = {name: i for i, name in enumerate(PACED_VARIANTS)}
    loops: dict[str, list[Row]] = {}
    for row in rows:
        loops.setdefault(split(row.result.variant)[1], []).append(row)
    for members in loops.values():
        members.sort(key=lambda r: order.get(split(r.result.variant)[0], len(order)))
    return loops


def table(rows: Sequence[Row], targets: Sequence[Target], width: int = MAX_WIDTH) -> str:
    rounds = int(rows[0].extra.get("rounds", 1)) if rows else 0
    head = f"{'loop':<12} {'variant':<18}" + "".join(f"{n:>{w}}" for n, w in _COLUMNS)
    out = [
        "== paced ==",
        f"µs per call, median of {rounds} round(s), each variant in its own process",
        head,
    ]
    for loop, members in grouped(rows).items():
        for i, row in enumerate(members):
            r = row.result
            cells = [
                _num(r.p50_us),
                _num(r.p99_us),
                _num(r.p999_us),
                _num(r.max_us),
                f"{100 * row.extra.get('over_100us', 0.0):.3f}%",
                f"{row.extra.get('over_1ms', 0.0):.0f}",
                _at_flush(row.extra.get("slow_in_flush", -1.0)),
            ]
            line = f"{loop if i == 0 else '':<12} {split(r.variant)[0]:<18}" + "".join(
                f"{c:>{w}}" for c, (_, w) in zip(cells, _COLUMNS, strict=True)
            )
            dropped = f"  dropped {r.dropped:,}" if r.dropped > 0 else ""
            out.append(line + dropped)
        out.append("")
    out.append(">100µs: share of calls over 100 µs; >1ms: calls over 1 ms; @flush: calls over")
    out.append("100 µs that overlapped a flush of the client's own thread (medians of rounds)")
    for t in targets:
        verdict = "MET   " if t.met else "MISSED"
        text = f"[{verdict}] {t.name}: {t.value:.3g} (target {t.op} {t.limit:g})"
        out += wrap(text, width, indent=len("[MISSED] ") + 2)
    return "\n".join(out)


def _texts(fig: Any) -> list[Any]:
    """Every text a reader sees: titles, axis labels, tick labels inside the axis' view
    (matplotlib keeps labels of ticks beyond it, never drawn), legend entries."""
    found = [fig._suptitle] if fig._suptitle is not None else []  # noqa: SLF001
    for ax in fig.axes:
        if not ax.axison and not ax.get_legend():
            continue
        found += [ax.title, ax.xaxis.label, ax.yaxis.label]
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                low, high = sorted(axis.get_view_interval())
                for tick in axis.get_major_ticks():
                    if low <= tick.get_loc() <= high and tick.label1.get_visible():
                        found.append(tick.label1)
        legend = ax.get_legend()
        if legend is not None:
            found += [legend.get_title(), *legend.get_texts()]
    return [t for t in found if t.get_visible() and t.get_text().strip()]


def check_layout(fig: Any) -> list[str]:
    """Problems a reader would see: text outside the figure, or two labels overlapping."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
    problems = []
    for text, box in boxes:
        if box.x0 < frame.x0 - 1 or box.y0 < frame.y0 - 1:
            problems.append(f"outside the figure: {text!r}")
        elif box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1:
            problems.append(f"outside the figure: {text!r}")
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            if box_a.width and box_b.width and box_a.overlaps(box_b):
                problems.append(f"overlapping labels: {a!r} and {b!r}")
    return problems


def figure(run_id: str, rows: Sequence[Row], targets: Sequence[Target]) -> tuple[Figure, str]:
    """One panel per loop: each variant's p50, p99, p99.9 and max (log µs); with its
    one-line description. Refuses (ValueError) a figure whose text collides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loops = grouped(rows)
    cols = 4
    panels = len(loops) + 1  # + the legend's own panel
    nrows = -(-panels // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(16, 4.2 * nrows), dpi=100, squeeze=False)
    labels = ["p50", "p99", "p99.9", "max"]
    missed = {t.variant for t in targets if not t.met and t.variant}
    handles: dict[str, Any] = {}
    colours = {name: f"C{i}" for i, name in enumerate(PACED_VARIANTS)}
    for ax, (loop, members) in zip(axes.flat, loops.items(), strict=False):
        for row in members:
            r = row.result
            base = split(r.variant)[0]
            (line,) = ax.plot(
                labels,
                [r.p50_us, r.p99_us, r.p999_us, r.max_us],
                marker="o",
                color=colours.get(base, "black"),
                linewidth=2.5 if base == "client" else 1.2,
            )
            handles.setdefault(base, line)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        style, _, rate = loop.partition("-")
        title = {"busy": "busy-poll", "sleep": "sleep until due"}.get(style, style)
        if rate.isdigit():
            title += f", {int(rate):,}/s"
        if any(f"client-{loop}" == v for v in missed):
            title += " (a target MISSED)"
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel("µs per call (log)")
    legend_ax = axes.flat[len(loops)]
    legend_ax.axis("off")
    legend_ax.legend(list(handles.values()), list(handles.keys()), loc="center", title="variant")
    legend_ax.set_title(f"run {run_id}\nmedian of rounds", fontsize="medium")
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle("trading-bench paced: what one call costs a paced trading loop")
    fig.tight_layout()
    problems = check_layout(fig)
    if problems:
        plt.close(fig)
        raise ValueError("paced plot is unreadable: " + "; ".join(problems))
    verdicts = ",".join(f"{t.name}:{'MET' if t.met else 'MISSED'}" for t in targets)
    return fig, f"trading-bench paced run {run_id} {verdicts}"
