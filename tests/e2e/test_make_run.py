"""`make run` as a user runs it: the whole loop comes up, a trade flows, a killed sidecar
comes back, a second `make run` is refused, Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
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


@pytest.mark.prometheus
@pytest.mark.parametrize("prometheus_port_taken", [False, True], ids=["free", "port-taken"])
def test_make_run_starts_everything_and_ctrl_c_stops_everything(
    prometheus_port_taken: bool,
) -> None:
    zmq_port, http_port, ui_port, prom_port, probe_port = (free_port() for _ in range(5))
    squatter = None
    if prometheus_port_taken:
        squatter = ThreadingHTTPServer(("127.0.0.1", prom_port), _AlwaysReady)
        threading.Thread(target=squatter.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{zmq_port}",
        "TT_SIDECAR_HTTP_PORT": str(http_port),
        "TT_SIDECAR_PROBE_PORT": str(probe_port),
        "TT_PUBLISHER_ZMQ_CONNECT": f"tcp://127.0.0.1:{zmq_port}",
        "TT_PUBLISHER_SIDECAR_URL": f"http://127.0.0.1:{http_port}",
        "TT_PUBLISHER_UI_PORT": str(ui_port),
        "TT_PROMETHEUS_PORT": str(prom_port),
    }
    # Own session: Ctrl-C in a terminal signals the whole foreground process group.
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    assert make.stdout is not None
    stdout = make.stdout
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode(errors="replace") for line in stdout), daemon=True
    )
    reader.start()
    try:
        wait_for(
            lambda: any("Ctrl-C stops everything" in line for line in lines) or make.poll(),
            timeout=120,
            interval=0.2,
            what="make run to print its URLs",
        )
        output = "".join(lines)
        assert make.poll() is None, output
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
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
        reader.join(5)
        stdout.close()
        if squatter is not None:
            squatter.shutdown()
            squatter.server_close()
    output = "".join(lines)
    assert "stopping" in output, output
    assert "Traceback" not in output, output
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
        _port_open(p) for p in (http_port, ui_port, prom_port)
    ):
        time.sleep(0.2)
    still_open = [p for p in (http_port, ui_port, prom_port) if _port_open(p)]
    assert not still_open, f"left running on {still_open}:\n{output}"


def _listening_prometheus_count() -> int:
    """Prometheus processes on this machine (read from /proc; nothing is signalled)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            args
            and args[0].endswith(b"prometheus")
            and any(a.startswith(b"--web.listen-address") for a in args)
        ):
            count += 1
    return count


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
    zmq_port, http_port, ui_port, prom_port, probe_port = (free_port() for _ in range(5))
    env = {
        **os.environ,
        "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{zmq_port}",
        "TT_SIDECAR_HTTP_PORT": str(http_port),
        "TT_SIDECAR_PROBE_PORT": str(probe_port),
        "TT_PUBLISHER_ZMQ_CONNECT": f"tcp://127.0.0.1:{zmq_port}",
        "TT_PUBLISHER_SIDECAR_URL": f"http://127.0.0.1:{http_port}",
        "TT_PUBLISHER_UI_PORT": str(ui_port),
        "TT_PROMETHEUS_PORT": str(prom_port),
    }
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    assert make.stdout is not None
    stdout = make.stdout
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode(errors="replace") for line in stdout), daemon=True
    )
    reader.start()
    try:
        wait_for(
            lambda: any("Ctrl-C stops everything" in line for line in lines) or make.poll(),
            timeout=120,
            interval=0.2,
            what="make run to print its URLs",
        )
        assert make.poll() is None, "".join(lines)
        link = next(line for line in lines if "/graph?" in line).split()[-1]
        assert parse_qs(urlsplit(link).query) == {
            "g0.expr": ["sum by (side) (rate(trades_total[1m]))"],
            "g0.tab": ["0"],
            "g0.range_input": ["15m"],
        }, link

        # A second `make run` with the same settings: one line, non-zero, nothing started.
        prometheus_before = _listening_prometheus_count()
        second = subprocess.run(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = second.stdout + second.stderr
        assert second.returncode != 0, out
        # make's own error line; "make[1]: ***" when this suite itself runs under make test.
        ours = [line for line in out.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
        assert len(ours) == 1, out
        assert f"port {http_port}" in ours[0] and f"http://127.0.0.1:{http_port}" in ours[0], out
        assert "Traceback" not in out and "running" not in out, out
        assert _listening_prometheus_count() == prometheus_before, "second run started one"

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

                def counted() -> bool:
                    text = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
                    return value(parse_metrics(text), "trades_total", side="buy") == 3

                wait_for(counted, timeout=30, what="the 3 queued clicks counted")
                page.screenshot(path=str(tmp_path / "after-restart.png"), full_page=True)
            finally:
                browser.close()
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
        reader.join(5)
        stdout.close()
    output = "".join(lines)
    assert "Traceback" not in output, output
