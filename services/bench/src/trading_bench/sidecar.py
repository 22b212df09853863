"""The sidecar under test: a real ``trading-sidecar`` process, and its /metrics read back.

Without ``--address`` the benchmark starts its own sidecar on free loopback ports, so a
run on a laptop needs nothing else running and measures a sidecar nothing else feeds.
With ``--address`` (the in-cluster Job) it uses that one, and ``--sidecar-url`` is how
it learns what the sidecar counted. Every benchmark event carries a ``src`` starting
with ``BENCH_SOURCE_PREFIX``, which the sidecar counts in its ``telemetry_benchmark_*``
series only: the counts read here are those, so the trading series of a production
sidecar never see benchmark trades and other publishers' traffic never mixes into a
benchmark's received/lost/e2e. They are process-wide all the same, so they are read as
before/after deltas (two benchmarks running at once against one sidecar would still
see each other's events).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from telemetry_contract import metric_names as names
from trading_devkit.processes import LOOPBACK_ANY_PORT, Process, ProcessFailed, free_port, http_ok
from trading_publisher.metrics_reader import Samples, scrape, sum_samples


@dataclass(frozen=True)
class Counts:
    """What the sidecar had counted of benchmark traffic at one scrape."""

    #: Benchmark trades counted (``telemetry_benchmark_trades_received_total``).
    received: float
    #: Benchmark events missing from seq gaps (``telemetry_benchmark_events_lost_total``).
    lost: float
    #: ``trades_total`` over both sides: benchmark traffic must never move it.
    trading_trades: float
    #: Cumulative benchmark e2e-latency buckets: (upper bound in seconds, count), +Inf last.
    e2e_buckets: tuple[tuple[float, float], ...]

    def minus(self, before: Counts) -> Counts:
        return Counts(
            self.received - before.received,
            self.lost - before.lost,
            self.trading_trades - before.trading_trades,
            tuple(
                (bound, count - old)
                for (bound, count), (_, old) in zip(
                    self.e2e_buckets, before.e2e_buckets, strict=True
                )
            ),
        )


def counts_from(samples: Samples) -> Counts:
    """The benchmark's series out of one scrape (read by the product's one reader)."""
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == names.BENCH_E2E_LATENCY + "_bucket"
    )
    return Counts(
        sum_samples(samples, names.BENCH_TRADES),
        sum_samples(samples, names.BENCH_LOST),
        sum_samples(samples, names.TRADES),
        tuple(buckets),
    )


class MetricsReader:
    """Reads benchmark counts from one or several sidecars (``,``-separated URLs: replicas
    behind a Service are each read and summed, never one picked at random).
    """

    def __init__(self, base_url: str) -> None:
        self.urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        self.base_url = self.urls[0] if self.urls else base_url.rstrip("/")

    def counts(self) -> Counts:
        total: Samples = {}
        for url in self.urls:
            for key, v in scrape(url, timeout=5).items():
                total[key] = total.get(key, 0.0) + v
        return counts_from(total)

    def ready(self) -> bool:
        return http_ok(f"{self.base_url}/readyz")

    def settle(self, expected_received: float, timeout_s: float, quiet_s: float = 1.0) -> Counts:
        """Wait until ``received`` reaches ``expected_received`` or stops moving.

        Stopping early on a quiet counter matters when events were really lost: waiting
        for a number that never comes would only hide the loss behind a timeout.
        """
        deadline = time.monotonic() + timeout_s
        last = self.counts()
        moved_at = time.monotonic()
        while last.received < expected_received and time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.counts()
            if now.received != last.received:
                moved_at = time.monotonic()
            elif time.monotonic() - moved_at > quiet_s:
                return now
            last = now
        return last


def _sidecar_command() -> list[str]:
    script = Path(sys.executable).parent / "trading-sidecar"
    if script.exists():
        return [str(script)]
    found = shutil.which("trading-sidecar")
    if found:
        return [found]
    return [sys.executable, "-m", "trading_sidecar.main"]


def bound_zmq_address(url: str) -> str:
    """The address the sidecar at ``url`` has bound, from its ``GET /``: after a bind on
    ``:*`` this is where ZeroMQ's chosen port is read back."""
    with urllib.request.urlopen(f"{url}/", timeout=5) as response:
        return str(json.load(response)["zmq"])


class LocalSidecar:
    """A ``trading-sidecar`` child process on loopback, stopped with SIGTERM.

    ZeroMQ binds ``tcp://127.0.0.1:*`` and the address it chose is read back from the
    sidecar's ``GET /``, so two benchmarks (or a benchmark and the tests) never race for a
    port; only the HTTP port is picked in advance.
    """

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        #: Settings on top of the defaults below (e.g. CURVE keys for trading_bench.curve).
        self.extra_env = dict(extra_env or {})
        self.zmq_address = ""
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self._logs = tempfile.TemporaryDirectory(prefix="trading-bench-sidecar-")
        self._process: Process | None = None

    def start(self, timeout_s: float = 30.0) -> LocalSidecar:
        env = {
            "TT_SIDECAR_ZMQ_BIND": LOOPBACK_ANY_PORT,
            "TT_SIDECAR_HTTP_HOST": "127.0.0.1",
            "TT_SIDECAR_HTTP_PORT": str(self.http_port),
            # No probe-only port: the benchmark reads /healthz on the main port, and a
            # fixed default port would collide between sidecars started side by side.
            "TT_SIDECAR_PROBE_PORT": "0",
            "TT_SIDECAR_LOG_LEVEL": "warning",
            **self.extra_env,
        }
        log_path = Path(self._logs.name) / "sidecar.log"
        self._process = Process.start(_sidecar_command(), log_path, env, name="trading-sidecar")
        try:
            self._process.wait_http_ok(f"{self.url}/readyz", timeout_s)
            self.zmq_address = bound_zmq_address(self.url)
        except ProcessFailed as exc:
            self.stop()
            raise RuntimeError(f"the benchmark's sidecar did not start: {exc}") from None
        return self

    def log(self) -> str:
        return self._process.log() if self._process is not None else ""

    def stop(self) -> int | None:
        code = None if self._process is None else self._process.stop()
        self._logs.cleanup()
        return code

    def __enter__(self) -> LocalSidecar:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
