"""Benchmark configuration, read once from ``TT_BENCH_*`` variables.

Every option of ``trading-bench`` is a field here, so the in-cluster Job can be configured
by environment alone; the command line overlays it (``trading_bench.cli``). The checks
below run on both: a bad value is refused before anything runs, whichever way it came.
Each field's ``doc`` is its row in docs/configuration.md.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from telemetry_contract.ports import DEFAULT_ZMQ_PORT
from telemetry_contract.settings_source import load_settings, setting

PREFIX = "TT_BENCH_"


def rates(text: str) -> tuple[float, ...]:
    """``1000`` or ``1000,10000``: one or more rates; ``0`` (as before lists) means the
    default rates, so callers that pass 0 for "unset" keep working."""
    try:
        parsed = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"not a rate or comma-separated rates: {text!r}") from None
    if not all(math.isfinite(rate) and rate >= 0 for rate in parsed):
        raise ValueError(f"rates must be > 0 (or 0: the defaults), got {text!r}")
    return tuple(rate for rate in parsed if rate > 0)


def _whole_number(text: str, minimum: int) -> int:
    """A whole number >= ``minimum``; the two refusals name which rule was broken."""
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"must be a whole number >= {minimum}, got {text!r}") from None
    if number < minimum:
        raise ValueError(f"must be >= {minimum}, got {text!r}")
    return number


def at_least_one(text: str) -> int:
    """Event counts: a whole number >= 1, refused before anything runs."""
    return _whole_number(text, 1)


def positive_seconds(text: str) -> float:
    """Durations: finite seconds > 0."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"must be seconds > 0, got {text!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"must be seconds > 0, got {text!r}")
    return seconds


def zmq_address(text: str) -> str:
    """``tcp://host:port`` (or ipc:// / inproc://), refused before a socket is made."""
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme in ("ipc", "inproc") and len(text) > len(parsed.scheme) + 3:
        return text
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "tcp" or not parsed.hostname or port is None:
        raise ValueError(
            f"must be a ZeroMQ address like tcp://host:{DEFAULT_ZMQ_PORT}, got {text!r}"
        )
    return text


def http_urls(text: str) -> str:
    """One or more comma-separated ``http(s)://host[:port]`` base URLs."""
    urls = [u.strip() for u in text.split(",")]
    for url in urls:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(
                f"must be http(s)://host:port, comma-separated for several, got {text!r}"
            )
    return text


def not_negative(text: str) -> int:
    """High-water marks: a whole number >= 0 (0: derived from the memory budget)."""
    return _whole_number(text, 0)


@dataclass(frozen=True)
class BenchSettings:
    """What one ``trading-bench`` run measures and where it reports; the mode is an argument."""

    address: str | None = setting(
        None,
        "the sidecar's ZMQ address; unset: a local sidecar is started for the run",
        parse=zmq_address,
    )
    sidecar_url: str | None = setting(
        None,
        "that sidecar's HTTP base URL, for its received/lost counts (comma-separated for "
        "several replicas: their counts are summed)",
        parse=http_urls,
    )
    events: int | None = setting(
        None,
        "calls (hotpath, paced's continuous run), events (burst, ingest); unset: each "
        "mode's default",
        parse=at_least_one,
    )
    rate: tuple[float, ...] | None = setting(
        None,
        "sustained, paced: target rate(s) in events/s, comma-separated; unset or `0`: "
        "1k, 10k, 50k (sustained), 1k, 10k, 100k (paced)",
        parse=rates,
        shown_type="float list",
    )
    duration: float | None = setting(
        None,
        "sustained, paced: seconds per rate (per loop); unset: the mode's default",
        parse=positive_seconds,
    )
    rounds: int | None = setting(
        None,
        "paced: rounds (every variant once per round, in its own process, interleaved; "
        "medians reported); unset: 3",
        parse=at_least_one,
    )
    run_id: str | None = setting(
        None, "label for this run's rows; unset: the start time", shown_default="start time"
    )
    results_dir: str = setting("results", "the JSON report and PNG go to RESULTS_DIR/RUN_ID/")
    termination_log: str | None = setting(
        None, "write the headline row here as one contract frame (the Job's termination log)"
    )
    sndhwm: int | None = setting(
        None,
        "the client's per-socket high-water mark for burst/sustained; unset or `0`: derived "
        "from its memory budget",
        parse=not_negative,
    )
    no_report: bool = setting(False, "do not send the rows to the sidecar")
    no_progress: bool = setting(False, "no progress bars")
    no_plot: bool = setting(False, "no PNG")


def load(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> BenchSettings:
    return load_settings(BenchSettings, PREFIX, environ, dotenv)
