"""``make run``: the whole loop on this machine — sidecar, Streamlit UI, and Prometheus.

Each part is the same console script the container images run, started as a child
process. Prometheus is optional (started only when the ``prometheus`` binary is on
PATH) and keeps its data in a temporary directory, so a run leaves nothing behind.
Ctrl-C, SIGTERM, or any child dying stops everything, in reverse start order.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

# Run as `python scripts/run_local.py`, so this folder is on sys.path already.
from prometheus_local import start_prometheus, wait_ready, write_config
from telemetry_contract.settings_source import load_settings
from telemetry_contract.transport import DEFAULT_PROMETHEUS_PORT
from trading_publisher import settings as publisher_settings
from trading_sidecar import settings as sidecar_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROMETHEUS_TEMPLATE = ROOT / "deploy" / "prometheus" / "prometheus.yml"


@dataclass(frozen=True)
class _PromSettings:
    """``TT_PROMETHEUS_PORT`` picks the local Prometheus port."""

    port: int = DEFAULT_PROMETHEUS_PORT


class Stop(Exception):
    """Raised from the signal handler so the main loop unwinds into the cleanup."""


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait(
    check: Callable[[], bool], child: subprocess.Popen[bytes], what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"{what} exited with code {child.returncode} during start-up")
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not become ready within {timeout:.0f}s")


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for name, child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                print(f"{name} ignored SIGTERM for 10 s; killing it", file=sys.stderr)
                child.kill()
                child.wait()


def main() -> int:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Stop

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    sidecar = sidecar_settings.load()
    publisher = publisher_settings.load()
    prom_port = load_settings(_PromSettings, "TT_PROMETHEUS_").port
    # A listen-on-everything host is not an address to connect to; loopback reaches it.
    local_host = "127.0.0.1" if sidecar.http_host in ("0.0.0.0", "::", "") else sidecar.http_host
    sidecar_url = f"http://{local_host}:{sidecar.http_port}"
    ui_url = f"http://{publisher.ui_host}:{publisher.ui_port}"
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    urls = [
        ("Trading UI (Streamlit)", ui_url),
        ("Sidecar metrics", f"{sidecar_url}/metrics"),
        ("Sidecar health", f"{sidecar_url}/healthz"),
        ("Sidecar ZeroMQ PULL", sidecar.zmq_bind),
    ]
    workdir = Path(tempfile.mkdtemp(prefix="trading-telemetry-run-"))
    try:
        child = subprocess.Popen([str(BIN / "trading-sidecar")])
        children.append(("sidecar", child))
        _wait(lambda: _http_ok(f"{sidecar_url}/healthz"), child, "sidecar", 30)

        child = subprocess.Popen([str(BIN / "trading-ui")])
        children.append(("ui", child))
        _wait(lambda: _http_ok(f"{ui_url}/_stcore/health"), child, "Streamlit UI", 60)

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
        print("Ctrl-C stops everything.\n")
        sys.stdout.flush()

        while True:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with code {child.returncode}; stopping the rest",
                          file=sys.stderr)  # fmt: skip
                    return 1
            time.sleep(0.5)
    except Stop:
        print("\nstopping…")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(children)
        for name, child in children:
            if name == "prometheus" and child.returncode not in (0, None):
                _print_log_tail(workdir / "prometheus.log")
        shutil.rmtree(workdir, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _print_log_tail(log_path: Path, lines: int = 15) -> None:
    if log_path.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
        print("prometheus log (last lines):\n  " + "\n  ".join(tail), file=sys.stderr)


def _start_prometheus(
    children: list[tuple[str, subprocess.Popen[bytes]]],
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
    if not _port_free(port):
        moved = _free_port()
        notes.append(("Note", f"port {port} is taken (another Prometheus?); using {moved}"))
        port = moved
    config = write_config(
        PROMETHEUS_TEMPLATE, workdir / "prometheus.yml", target=f"{sidecar_host}:{sidecar_port}"
    )
    log_path = workdir / "prometheus.log"
    child = start_prometheus(config, port, workdir / "data", log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process=child)
    except (RuntimeError, TimeoutError) as exc:
        print(f"Prometheus did not start ({exc}); running without it", file=sys.stderr)
        _print_log_tail(log_path)
        child.kill()
        child.wait()
        return [("Prometheus", "failed to start — see the log lines above")]
    children.append(("prometheus", child))
    return [
        *notes,
        ("Prometheus", f"{url}/graph?g0.expr=sum+by+(side)+(trades_total)"),
        ("Prometheus log", str(log_path)),
    ]


if __name__ == "__main__":
    sys.exit(main())
