"""Start a child process, wait until it answers, stop it: the one helper for all three.

The benchmark starts its own sidecar, the tests start sidecars, endpoints and UIs, and
``make run`` supervises the whole loop; all of them need the same three steps done the
same careful way: output into a log file a failure can show (a pipe nobody reads would
block the child once it fills), readiness polled while watching for an early exit (a
child that died is reported at once with its log, not after a timeout), and SIGTERM
first, SIGKILL only after a grace period, returning the exit code so callers can insist
on a clean 0.

ZeroMQ listeners never need a port chosen in advance: bind ``tcp://127.0.0.1:*`` and read
``LAST_ENDPOINT`` (the sidecar reports its bound address at ``GET /``). Only HTTP
listeners take a :func:`free_port`, which can race with another process between the
probe and the child's bind; that window is why it is not used for anything else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from telemetry_contract.ports import LOOPBACK

T = TypeVar("T")

#: Where a ZeroMQ listener binds when any port will do; read the port back from
#: ``LAST_ENDPOINT`` (or the sidecar's ``GET /``).
LOOPBACK_ANY_PORT: Final = f"tcp://{LOOPBACK}:*"
#: How long a child gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 15.0


class ProcessFailed(RuntimeError):
    """A child exited or never became ready; the message carries the end of its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now (for HTTP listeners; ZeroMQ binds ``:*``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200; connection errors and other statuses are False."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def terminate(
    process: subprocess.Popen[bytes],
    grace_s: float = STOP_GRACE_S,
    on_kill: Callable[[], None] | None = None,
) -> int:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL; the exit code (negative: a signal)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill()
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class Process:
    """A child process whose stdout and stderr go to ``log_path``."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    name: str

    @classmethod
    def start(
        cls,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        name: str = "",
        cwd: Path | None = None,
    ) -> Process:
        """Start ``args`` with ``env`` laid over this process's environment (unbuffered)."""
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log_file:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                list(args), stdout=log_file, stderr=subprocess.STDOUT, env=full_env, cwd=cwd
            )
        return cls(popen, log_path, name or Path(args[0]).name)

    # Kept under the name the tests have always used for the Popen.
    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.popen

    def log(self, last_lines: int | None = None) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if last_lines is not None:
            return "\n".join(text.splitlines()[-last_lines:])
        return text

    def wait_until(
        self, check: Callable[[], T | None], timeout: float = 30.0, what: str = "ready"
    ) -> T:
        """Poll ``check`` until it returns something truthy; fail early if the child exits.

        Exceptions from ``check`` count as "not yet" (a port not listening yet raises).
        """
        deadline = time.monotonic() + timeout
        while True:
            code = self.popen.poll()
            if code is not None:
                raise ProcessFailed(f"{self.name} exited with code {code} before {what}:\n"
                                    f"{self.log(40)}")  # fmt: skip
            try:
                result = check()
            except Exception:  # noqa: BLE001 - not ready yet; the timeout reports it
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} not {what} after {timeout:g} s:\n{self.log(40)}")
            time.sleep(0.05)

    def wait_http_ok(self, url: str, timeout: float = 30.0) -> None:
        """Wait until ``GET url`` answers 200 (e.g. a ``/healthz``)."""
        self.wait_until(lambda: http_ok(url), timeout, what=f"answering {url}")

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code."""
        return terminate(self.popen, grace_s)
