"""Where a run's rows go: the terminal, JSON, a PNG, the termination log and the sidecar."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq
from telemetry_contract.codec import encode
from trading_publisher.sockets import push_socket

from trading_bench.rows import Row
from trading_bench.targets import Target

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


def _fmt(value: float) -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(mode: str, rows: Sequence[Row], targets: Sequence[Target]) -> str:
    """A plain fixed-width table: one line per row, then the targets with verdicts."""
    extras = sorted({key for row in rows for key in row.extra})
    header = [
        "variant",
        "events",
        "sent",
        "dropped",
        "received",
        "lost",
        "elapsed_s",
        "rate/s",
        "p50_us",
        "p90_us",
        "p99_us",
        "p99.9_us",
        "max_us",
        *extras,
    ]
    lines = [header]
    for row in rows:
        r = row.result
        # Bucket upper bounds are not measurements of a value: say so in every cell.
        mark = "≤" if row.bounded else ""
        lines.append(
            [
                r.variant,
                _fmt(r.events),
                _fmt(r.sent),
                _fmt(r.dropped),
                _fmt(r.received),
                _fmt(r.lost),
                f"{r.elapsed_s:.3f}",
                _fmt(r.rate),
                mark + _fmt(r.p50_us),
                mark + _fmt(r.p90_us),
                mark + _fmt(r.p99_us),
                mark + _fmt(r.p999_us),
                mark + _fmt(r.max_us),
                *(_fmt(row.extra[k]) if k in row.extra else "" for k in extras),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"== {mode} =="]
    for n, line in enumerate(lines):
        out.append(
            "  ".join(
                cell.rjust(w) if n and i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    if any(row.bounded for row in rows):
        out.append(
            "  ≤X: e2e percentiles are the upper bound of the sidecar histogram bucket they "
            "fall in (no finer data); e2e_within_250us is exact"
        )
    for t in targets:
        verdict = "MET   " if t.met else "MISSED"
        out.append(f"  [{verdict}] {t.name}: {_fmt(t.value)} (target {t.op} {_fmt(t.limit)})")
    return "\n".join(out)


def report_dict(
    mode: str,
    run_id: str,
    parameters: dict[str, Any],
    rows: Sequence[Row],
    targets: Sequence[Target],
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "mode": mode,
        "created_at": time.time(),
        "machine": machine(),
        "parameters": parameters,
        "rows": [row.as_dict() for row in rows],
        "targets": [t.as_dict() for t in targets],
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")


def plot(path: Path, mode: str, run_id: str, rows: Sequence[Row]) -> None:
    """Latency percentiles per variant (log scale); modes without per-call timing get
    their rates as bars instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    timed = [row for row in rows if row.latency is not None]
    if timed:
        for row in timed:
            r = row.result
            values = [r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us]
            ax.plot(_PERCENTILE_LABELS, values, marker="o", label=r.variant)
        ax.set_yscale("log")
        ax.set_ylabel("latency (µs, log scale)")
        ax.set_xlabel("percentile")
        ax.legend(fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
    else:
        names = [row.result.variant for row in rows]
        rates = [row.result.rate for row in rows]
        ax.bar(names, rates)
        ax.set_ylabel("events per second")
        for i, rate in enumerate(rates):
            ax.annotate(f"{rate:,.0f}", (i, rate), ha="center", va="bottom")
    ax.set_title(f"trading-bench {mode} — run {run_id}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


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
