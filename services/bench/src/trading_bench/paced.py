"""paced: what emitting costs a trading loop that is paced like a real one.

The hotpath mode times slices of back-to-back calls and settles the client between
slices, so the client's flusher never competes with a running loop; it gives the median
only. Here each variant runs alone in its own process (``paced_worker``), through loops
at fixed rates in two pacing styles (spin until due; sleep until due) and one
continuous run of back-to-back calls; rounds are interleaved (each round runs every
variant once, in rotating order) and every number is the median over rounds. So the
flusher's wake-ups, prometheus_client's HTTP server answering a scrape each second, and
libzmq's I/O thread all land in the timed calls, as they do in production.

Rows: one per (variant, loop), named ``<variant>-<style>-<rate>`` (contract closed set).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from telemetry_contract.events import PACED_VARIANTS, paced_variant

from trading_bench.common import BenchError, RunContext, progress_bar
from trading_bench.latency import Percentiles
from trading_bench.paced_worker import loop_name
from trading_bench.rows import Row, make_row

DEFAULT_RATES = (1_000.0, 10_000.0, 100_000.0)
#: Seconds per paced loop (events = rate × this).
DEFAULT_DURATION_S = 1.5
#: Calls of the continuous run.
DEFAULT_CONTINUOUS = 1_000_000
ROUNDS = 3
WARMUP = 2_000
#: A worker that takes longer than this has hung.
WORKER_TIMEOUT_S = 600.0
STYLES = ("busy", "sleep")


def loops(
    rates: Sequence[float], duration_s: float, continuous: int
) -> list[tuple[str, float, int]]:
    """(style, rate, events) per loop: every style at every rate, then the continuous run."""
    found = [
        (style, float(rate), max(1, int(rate * duration_s))) for style in STYLES for rate in rates
    ]
    return [*found, ("continuous", 0.0, continuous)]


def run_worker(
    variant: str, address: str, plan: Sequence[tuple[str, float, int]], env: Mapping[str, str]
) -> dict[str, Any]:
    """One variant in a fresh process; its per-loop numbers."""
    job = {
        "variant": variant,
        "address": address,
        "loops": list(plan),
        "warmup": WARMUP,
        "trace": True,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trading_bench.paced_worker", json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            env=dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"paced worker {variant} hung for {WORKER_TIMEOUT_S:g} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip()[-2000:]
        raise BenchError(f"paced worker {variant} failed (exit {done.returncode}): {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def worker_env(spec: str) -> dict[str, str]:
    """The worker's environment; ``@tree=<path>`` runs the client of another checkout
    (its publisher and contract packages first on the path), for A/B runs of levers."""
    env = dict(os.environ)
    _, _, options = spec.partition("@")
    opts = dict(part.split("=", 1) for part in options.split(",") if "=" in part)
    if "tree" in opts:
        tree = opts["tree"]
        paths = [f"{tree}/services/publisher/src", f"{tree}/services/contract/src"]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def measure(
    ctx: RunContext,
    specs: Sequence[str],
    plan: Sequence[tuple[str, float, int]],
    rounds: int,
) -> dict[str, list[dict[str, Any]]]:
    """Every variant's worker output, per round, rounds interleaved in rotating order."""
    results: dict[str, list[dict[str, Any]]] = {spec: [] for spec in specs}
    with progress_bar(ctx, rounds * len(specs), "paced", unit="run") as bar:
        for r in range(rounds):
            order = [*specs[r % len(specs) :], *specs[: r % len(specs)]]
            for spec in order:
                results[spec].append(run_worker(spec, ctx.address, plan, worker_env(spec)))
                bar.update(1)
    return results


#: Per-loop numbers whose median over rounds a row reports.
_STATS = (
    "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "over_100us", "over_1ms", "mean_us",
    "slow_in_flush", "flushes_per_s", "flush_p50_us", "flush_max_us",
)  # fmt: skip


def medians(per_round: Sequence[Mapping[str, Any]], loop: str) -> dict[str, float]:
    """The median over rounds of each number of ``loop``."""
    return {
        key: statistics.median(float(r["loops"][loop][key]) for r in per_round)
        for key in (*_STATS, "elapsed_s", "events")
    }


def rows_from(
    ctx: RunContext,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    plan: Sequence[tuple[str, float, int]],
    started_at: float,
    rounds: int,
) -> list[Row]:
    rows = []
    for spec, per_round in results.items():
        base = spec.partition("@")[0]
        for style, rate, events in plan:
            m = medians(per_round, loop_name(style, rate))
            latency = Percentiles(
                events, m["p50_us"], m["p90_us"], m["p99_us"], m["p999_us"], m["max_us"]
            )
            loop = loop_name(style, rate)
            dropped = int(statistics.median(r["loops"][loop].get("dropped", 0) for r in per_round))
            sent = events - dropped
            rows.append(
                make_row(
                    run_id=ctx.run_id,
                    mode="paced",
                    variant=paced_variant(base, style, rate),
                    events=events,
                    sent=sent,
                    dropped=dropped,
                    elapsed_s=m["elapsed_s"],
                    target_rate=rate,
                    latency=latency,
                    started_at=started_at,
                    extra={
                        "over_100us": m["over_100us"],
                        "over_1ms": m["over_1ms"],
                        "mean_us": m["mean_us"],
                        # Calls over 100 µs that overlapped a flush of the client's own
                        # thread (-1: not a client); the rest met something else.
                        "slow_in_flush": m["slow_in_flush"],
                        # The client's flushes during the loop: how often, how long (the
                        # GIL hold a busy caller waits for, if preempted at that moment).
                        "flushes_per_s": m["flushes_per_s"],
                        "flush_p50_us": m["flush_p50_us"],
                        "flush_max_us": m["flush_max_us"],
                        "rounds": float(rounds),
                    },
                )
            )
    return rows


def run(
    ctx: RunContext,
    rates: Sequence[float] = DEFAULT_RATES,
    duration_s: float = DEFAULT_DURATION_S,
    continuous: int = DEFAULT_CONTINUOUS,
    rounds: int = ROUNDS,
    specs: Sequence[str] = PACED_VARIANTS,
) -> list[Row]:
    plan = loops(rates, duration_s, continuous)
    started_at = time.time()
    results = measure(ctx, specs, plan, rounds)
    return rows_from(ctx, results, plan, started_at, rounds)


def lever_table(
    results: Mapping[str, Sequence[Mapping[str, Any]]], plan: Sequence[tuple[str, float, int]]
) -> str:
    """A/B of client set-ups (levers) in one interleaved run: medians per spec and loop."""
    head = f"{'loop':<12} {'spec':<34}{'p50':>7}{'p99':>8}{'p99.9':>8}{'max':>9}"
    out = [head + f"{'>100µs':>9}{'>1ms':>6}{'drop':>6}{'@flush':>7}{'flush/s':>8}{'hold':>7}"]
    for style, rate, _ in plan:
        loop = loop_name(style, rate)
        for i, (spec, per_round) in enumerate(results.items()):
            m = medians(per_round, loop)
            dropped = statistics.median(r["loops"][loop].get("dropped", 0) for r in per_round)
            out.append(
                f"{loop if i == 0 else '':<12} {spec[:34]:<34}{m['p50_us']:>7.2f}"
                f"{m['p99_us']:>8.1f}{m['p999_us']:>8.1f}{m['max_us']:>9.0f}"
                f"{100 * m['over_100us']:>8.3f}%{m['over_1ms']:>6.0f}{dropped:>6.0f}"
                f"{m['slow_in_flush']:>7.0f}{m['flushes_per_s']:>8.0f}"
                f"{m['flush_p50_us']:>4.0f}/{m['flush_max_us']:<5.0f}"
            )
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trading_bench.paced SPEC ...``: an interleaved A/B of variant specs
    (``client@max_delay_ms=1``, ``client@tree=/path/to/other/checkout``, ...)."""
    import argparse

    from trading_bench.common import RunContext
    from trading_bench.sidecar import LocalSidecar

    p = argparse.ArgumentParser(prog="python -m trading_bench.paced")
    p.add_argument("specs", nargs="+")
    p.add_argument("--rates", default="10000,100000")
    p.add_argument("--styles", default="busy,sleep")
    p.add_argument("--duration", type=float, default=DEFAULT_DURATION_S)
    p.add_argument("--continuous", type=int, default=DEFAULT_CONTINUOUS)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    args = p.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    styles = args.styles.split(",")
    plan = [(s, r, max(1, int(r * args.duration))) for s in styles for r in rates]
    if args.continuous:
        plan.append(("continuous", 0.0, args.continuous))
    local = LocalSidecar().start()
    try:
        ctx = RunContext("levers", local.zmq_address, None, False, None)
        results = measure(ctx, args.specs, plan, args.rounds)
    finally:
        local.stop()
    print(f"median of {args.rounds} interleaved rounds, each spec in its own process")
    print(lever_table(results, plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
