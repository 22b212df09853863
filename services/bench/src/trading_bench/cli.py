"""``trading-bench``: one mode per invocation, same CLI locally and in the cluster Job.

Every option also reads ``TT_BENCH_<OPTION>`` (e.g. ``TT_BENCH_EVENTS``) as its default,
so the Job can be configured by env alone. Output goes only to ``--results-dir`` and
/tmp, so the command runs on a read-only root filesystem.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from telemetry_contract.cli import new_parser
from telemetry_contract.events import BENCH_MODES, LABEL_VALUE_PATTERN
from telemetry_contract.transport import (
    DEFAULT_SIDECAR_HTTP_PORT,
    DEFAULT_ZMQ_ADDRESS,
)

from trading_bench import burst, hotpath, ingest, report, sustained, targets
from trading_bench.common import BenchError, RunContext
from trading_bench.rows import Row
from trading_bench.sidecar import LocalSidecar, MetricsReader

PREFIX = "TT_BENCH_"
#: Where ``make run`` puts the sidecar; a local run's results also go there if it is up.
STACK_ZMQ = DEFAULT_ZMQ_ADDRESS
STACK_URL = f"http://127.0.0.1:{DEFAULT_SIDECAR_HTTP_PORT}"

_HEADLINE = {"hotpath": "client", "burst": "client", "ingest": "sidecar"}


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(PREFIX + name, "").strip().lower() in {"1", "true", "yes", "on"}


def _rates(text: str) -> tuple[float, ...]:
    """``1000`` or ``1000,10000``: one or more rates; ``0`` (as before lists) means the
    default rates, so callers that pass 0 for "unset" keep working."""
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate or comma-separated rates: {text!r}") from None
    if not all(math.isfinite(rate) and rate >= 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"rates must be > 0 (or 0: the defaults), got {text!r}")
    return tuple(rate for rate in rates if rate > 0)


def _at_least_one(text: str) -> int:
    """Event counts: a whole number >= 1, refused before anything runs."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return number


def _positive_seconds(text: str) -> float:
    """Durations: finite seconds > 0."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be seconds > 0, got {text!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be seconds > 0, got {text!r}")
    return seconds


def _zmq_address(text: str) -> str:
    """``tcp://host:port`` (or ipc:// / inproc://), refused before a socket is made."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme in ("ipc", "inproc") and len(text) > len(parsed.scheme) + 3:
        return text
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "tcp" or not parsed.hostname or port is None:
        raise argparse.ArgumentTypeError(
            f"must be a ZeroMQ address like tcp://host:5555, got {text!r}"
        )
    return text


def _http_urls(text: str) -> str:
    """One or more comma-separated ``http(s)://host[:port]`` base URLs."""
    urls = [u.strip() for u in text.split(",")]
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise argparse.ArgumentTypeError(
                f"must be http(s)://host:port, comma-separated for several, got {text!r}"
            )
    return text


def _not_negative(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return number


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    def default(name: str, fallback: str | None = None) -> str | None:
        return env.get(PREFIX + name, fallback)

    p = new_parser(
        "trading-bench",
        "What publishing a trade event costs the trading process, against the\n"
        "alternatives. Each option also reads TT_BENCH_<OPTION> as its default.\n"
        "Every argument is checked before anything runs.",
        "trading-bench",
    )
    p.add_argument("mode", choices=BENCH_MODES, help="hotpath | burst | sustained | ingest")
    p.add_argument(
        "--address",
        type=_zmq_address,
        default=default("ADDRESS"),
        help="the sidecar's ZMQ address; without it a local sidecar is started",
    )
    p.add_argument(
        "--sidecar-url",
        type=_http_urls,
        default=default("SIDECAR_URL"),
        help="that sidecar's HTTP base URL, for its received/lost counts "
        "(comma-separated for several replicas: their counts are summed)",
    )
    p.add_argument(
        "--events",
        type=_at_least_one,
        default=default("EVENTS"),
        help="calls (hotpath), events (burst, ingest); default per mode",
    )
    p.add_argument(
        "--rate",
        type=_rates,
        default=default("RATE"),
        help="sustained: target rate(s) in events/s, comma-separated (default: 1k,10k,50k)",
    )
    p.add_argument(
        "--duration",
        type=_positive_seconds,
        default=default("DURATION"),
        help=f"sustained: seconds per rate (default {sustained.DEFAULT_DURATION_S:g})",
    )
    p.add_argument(
        "--run-id",
        default=default("RUN_ID"),
        help="label for this run's rows (default: the start time)",
    )
    p.add_argument(
        "--results-dir",
        default=default("RESULTS_DIR", "results"),
        help="JSON report and PNG go to RESULTS_DIR/RUN_ID/",
    )
    p.add_argument(
        "--termination-log",
        default=default("TERMINATION_LOG"),
        help="write the headline row here as one contract frame",
    )
    p.add_argument(
        "--sndhwm",
        type=_not_negative,
        default=default("SNDHWM"),
        help="the client's per-socket high-water mark for burst/sustained "
        "(default: derived from its memory budget)",
    )
    p.add_argument(
        "--no-report",
        action="store_true",
        default=_env_flag(env, "NO_REPORT"),
        help="do not send the rows to the sidecar",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        default=_env_flag(env, "NO_PROGRESS"),
        help="no progress bars",
    )
    p.add_argument(
        "--no-plot", action="store_true", default=_env_flag(env, "NO_PLOT"), help="no PNG"
    )
    return p


def _run_mode(args: argparse.Namespace, ctx: RunContext) -> list[Row]:
    if args.mode == "hotpath":
        return hotpath.run(ctx, args.events or hotpath.DEFAULT_CALLS)
    if args.mode == "burst":
        return burst.run(ctx, args.events or burst.DEFAULT_EVENTS)
    if args.mode == "sustained":
        rates = args.rate or sustained.DEFAULT_RATES
        return sustained.run(ctx, rates, args.duration or sustained.DEFAULT_DURATION_S)
    return ingest.run(ctx, args.events or ingest.DEFAULT_EVENTS)


def headline(mode: str, rows: Sequence[Row]) -> Row:
    """The project's own variant: what the operator puts in the benchmark's status."""
    wanted = _HEADLINE.get(mode)
    if mode == "sustained":
        clients = [r for r in rows if r.result.variant.startswith("client-")]
        at_10k = [r for r in clients if r.result.target_rate == 10_000]
        return (at_10k or clients)[0]
    return next(r for r in rows if r.result.variant == wanted)


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ
    cli = parser(env)
    args = cli.parse_args(argv)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S")
    if not re.fullmatch(LABEL_VALUE_PATTERN, run_id):
        # Checked now: the rows carry it as a label, and the sidecar would refuse them.
        cli.error(f"--run-id must match {LABEL_VALUE_PATTERN}, got {run_id!r}")
    local: LocalSidecar | None = None
    reader: MetricsReader | None
    try:
        if args.address is None:
            local = LocalSidecar().start()
            address, reader = local.zmq_address, MetricsReader(local.url)
        else:
            address = args.address
            reader = MetricsReader(args.sidecar_url) if args.sidecar_url else None
        ctx = RunContext(
            run_id,
            address,
            reader,
            # A bar redraws with \r: only a terminal shows it; a log would keep every frame.
            progress=not args.no_progress and sys.stderr.isatty(),
            sndhwm=args.sndhwm or None,
        )
        rows = _run_mode(args, ctx)
        checks = targets.CHECKS[args.mode](rows)
        print(report.table(args.mode, rows, checks), flush=True)
        parameters = {
            "events": args.events,
            "rate": list(args.rate) if args.rate else None,
            "duration": args.duration,
            "address": address,
            "own_sidecar": local is not None,
            "sndhwm": ctx.sndhwm,
        }
        out_dir = Path(args.results_dir) / run_id
        json_path = out_dir / f"{args.mode}.json"
        report.write_json(
            json_path, report.report_dict(args.mode, run_id, parameters, rows, checks)
        )
        print(f"report: {json_path}")
        if not args.no_plot:
            png = out_dir / f"{args.mode}.png"
            report.plot(png, args.mode, run_id, rows, checks)
            print(f"plot:   {png}")
        if not args.no_report:
            report.deliver(address, rows)
            if local is not None and MetricsReader(STACK_URL).ready():
                report.deliver(STACK_ZMQ, rows)
                print(f"results also sent to the local stack's sidecar at {STACK_ZMQ}")
        if args.termination_log:
            report.write_termination_log(Path(args.termination_log), headline(args.mode, rows))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"trading-bench {args.mode}: {exc}", file=sys.stderr)
        return 1
    finally:
        if local is not None:
            local.stop()
    return 0


def console() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console()
