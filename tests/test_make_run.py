"""`make run` as a user runs it: the whole loop comes up, a trade flows, Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx2 as httpx
import pytest
from support import ROOT, free_port, wait_for
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
