"""Every HTTP server the project runs, as a hostile or careless neighbour meets it.

- A flood of /metrics scrapers must not keep liveness from answering (the kubelet restarts
  a pod after three missed probes).
- Connections that never finish a request (slowloris) or sit idle are closed.
- Two local sidecars start side by side with only their own ports set, and a port that
  is already taken is one line naming the setting that moves it.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from support import BIN, ROOT, Proc, Sidecar, free_port, start_process, wait_http_ok
from telemetry_contract.http_server import IDLE_TIMEOUT_S, REQUEST_TIMEOUT_S

#: Scrapers in the flood (what the issue saw break liveness) and how long it lasts.
FLOOD_CONNECTIONS = 2000
FLOOD_SECONDS = 8.0
#: The kubelet's probe must be answered within this under the flood (its timeout is 1 s).
PROBE_BOUND_S = 1.0
#: /healthz on the main port shares its loop with the flood: fair, but behind it.
MAIN_BOUND_S = 5.0


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    running = Sidecar().start(tmp_path_factory.mktemp("http-limits"))
    try:
        yield running
    finally:
        assert running.stop() == 0, running.proc.log() if running.proc else ""


def _timed_get(url: str) -> tuple[int, float]:
    start = time.monotonic()
    try:
        status = httpx.get(url, timeout=30).status_code
    except httpx.TimeoutException:
        status = 0
    return status, time.monotonic() - start


def test_liveness_answers_under_a_flood_of_scrapers(sidecar: Sidecar) -> None:
    flood = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "http_flood.py"),
            f"{sidecar.url}/metrics",
            "--connections",
            str(FLOOD_CONNECTIONS),
            "--seconds",
            str(FLOOD_SECONDS),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flood.stdout is not None
        assert flood.stdout.readline() == "flooding\n", "the flood never got going"
        probe = f"http://127.0.0.1:{sidecar.probe_port}/healthz"
        probes: list[tuple[int, float]] = []
        mains: list[tuple[int, float]] = []
        while flood.poll() is None and len(probes) < 8:
            probes.append(_timed_get(probe))
            mains.append(_timed_get(f"{sidecar.url}/healthz"))
            time.sleep(0.2)
        out = flood.stdout.read()
        flood.wait(120)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
        if flood.stdout is not None:
            flood.stdout.close()
    counts = json.loads(out)["counts"]
    assert all(status == 200 for status, _ in probes + mains), (probes, mains)
    assert max(t for _, t in probes) < PROBE_BOUND_S, f"probe port under the flood: {probes}"
    assert max(t for _, t in mains) < MAIN_BOUND_S, f"HTTP port under the flood: {mains}"
    assert len(probes) >= 3, f"the flood ended before /healthz was polled: {counts}"
    # The flood was real and scrapes were still served, each either rendered or refused.
    assert counts.get("503", 0) > FLOOD_CONNECTIONS and counts.get("200", 0) > 0, counts
    assert sidecar.healthy() and sidecar.scrape()


@pytest.fixture(scope="module")
def publisher_http(tmp_path_factory: pytest.TempPathFactory, sidecar: Sidecar) -> Iterator[str]:
    port = free_port()
    proc = start_process(
        [str(BIN / "trading-publisher-http")],
        tmp_path_factory.mktemp("publisher-http") / "publisher-http.log",
        {"TT_PUBLISHER_ZMQ_CONNECT": sidecar.zmq_address, "TT_PUBLISHER_HTTP_PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc, f"{url}/healthz")
        yield url
    finally:
        assert proc.stop() == 0, proc.log()


def _open(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def _idle_after_a_response(port: int) -> socket.socket:
    sock = _open(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "no answer to a complete request"
    return sock


def _wait_all_closed(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Wait until the server has hung up every socket; returns those still open."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_ = set(socks)
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)  # for mypy: registered as sockets
            try:
                data = ready.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(ready)
                open_.discard(ready)
    selector.close()
    return list(open_)


def test_slow_silent_and_idle_connections_are_closed_on_every_server(
    sidecar: Sidecar, publisher_http: str
) -> None:
    """1,000 held connections stayed open forever; now each server hangs up on them."""
    servers = {
        "sidecar HTTP": sidecar.http_port,
        "sidecar probe": sidecar.probe_port,
        "publisher HTTP": int(publisher_http.rsplit(":", 1)[1]),
    }
    held: dict[str, list[socket.socket]] = {}
    for name, port in servers.items():
        held[name] = (
            [_open(port, b"") for _ in range(150)]  # connect, say nothing
            + [_open(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n") for _ in range(150)]
            + [_open(port, b"POST /trade/buy HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")]
            + [_idle_after_a_response(port) for _ in range(5)]
        )
    start = time.monotonic()
    every = [sock for socks in held.values() for sock in socks]
    try:
        still_open = _wait_all_closed(every, REQUEST_TIMEOUT_S + IDLE_TIMEOUT_S + 30)
        took = time.monotonic() - start
        by_server = {
            name: sum(sock in still_open for sock in socks) for name, socks in held.items()
        }
        assert not still_open, f"still open after {took:.0f}s: {by_server}"
    finally:
        for sock in every:
            sock.close()
    # And every server still serves.
    assert sidecar.healthy()
    assert httpx.get(f"http://127.0.0.1:{sidecar.probe_port}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{publisher_http}/healthz", timeout=5).status_code == 200


# --- two local sidecars, and every listener's clash in one line ---------------------------


def _run(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TT_")}, **env},
    )


def _only_ports(zmq: str, http: int) -> dict[str, str]:
    return {"TT_SIDECAR_ZMQ_BIND": zmq, "TT_SIDECAR_HTTP_PORT": str(http)}


def test_two_local_sidecars_start_side_by_side_and_a_clash_names_the_setting(
    tmp_path: Path,
) -> None:
    started: list[tuple[Proc, int, str]] = []
    try:
        for n in range(2):
            http, zmq = free_port(), f"tcp://127.0.0.1:{free_port()}"
            proc = start_process(
                [str(BIN / "trading-sidecar")],
                tmp_path / f"sidecar-{n}.log",
                {
                    **{k: "" for k in os.environ if k.startswith("TT_SIDECAR_")},
                    **_only_ports(zmq, http),
                },
            )
            wait_http_ok(proc, f"http://127.0.0.1:{http}/healthz")
            started.append((proc, http, zmq))
        (_, http, zmq) = started[0]
        fresh_zmq = f"tcp://127.0.0.1:{free_port()}"
        clashes = [
            ("trading-sidecar", _only_ports(fresh_zmq, http), "TT_SIDECAR_HTTP_PORT", str(http)),
            ("trading-sidecar", _only_ports(zmq, free_port()), "TT_SIDECAR_ZMQ_BIND", zmq),
            (
                "trading-sidecar",
                {**_only_ports(fresh_zmq, free_port()), "TT_SIDECAR_PROBE_PORT": str(http)},
                "TT_SIDECAR_PROBE_PORT",
                str(http),
            ),
            ("trading-publisher-http", {"TT_PUBLISHER_HTTP_PORT": str(http)}, "", str(http)),
            ("trading-ui", {"TT_PUBLISHER_UI_PORT": str(http)}, "", str(http)),
        ]
        for script, env, setting, what in clashes:
            setting = setting or next(iter(env))
            result = _run(script, env, tmp_path)
            lines = result.stderr.splitlines()
            assert result.returncode == 1, (script, result.stderr)
            assert len(lines) == 1, (script, result.stderr)
            assert setting in lines[0] and what in lines[0], lines[0]
            assert "Traceback" not in result.stdout + result.stderr
        for _proc, http, _ in started:  # the clashes disturbed neither
            assert httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=5).status_code == 200
    finally:
        for proc, _, _ in started:
            assert proc.stop() == 0, proc.log()
