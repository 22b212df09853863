"""Helpers shared by the tests: free ports, real sidecar processes, /metrics parsing.

Everything here starts real processes on loopback and tears them down with a timeout,
so a leaked process or a hung socket fails the test loudly instead of hanging CI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last_error!r}")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Prometheus text → {(sample name, labels): value} via prometheus_client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@dataclass
class Proc:
    """A child process whose output goes to a log file that failures can show."""

    process: subprocess.Popen[bytes]
    log_path: Path
    name: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_process(
    args: list[str], log_path: Path, env: Mapping[str, str] | None = None, name: str = ""
) -> Proc:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        args, stdout=log_file, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT
    )
    log_file.close()
    return Proc(process, log_path, name or args[0])


@dataclass
class Sidecar:
    """A real ``trading-sidecar`` process on free loopback ports."""

    zmq_port: int
    http_port: int
    proc: Proc | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def zmq_address(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, log_dir: Path) -> Sidecar:
        env = {
            "TT_SIDECAR_ZMQ_BIND": self.zmq_address,
            "TT_SIDECAR_HTTP_PORT": str(self.http_port),
            **self.extra_env,
        }
        self.proc = start_process(
            [str(BIN / "trading-sidecar")], log_dir / f"sidecar-{self.http_port}.log", env
        )
        try:
            wait_for(self.healthy, what="sidecar /healthz")
        except AssertionError:
            self.proc.stop()
            raise AssertionError(f"sidecar did not become healthy:\n{self.proc.log()}") from None
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.process.poll() is not None:
            raise AssertionError(f"sidecar exited:\n{self.proc.log()}")
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def scrape(self) -> Samples:
        response = httpx.get(f"{self.url}/metrics", timeout=5)
        response.raise_for_status()
        return parse_metrics(response.text)

    def stop(self) -> int:
        assert self.proc is not None
        return self.proc.stop()


def new_sidecar(**extra_env: str) -> Sidecar:
    return Sidecar(zmq_port=free_port(), http_port=free_port(), extra_env=dict(extra_env))
