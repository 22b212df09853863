"""Helpers shared by the tests: free ports, real sidecar processes, /metrics parsing.

Everything here starts real processes on loopback and tears them down with a timeout,
so a leaked process or a hung socket fails the test loudly instead of hanging CI.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx
import yaml
import zmq
from trading_bench.sidecar import bound_zmq_address
from trading_devkit.processes import Process, ProcessFailed
from trading_devkit.processes import free_port as free_port
from trading_publisher.metrics_reader import Samples as Samples
from trading_publisher.metrics_reader import parse_samples, sample_value, scrape

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Debian's chromium, driven through Playwright's protocol client (no browser download).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
T = TypeVar("T")


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


class ZmqSockets:
    """A pyzmq context whose sockets fail instead of hanging (pyzmq's own test style).

    Every socket gets receive/send timeouts, so a frame that never comes raises
    ``zmq.Again`` after ``timeout_ms``; :meth:`close` terminates the context with linger 0
    on a watchdog thread and fails the test if a socket still blocks termination.
    """

    def __init__(self, timeout_ms: int = 10_000) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.timeout_ms = timeout_ms

    def socket(self, kind: int) -> zmq.Socket[bytes]:
        sock = self.ctx.socket(kind)
        sock.rcvtimeo = self.timeout_ms
        sock.sndtimeo = self.timeout_ms
        sock.linger = 0
        return sock

    def bind(self, kind: int, host: str = "127.0.0.1") -> tuple[zmq.Socket[bytes], str]:
        """A socket bound on ``tcp://host:*``; returns it and the endpoint ZeroMQ chose."""
        sock = self.socket(kind)
        sock.bind(f"tcp://{host}:*")
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return sock, endpoint

    def close(self, timeout: float = 10.0) -> None:
        done = threading.Event()

        def destroy() -> None:
            self.ctx.destroy(linger=0)
            done.set()

        threading.Thread(target=destroy, name="zmq-context-destroy", daemon=True).start()
        if not done.wait(timeout):
            raise AssertionError(
                f"zmq context did not terminate within {timeout}s: a socket is still in use"
            )


def push_frames(address: str, *frames: bytes, linger_ms: int = 2000) -> None:
    """Send raw frames to a sidecar's PULL address from a fresh PUSH socket, then close it.

    Closing waits up to ``linger_ms`` for the frames to leave, so when this returns they are
    on their way; tests then wait on the sidecar's counters, never on a sleep.
    """
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(address)
    try:
        for frame in frames:
            push.send(frame)
    finally:
        push.close(linger=linger_ms)
        ctx.term()


def accepted_trade(response: httpx.Response, side: str, qty: float, src: str) -> dict[str, Any]:
    """Check a publisher HTTP API answer to ``POST /trade/{side}`` and return its event.

    The unit test (in-process app) and the e2e test (the console script) assert the same
    response contract; the e2e one also proves the src from the environment reaches it.
    """
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["sent"] is True
    event: dict[str, Any] = body["event"]
    assert (event["side"], event["qty"], event["src"]) == (side, qty, src)
    return event


# The product's one /metrics reader (trading_publisher.metrics_reader), under the names
# the tests have always used.
parse_metrics = parse_samples
value = sample_value


#: The one process helper (trading_devkit.processes), under the names the tests
#: have always used: start with a log file, wait while watching for an early exit, stop
#: with SIGTERM then SIGKILL, returning the exit code.
Proc = Process


def start_process(
    args: list[str], log_path: Path, env: Mapping[str, str] | None = None, name: str = ""
) -> Process:
    return Process.start(args, log_path, env, name=name, cwd=ROOT)


@dataclass
class Sidecar:
    """A real ``trading-sidecar`` process on loopback.

    ``zmq_port`` 0 binds ``tcp://127.0.0.1:*`` and reads the port ZeroMQ chose back from the
    sidecar's ``GET /`` (no free-port race); a restart then binds that same port again, as a
    restarted pod keeps its address. Give a port only to promise it before anything listens.
    """

    http_port: int = field(default_factory=free_port)
    zmq_port: int = 0
    #: Free port for the probe-only listener, so parallel sidecars never share 8003.
    probe_port: int = field(default_factory=free_port)
    proc: Process | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def zmq_address(self) -> str:
        assert self.zmq_port, "the ZeroMQ port is known once the sidecar has started"
        return f"tcp://127.0.0.1:{self.zmq_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, log_dir: Path) -> Sidecar:
        env = {
            "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{self.zmq_port or '*'}",
            "TT_SIDECAR_HTTP_PORT": str(self.http_port),
            "TT_SIDECAR_PROBE_PORT": str(self.probe_port),
            **self.extra_env,
        }
        self.proc = start_process(
            [str(BIN / "trading-sidecar")], log_dir / f"sidecar-{self.http_port}.log", env
        )
        try:
            # Fails at once, with the log, if the sidecar exits during start-up.
            self.proc.wait_http_ok(f"{self.url}/healthz")
        except ProcessFailed as exc:
            self.proc.stop()
            raise AssertionError(f"sidecar did not become healthy: {exc}") from None
        if not self.zmq_port:
            self.zmq_port = int(bound_zmq_address(self.url).rsplit(":", 1)[1])
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.process.poll() is not None:
            raise AssertionError(f"sidecar exited:\n{self.proc.log()}")
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def scrape(self) -> Samples:
        return scrape(self.url, timeout=5)

    def stop(self) -> int:
        assert self.proc is not None
        return self.proc.stop()


def new_sidecar(**extra_env: str) -> Sidecar:
    return Sidecar(extra_env=dict(extra_env))


# --- Grafana dashboards: the queries in dashboards/*.json, as Prometheus would see them ---

#: What the tests substitute for the Grafana variables a dashboard query may use. Grafana
#: derives the interval ones from the time range and the scrape interval; as range
#: selectors they must hold two scrapes for rate() to answer, and a minute also keeps
#: everything a test published inside the window however slowly the suite runs. ``job``,
#: ``namespace`` and ``pod`` are the dashboards' "All" values (their ``allValue``), as
#: regex matchers; ``.*`` also matches a series without the label (outside Kubernetes).
GRAFANA_TEST_VARIABLES: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1m",
    "__range_s": "60",
    "__range_ms": "60000",
    "job": ".+",
    "namespace": ".*",
    "pod": ".*",
}

_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from dashboard_panels(panel)


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title/refId, expr)`` for every Prometheus query in the dashboard."""
    return [
        (f"{panel.get('title', panel.get('id'))}/{target.get('refId', '?')}", target["expr"])
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def expand_grafana_variables(expr: str, values: Mapping[str, str] = GRAFANA_TEST_VARIABLES) -> str:
    """Substitute ``$var``, ``${var}``, ``${var:fmt}`` and ``[[var]]``; unknown ones raise.

    Raising keeps a new dashboard variable from reaching Prometheus as literal text, where
    it would fail as a parse error that points at the wrong thing.
    """

    def substitute(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no test value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _GRAFANA_VARIABLE.sub(substitute, expr)


_PROMQL_KEYWORDS = frozenset(
    "by without on ignoring group_left group_right bool and or unless offset inf nan".split()
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexical scan, not a full parser).

    Strings, label matchers, ranges, grouping label lists and numbers are removed first;
    of the identifiers left, those followed by ``(`` are functions or aggregations and the
    rest, minus keywords, are metric names.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d[\w.]*(?:[eE][+-]?\d+)?", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        if re.match(r"\s*\(", text[match.end() :]) or match.group().lower() in _PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


#: Target labels a test Prometheus adds to the sidecar, as a ServiceMonitor does in
#: Kubernetes, so the dashboards' namespace and pod variables select something real.
TARGET_LABELS: dict[str, str] = {"namespace": "ns-a", "pod": "trading-sidecar-0"}


def label_target(config: Path, labels: Mapping[str, str] = TARGET_LABELS) -> None:
    """Give a rendered Prometheus config's one static target ``labels``."""
    document = yaml.safe_load(config.read_text())
    (job,) = document["scrape_configs"]
    (static,) = job["static_configs"]
    static["labels"] = dict(labels)
    config.write_text(yaml.safe_dump(document))


def scoped_variables(**chosen: str) -> dict[str, str]:
    """The test variables with namespace/pod chosen as a user would in the dashboard."""
    return {**GRAFANA_TEST_VARIABLES, **chosen}


def wait_http_ok(proc: Process, url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200; fail at once, with the log, if ``proc`` exits first."""
    try:
        proc.wait_http_ok(url, timeout)
    except ProcessFailed as exc:
        raise AssertionError(str(exc)) from None
