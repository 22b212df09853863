"""``trading-bench``: one mode per invocation, same CLI locally and in the cluster Job.

Every option is a field of :class:`trading_bench.settings.BenchSettings`, read from
``TT_BENCH_<OPTION>`` (e.g. ``TT_BENCH_EVENTS``) and ``.env`` first, so the Job can be
configured by env alone; the command line overlays it. Output goes only to
``--results-dir`` and /tmp, so the command runs on a read-only root filesystem.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from telemetry_contract.cli import load_or_exit, new_parser, overlay
from telemetry_contract.events import BENCH_MODES, LABEL_VALUE_PATTERN
from telemetry_contract.ports import DEFAULT_SIDECAR_URL, DEFAULT_ZMQ_ADDRESS

from trading_bench import burst, hotpath, ingest, paced, report, sustained, targets
from trading_bench import settings as settings_mod
from trading_bench.common import BenchError, RunContext
from trading_bench.rows import Row
from trading_bench.settings import BenchSettings
from trading_bench.sidecar import LocalSidecar, MetricsReader

PREFIX = settings_mod.PREFIX
#: Where ``make run`` puts the sidecar; a local run's results also go there if it is up.
STACK_ZMQ = DEFAULT_ZMQ_ADDRESS
STACK_URL = DEFAULT_SIDECAR_URL

_HEADLINE = {"hotpath": "client", "burst": "client", "ingest": "sidecar"}


def _argument(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """A settings check as an argparse ``type``: its reason becomes the usage error."""

    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = check.__name__
    return parse


def parser(defaults: BenchSettings | None = None) -> argparse.ArgumentParser:
    """The command line over ``defaults`` (the loaded settings; the built-in ones if None).

    Each option's ``dest`` is a settings field, so :func:`overlay` maps the parsed
    options back onto the settings one to one.
    """
    d = defaults or BenchSettings()
    p = new_parser(
        "trading-bench",
        "What publishing a trade event costs the trading process, against the\n"
        f"alternatives. Each option also reads {PREFIX}<OPTION> and .env as its default.\n"
        "Every argument is checked before anything runs.",
        "trading-bench",
    )
    p.add_argument("mode", choices=BENCH_MODES, help=" | ".join(BENCH_MODES))
    p.add_argument(
        "--address",
        type=_argument(settings_mod.zmq_address),
        default=d.address,
        help="the sidecar's ZMQ address; without it a local sidecar is started",
    )
    p.add_argument(
        "--sidecar-url",
        type=_argument(settings_mod.http_urls),
        default=d.sidecar_url,
        help="that sidecar's HTTP base URL, for its received/lost counts "
        "(comma-separated for several replicas: their counts are summed)",
    )
    p.add_argument(
        "--events",
        type=_argument(settings_mod.at_least_one),
        default=d.events,
        help="calls (hotpath, paced's continuous run), events (burst, ingest); default per mode",
    )
    p.add_argument(
        "--rate",
        type=_argument(settings_mod.rates),
        default=d.rate,
        help="sustained, paced: target rate(s) in events/s, comma-separated "
        "(default: 1k,10k,50k; paced 1k,10k,100k)",
    )
    p.add_argument(
        "--duration",
        type=_argument(settings_mod.positive_seconds),
        default=d.duration,
        help=f"sustained, paced: seconds per rate (default {sustained.DEFAULT_DURATION_S:g}; "
        f"paced {paced.DEFAULT_DURATION_S:g})",
    )
    p.add_argument(
        "--rounds",
        type=_argument(settings_mod.at_least_one),
        default=d.rounds,
        help=f"paced: interleaved rounds, medians reported (default {paced.ROUNDS})",
    )
    p.add_argument(
        "--run-id",
        default=d.run_id,
        help="label for this run's rows (default: the start time)",
    )
    p.add_argument(
        "--results-dir",
        default=d.results_dir,
        help="JSON report and PNG go to RESULTS_DIR/RUN_ID/",
    )
    p.add_argument(
        "--termination-log",
        default=d.termination_log,
        help="write the headline row here as one contract frame",
    )
    p.add_argument(
        "--sndhwm",
        type=_argument(settings_mod.not_negative),
        default=d.sndhwm,
        help="the client's per-socket high-water mark for burst/sustained "
        "(default: derived from its memory budget)",
    )
    p.add_argument(
        "--no-report",
        action="store_true",
        default=d.no_report,
        help="do not send the rows to the sidecar",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        default=d.no_progress,
        help="no progress bars",
    )
    p.add_argument("--no-plot", action="store_true", default=d.no_plot, help="no PNG")
    return p


def _run_mode(mode: str, settings: BenchSettings, ctx: RunContext) -> list[Row]:
    if mode == "hotpath":
        return hotpath.run(ctx, settings.events or hotpath.DEFAULT_CALLS)
    if mode == "burst":
        return burst.run(ctx, settings.events or burst.DEFAULT_EVENTS)
    if mode == "sustained":
        rates = settings.rate or sustained.DEFAULT_RATES
        return sustained.run(ctx, rates, settings.duration or sustained.DEFAULT_DURATION_S)
    if mode == "paced":
        return paced.run(
            ctx,
            settings.rate or paced.DEFAULT_RATES,
            settings.duration or paced.DEFAULT_DURATION_S,
            settings.events or paced.DEFAULT_CONTINUOUS,
            settings.rounds or paced.ROUNDS,
        )
    return ingest.run(ctx, settings.events or ingest.DEFAULT_EVENTS)


def headline(mode: str, rows: Sequence[Row]) -> Row:
    """The project's own variant: what the operator puts in the benchmark's status."""
    wanted = _HEADLINE.get(mode)
    if mode == "paced":
        clients = [r for r in rows if r.result.variant.startswith("client-")]
        busy = [r for r in clients if r.result.variant == "client-busy-10000"]
        return (busy or clients)[0]
    if mode == "sustained":
        clients = [r for r in rows if r.result.variant.startswith("client-")]
        at_10k = [r for r in clients if r.result.target_rate == 10_000]
        return (at_10k or clients)[0]
    return next(r for r in rows if r.result.variant == wanted)


def main(argv: Sequence[str] | None = None) -> int:
    loaded = load_or_exit(settings_mod.load, "trading-bench")
    cli = parser(loaded)
    args = cli.parse_args(argv)
    # The mode is the one argument that is no setting; everything else is in `settings`.
    mode: str = args.mode
    settings = overlay(loaded, args)
    run_id = settings.run_id or time.strftime("%Y%m%d-%H%M%S")
    if not re.fullmatch(LABEL_VALUE_PATTERN, run_id):
        # Checked now: the rows carry it as a label, and the sidecar would refuse them.
        cli.error(f"--run-id must match {LABEL_VALUE_PATTERN}, got {run_id!r}")
    local: LocalSidecar | None = None
    reader: MetricsReader | None
    try:
        if settings.address is None:
            local = LocalSidecar().start()
            address, reader = local.zmq_address, MetricsReader(local.url)
        else:
            address = settings.address
            reader = MetricsReader(settings.sidecar_url) if settings.sidecar_url else None
        ctx = RunContext(
            run_id,
            address,
            reader,
            # A bar redraws with \r: only a terminal shows it; a log would keep every frame.
            progress=not settings.no_progress and sys.stderr.isatty(),
            sndhwm=settings.sndhwm or None,
        )
        rows = _run_mode(mode, settings, ctx)
        checks = targets.CHECKS[mode](rows)
        print(report.table(mode, rows, checks), flush=True)
        if mode == "hotpath":
            print(
                "hotpath: medians only (slices of back-to-back calls, the client settled "
                "between them);\nthe tails (p99, p99.9, max) a running loop sees: "
                "trading-bench paced"
            )
        parameters = {
            "events": settings.events,
            "rate": list(settings.rate) if settings.rate else None,
            "duration": settings.duration,
            "rounds": settings.rounds,
            "address": address,
            "own_sidecar": local is not None,
            "sndhwm": ctx.sndhwm,
        }
        out_dir = Path(settings.results_dir) / run_id
        json_path = out_dir / f"{mode}.json"
        report.write_json(json_path, report.report_dict(mode, run_id, parameters, rows, checks))
        print(f"report: {json_path}")
        if not settings.no_plot:
            png = out_dir / f"{mode}.png"
            report.plot(png, mode, run_id, rows, checks)
            print(f"plot:   {png}")
        if not settings.no_report:
            report.deliver(address, rows)
            if local is not None and MetricsReader(STACK_URL).ready():
                report.deliver(STACK_ZMQ, rows)
                print(f"results also sent to the local stack's sidecar at {STACK_ZMQ}")
        if settings.termination_log:
            report.write_termination_log(Path(settings.termination_log), headline(mode, rows))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"trading-bench {mode}: {exc}", file=sys.stderr)
        return 1
    finally:
        if local is not None:
            local.stop()
    return 0


def console() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console()
