"""`make run` as a user runs it: the whole loop comes up, a trade flows, a killed sidecar
comes back, a second `make run` is refused, Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx2 as httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from support import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port, parse_metrics, value, wait_for
from trading_publisher.client import Publisher


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _AlwaysReady(BaseHTTPRequestHandler):
    """Stands in for another Prometheus (Debian's own service) already on the port."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"someone else's server")

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Ports:
    zmq: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    ui: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)
    probe: int = field(default_factory=free_port)
    #: Its own state folder: the checkout's state/ belongs to the developer's `make run`.
    state: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="tt-make-run-state-"))

    def env(self) -> dict[str, str]:
        """The settings that move the whole loop onto these ports (as a user would)."""
        return {
            **os.environ,
            "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{self.zmq}",
            "TT_SIDECAR_HTTP_PORT": str(self.http),
            "TT_SIDECAR_PROBE_PORT": str(self.probe),
            "TT_PUBLISHER_ZMQ_CONNECT": f"tcp://127.0.0.1:{self.zmq}",
            "TT_PUBLISHER_SIDECAR_URL": f"http://127.0.0.1:{self.http}",
            "TT_PUBLISHER_UI_PORT": str(self.ui),
            "TT_PROMETHEUS_PORT": str(self.prometheus),
            "TT_SIDECAR_STATE_DIR": self.state,
        }


class MakeRun:
    """``make run`` in its own session, its output collected line by line as it comes.

    Its own session because Ctrl-C in a terminal signals the whole foreground process
    group: :meth:`interrupt` does the same with SIGINT to the group.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.make = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        assert self.make.stdout is not None
        self.stdout = self.make.stdout
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(line.decode(errors="replace") for line in self.stdout),
            daemon=True,
        )
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_up(self) -> None:
        wait_for(
            lambda: (
                any("Ctrl-C stops everything" in line for line in self.lines) or self.make.poll()
            ),
            timeout=120,
            interval=0.2,
            what="make run to print its URLs",
        )
        assert self.make.poll() is None, self.output

    def interrupt(self) -> None:
        """Ctrl-C, then wait up to 60 s for everything to stop (SIGKILL and fail after)."""
        if self.make.poll() is None:
            os.killpg(self.make.pid, signal.SIGINT)
        try:
            self.make.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.make.pid, signal.SIGKILL)
            raise
        finally:
            self.reader.join(5)
            self.stdout.close()


@pytest.mark.prometheus
@pytest.mark.parametrize("prometheus_port_taken", [False, True], ids=["free", "port-taken"])
def test_make_run_starts_everything_and_ctrl_c_stops_everything(
    prometheus_port_taken: bool,
) -> None:
    ports = Ports()
    zmq_port, http_port, ui_port, prom_port = ports.zmq, ports.http, ports.ui, ports.prometheus
    squatter = None
    if prometheus_port_taken:
        squatter = ThreadingHTTPServer(("127.0.0.1", prom_port), _AlwaysReady)
        threading.Thread(target=squatter.serve_forever, daemon=True).start()
    run = MakeRun(ports.env())
    try:
        run.wait_until_up()
        output = run.output
        if prometheus_port_taken:
            moved = re.search(rf"port {prom_port} is taken .*; using (\d+)", output)
            assert moved, output
            prom_port = int(moved.group(1))
        for port in (http_port, ui_port, prom_port):
            assert f":{port}" in output, (port, output)

        assert httpx.get(f"http://127.0.0.1:{http_port}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ui_port}/_stcore/health").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{prom_port}/-/ready").status_code == 200

        with Publisher(f"tcp://127.0.0.1:{zmq_port}", source="make-run") as pub:
            assert pub.trade("buy", 3.0)
        query = f"http://127.0.0.1:{prom_port}/api/v1/query?query=" + quote(
            'sum(volume_total{side="buy"})'
        )

        def prometheus_sees_the_trade() -> bool:
            result = httpx.get(query).json()["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == 3.0

        wait_for(prometheus_sees_the_trade, timeout=30, what="the trade in Prometheus")
    finally:
        try:
            run.interrupt()
        finally:
            if squatter is not None:
                squatter.shutdown()
                squatter.server_close()
    output = run.output
    assert "stopping" in output, output
    assert "Traceback" not in output, output
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
        _port_open(p) for p in (http_port, ui_port, prom_port)
    ):
        time.sleep(0.2)
    still_open = [p for p in (http_port, ui_port, prom_port) if _port_open(p)]
    assert not still_open, f"left running on {still_open}:\n{output}"


def _pids_of(script: str, env_var: str, env_value: str) -> list[int]:
    """Processes running ``script`` with ``env_var=env_value`` in their environment."""
    found = []
    wanted = f"{env_var}={env_value}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(script.encode()) for a in args[:2]) and wanted in environ:
            found.append(int(proc.name))
    return found


@pytest.mark.prometheus
@pytest.mark.browser
def test_second_make_run_is_refused_and_a_killed_sidecar_comes_back(tmp_path: Path) -> None:
    ports = Ports()
    http_port, ui_port = ports.http, ports.ui
    env = ports.env()
    run = MakeRun(env)
    lines = run.lines
    try:
        run.wait_until_up()
        link = next(line for line in lines if "/graph?" in line).split()[-1]
        assert parse_qs(urlsplit(link).query) == {
            "g0.expr": ["sum by (side) (rate(trades_total[1m]))"],
            "g0.tab": ["0"],
            "g0.range_input": ["15m"],
        }, link

        # A second `make run` with the same settings: one line, non-zero, nothing started.
        # Prometheus processes of this run's settings (other suites may run their own).
        prometheus_before = _pids_of("prometheus", "TT_PROMETHEUS_PORT", str(ports.prometheus))
        assert len(prometheus_before) == 1
        second = subprocess.run(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = second.stdout + second.stderr
        # README: "the script exits 1, so `make` reports `Error 1` and itself exits 2".
        assert second.returncode == 2, out
        assert "Error 1" in out, out
        # make's own error line; "make[1]: ***" when this suite itself runs under make test.
        ours = [line for line in out.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
        assert len(ours) == 1, out
        assert f"port {http_port}" in ours[0] and f"http://127.0.0.1:{http_port}" in ours[0], out
        assert "Traceback" not in out and "running" not in out, out
        after = _pids_of("prometheus", "TT_PROMETHEUS_PORT", str(ports.prometheus))
        assert after == prometheus_before, "the second run started a Prometheus"

        # Kill the sidecar: the UI warns, clicks queue, the sidecar comes back by itself,
        # the warning clears and the queued clicks are counted.
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{ui_port}")
                buy = page.get_by_role("button", name="Buy", exact=True)
                expect(buy).to_be_visible(timeout=20_000)
                warning = page.get_by_text("events may be dropped")
                expect(warning).to_have_count(0, timeout=20_000)

                def buys() -> float:
                    text = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
                    return value(parse_metrics(text), "trades_total", side="buy")

                # One trade before the kill; a /metrics answer means it is on disk.
                buy.click()
                wait_for(lambda: buys() == 1, timeout=30, what="the first click counted")
                # ... and the page has read it: a restart is noticed against a read of the
                # process before it (a page that never saw the old one cannot tell).
                last = page.get_by_text(re.compile(r"^Last trade: \d"))
                expect(last).to_be_visible(timeout=20_000)

                (pid,) = _pids_of("trading-sidecar", "TT_SIDECAR_HTTP_PORT", str(http_port))
                os.kill(pid, signal.SIGKILL)
                expect(warning).to_be_visible(timeout=20_000)
                for _ in range(3):
                    buy.click()
                wait_for(
                    lambda: any("sidecar restarted" in line for line in lines),
                    timeout=60,
                    what="the restart log line",
                )
                assert any("sidecar exited with code -9" in line for line in lines), lines
                wait_for(
                    lambda: httpx.get(f"http://127.0.0.1:{http_port}/healthz").status_code == 200,
                    timeout=60,
                    what="the sidecar back",
                )
                expect(warning).to_have_count(0, timeout=20_000)

                # make run keeps the sidecar's state: the restarted one goes on from 1.
                wait_for(lambda: buys() == 4, timeout=30, what="1 kept + 3 queued clicks counted")
                notice = page.get_by_text("The sidecar restarted")
                expect(notice).to_contain_text("restored from saved state", timeout=20_000)
                assert any(Path(ports.state).iterdir()), "nothing in the state folder"
                page.screenshot(path=str(tmp_path / "after-restart.png"), full_page=True)
            finally:
                browser.close()
    finally:
        run.interrupt()
    output = run.output
    assert "Traceback" not in output, output
