"""``make run``: the whole loop on this machine — sidecar, Streamlit UI, and Prometheus.

Each part is the same console script the container images run, started as a child
process. Prometheus is optional (started only when the ``prometheus`` binary is on
PATH) and keeps its data in a temporary directory, so a run leaves nothing behind.

It supervises, as a process manager would: a child that dies is restarted after a
short backoff (1 s, doubling to 10 s, back to 1 s once it has stayed up for a while),
with one log line each time. That is what makes the "sidecar is down" story visible on a
laptop: the UI warns, queues, and delivers when the sidecar is back, instead of the
whole loop being torn down. Ctrl-C or SIGTERM stops everything, in reverse start order.

The sidecar keeps its state in ``state/`` inside the checkout (git-ignored) unless
``TT_SIDECAR_STATE_DIR`` says elsewhere, so a supervised restart keeps the totals.

Before starting anything it checks its ports: when one is taken (usually by another
``make run``) it says which, in one line, and exits 1 with nothing started (``make``
itself then exits 2).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

# Run as `python scripts/run_local.py`, so this folder is on sys.path already.
from prometheus_local import start_prometheus, wait_ready, write_config
from telemetry_contract.ports import DEFAULT_PROMETHEUS_PORT, LOOPBACK
from telemetry_contract.settings_source import load_settings, setting
from telemetry_contract.settings_source import port as port_number
from trading_devkit.processes import free_port, http_ok, terminate
from trading_publisher import settings as publisher_settings
from trading_sidecar import settings as sidecar_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROMETHEUS_TEMPLATE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
#: The sidecar's state folder when TT_SIDECAR_STATE_DIR is unset (``/state/`` is git-ignored).
DEFAULT_STATE_DIR = ROOT / "state"
#: The graph the printed Prometheus link opens: trades per second by side, 15 minutes.
PROMETHEUS_GRAPH_EXPR = "sum by (side) (rate(trades_total[1m]))"
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 10.0
#: A child that stayed up this long is healthy again: its next restart waits BACKOFF_FIRST_S.
STABLE_AFTER_S = 30.0


PROMETHEUS_PREFIX = "TT_PROMETHEUS_"


@dataclass(frozen=True)
class LocalPrometheusSettings:
    """The Prometheus ``make run`` starts when the binary is installed (the fifth prefix)."""

    port: int = setting(
        DEFAULT_PROMETHEUS_PORT,
        "port of the Prometheus that `make run` starts when installed",
        parse=port_number,
    )


def load_prometheus_settings(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> LocalPrometheusSettings:
    return load_settings(LocalPrometheusSettings, PROMETHEUS_PREFIX, environ, dotenv)


class Stop(Exception):
    """Raised from the signal handler so the main loop unwinds into the cleanup."""


def log(message: str) -> None:
    print(f"[make run] {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    """One supervised process: how to start it, and its restart bookkeeping."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_FIRST_S
    restart_at: float | None = None
    restarts: int = field(default=0)

    def launch(self) -> None:
        self.process = self.start()
        self.started_at = time.monotonic()
        self.restart_at = None

    def supervise(self, now: float) -> None:
        """Restart after a backoff when the process has exited; one log line each."""
        if self.process is None:
            return
        if self.restart_at is None:
            code = self.process.poll()
            if code is None:
                return
            if now - self.started_at >= STABLE_AFTER_S:
                self.backoff_s = BACKOFF_FIRST_S
            self.restart_at = now + self.backoff_s
            log(f"{self.name} exited with code {code}; restarting in {self.backoff_s:g} s")
            self.backoff_s = min(self.backoff_s * 2, BACKOFF_MAX_S)
        elif now >= self.restart_at:
            self.restarts += 1
            self.launch()
            log(f"{self.name} restarted (restart #{self.restarts}, pid {self.process.pid})")

    def stop(self) -> None:
        if self.process is not None:
            terminate(
                self.process,
                10,
                on_kill=lambda: log(f"{self.name} ignored SIGTERM for 10 s; killing it"),
            )


def _wait(check: Callable[[], bool], child: Child, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.process is not None
        if child.process.poll() is not None:
            raise SystemExit(f"{what} exited with code {child.process.returncode} during start-up")
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not become ready within {timeout:.0f}s")


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (a bind there fails)."""
    bind_host = "" if host in ("*", "0.0.0.0", "::") else host
    with socket.socket() as probe:
        try:
            probe.bind((bind_host, port))
        except OSError:
            return True
    return False


def zmq_host_port(address: str) -> tuple[str, int] | None:
    """``tcp://host:port`` → (host, port); other transports have no port to check."""
    parsed = urllib.parse.urlsplit(address)
    if parsed.scheme != "tcp" or parsed.port is None:
        return None
    return (parsed.hostname or "*"), parsed.port


def first_taken(ports: list[tuple[str, str, int, str]]) -> str | None:
    """The one line to print for the first taken port, or None when all are free."""
    for what, host, port, url in ports:
        if port_taken(host, port):
            return (
                f"make run: port {port} ({what}, {url}) is already in use — another "
                f"`make run`? Stop it, or pick other ports (see .env.sample)."
            )
    return None


def prometheus_link(base_url: str) -> str:
    query = urllib.parse.urlencode(
        {"g0.expr": PROMETHEUS_GRAPH_EXPR, "g0.tab": "0", "g0.range_input": "15m"}
    )
    return f"{base_url}/graph?{query}"


def main() -> int:
    try:
        sidecar = sidecar_settings.load()
        publisher = publisher_settings.load()
        prom_port = load_prometheus_settings().port
    except ValueError as exc:
        print(f"make run: bad setting: {exc}", file=sys.stderr)
        return 2
    # A listen-on-everything host is not an address to connect to; loopback reaches it.
    local_host = LOOPBACK if sidecar.http_host in ("0.0.0.0", "::", "") else sidecar.http_host
    sidecar_url = f"http://{local_host}:{sidecar.http_port}"
    ui_url = f"http://{publisher.ui_host}:{publisher.ui_port}"
    ports = [
        ("sidecar HTTP", sidecar.http_host, sidecar.http_port, f"{sidecar_url}/metrics"),
        ("Streamlit UI", publisher.ui_host, publisher.ui_port, ui_url),
    ]
    if sidecar.probe_port:  # off unless set (the chart sets it)
        probe_url = f"http://{local_host}:{sidecar.probe_port}/healthz"
        ports.insert(1, ("sidecar probes", sidecar.http_host, sidecar.probe_port, probe_url))
    zmq = zmq_host_port(sidecar.zmq_bind)
    if zmq is not None:
        ports.append(("sidecar ZeroMQ", zmq[0], zmq[1], sidecar.zmq_bind))
    taken = first_taken(ports)
    if taken is not None:
        print(taken, file=sys.stderr)
        return 1

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Stop

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children: list[Child] = []
    urls = [
        ("Trading UI (Streamlit)", ui_url),
        ("Sidecar metrics", f"{sidecar_url}/metrics"),
        ("Sidecar health", f"{sidecar_url}/healthz"),
        ("Sidecar ZeroMQ PULL", sidecar.zmq_bind),
    ]
    state_dir = sidecar.state_dir or str(DEFAULT_STATE_DIR)
    urls.append(("Sidecar state", f"{state_dir} (totals survive a restart)"))
    sidecar_env = {**os.environ, "TT_SIDECAR_STATE_DIR": state_dir}
    workdir = Path(tempfile.mkdtemp(prefix="trading-telemetry-run-"))
    try:
        child = Child(
            "sidecar", lambda: subprocess.Popen([str(BIN / "trading-sidecar")], env=sidecar_env)
        )
        children.append(child)
        child.launch()
        _wait(lambda: http_ok(f"{sidecar_url}/healthz"), child, "sidecar", 30)

        child = Child("ui", lambda: subprocess.Popen([str(BIN / "trading-ui")]))
        children.append(child)
        child.launch()
        _wait(lambda: http_ok(f"{ui_url}/_stcore/health"), child, "Streamlit UI", 60)

        if shutil.which("prometheus"):
            urls.extend(
                _start_prometheus(children, workdir, prom_port, local_host, sidecar.http_port)
            )
        else:
            urls.append(("Prometheus", "not installed (apt-get install prometheus) — skipped"))

        width = max(len(name) for name, _ in urls)
        print("\ntrading-telemetry is running:\n")
        for name, url in urls:
            print(f"  {name:<{width}}  {url}")
        print("\nOpen the UI, click Buy or Sell, and watch the totals move.")
        print("A child that dies is restarted. Ctrl-C stops everything.\n")
        sys.stdout.flush()

        while True:
            now = time.monotonic()
            for child in children:
                child.supervise(now)
            time.sleep(0.2)
    except Stop:
        print("\nstopping…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(children):
            child.stop()
        for child in children:
            if (
                child.name == "prometheus"
                and child.process is not None
                and child.process.returncode not in (0, None)
            ):
                _print_log_tail(workdir / "prometheus.log")
        shutil.rmtree(workdir, ignore_errors=True)


def _print_log_tail(log_path: Path, lines: int = 15) -> None:
    if log_path.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
        print("prometheus log (last lines):\n  " + "\n  ".join(tail), file=sys.stderr)


def _start_prometheus(
    children: list[Child],
    workdir: Path,
    port: int,
    sidecar_host: str,
    sidecar_port: int,
) -> list[tuple[str, str]]:
    """Start the optional Prometheus; trouble with it never stops the rest of the loop.

    Debian's prometheus package runs its own service on :9090 on a systemd host, so a
    taken port is the common case, not an error: use a free one and say so.
    """
    notes: list[tuple[str, str]] = []
    if port_taken("127.0.0.1", port):
        moved = free_port()
        notes.append(("Note", f"port {port} is taken (another Prometheus?); using {moved}"))
        port = moved
    config = write_config(
        PROMETHEUS_TEMPLATE, workdir / "prometheus.yml", target=f"{sidecar_host}:{sidecar_port}"
    )
    log_path = workdir / "prometheus.log"
    child = Child("prometheus", lambda: start_prometheus(config, port, workdir / "data", log_path))
    child.launch()
    assert child.process is not None
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process=child.process)
    except (RuntimeError, TimeoutError) as exc:
        print(f"Prometheus did not start ({exc}); running without it", file=sys.stderr)
        _print_log_tail(log_path)
        child.process.kill()
        child.process.wait()
        return [("Prometheus", "failed to start — see the log lines above")]
    children.append(child)
    return [
        *notes,
        ("Prometheus", prometheus_link(url)),
        ("Prometheus log", str(log_path)),
    ]


if __name__ == "__main__":
    sys.exit(main())
