"""The one reader of the sidecar's ``/metrics``: the UI, the benchmark and the tests use it.

Three readers used to exist (the UI's status, the benchmark's counts, the tests' parser)
and each knew its own way to fetch and parse; now there is one fetch (:func:`scrape`) and
one parse (:func:`parse_samples`), and the callers only pick the series they need.

Totals come from every replica. A Kubernetes Service in front of N sidecar replicas
answers a scrape from whichever pod it picks, so the UI reads either every replica's
URL (``TT_PUBLISHER_SIDECAR_URL`` may be a comma-separated list) and sums, or, when
``TT_PUBLISHER_PROMETHEUS_URL`` is set, asks Prometheus for ``sum by (side)``, which
has already scraped every replica.

Reading never raises for the UI: an unreachable sidecar is a state to display ("events
may be dropped"), not an error page. Only the standard library does the HTTP (no test
client in product code); prometheus_client's own parser reads the text format, so
exposition details (escaping, ``+Inf``, ``NaN``) are not re-invented.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from prometheus_client.parser import text_string_to_metric_families
from telemetry_contract import metric_names as names
from telemetry_contract.events import SIDES

#: Short, because the UI calls this once a second per open page and a hung sidecar
#: must not freeze the page; a healthy loopback/in-cluster scrape takes milliseconds.
DEFAULT_TIMEOUT_S: Final = 0.5
#: A /metrics page is a few KiB; anything far larger is not the sidecar.
_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
#: Standard process collector series: a new value means a new process (a restart).
PROCESS_START: Final = "process_start_time_seconds"

#: ``{(sample name, frozenset(labels)): value}``, the shape every caller reads.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class ScrapeError(Exception):
    """The URL did not answer with a Prometheus text page; the message says why."""


def parse_samples(text: str) -> Samples:
    """Prometheus text → ``{(sample name, labels): value}``; ``ValueError`` if not text format."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def sample_value(samples: Samples, name: str, **labels: str) -> float:
    """One sample by exact name and label set; ``KeyError`` when absent."""
    return samples[(name, frozenset(labels.items()))]


def sum_samples(samples: Samples, name: str, **labels: str) -> float:
    """Sum of every sample called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def metrics_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/metrics"


def split_urls(urls: str) -> list[str]:
    """``"http://a:8001, http://b:8001"`` → both, stripped; empty items dropped."""
    return [u.strip() for u in urls.split(",") if u.strip()]


#: Waits before the retries of a 503: the sidecar answers a scrape beyond its concurrent
#: renders (TT_SIDECAR_METRICS_CONCURRENCY) with 503 at once, and the next one is served.
_BUSY_RETRIES_S = (0.05, 0.2)


def _get(url: str, timeout: float) -> str:
    for wait in _BUSY_RETRIES_S:
        try:
            return _get_once(url, timeout)
        except _Busy:
            time.sleep(wait)
    try:
        return _get_once(url, timeout)
    except _Busy as exc:
        raise ScrapeError(str(exc)) from None


class _Busy(Exception):
    """A 503: the server is busy (too many scrapes at once), worth one more try."""


def _get_once(url: str, timeout: float) -> str:
    if not url.startswith(("http://", "https://")):
        # urllib would also open file:// and ftp:// URLs; we speak HTTP only.
        raise ScrapeError(f"{url}: not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(_MAX_BODY_BYTES + 1)
        if len(body) > _MAX_BODY_BYTES:
            raise ScrapeError(f"{url}: response larger than {_MAX_BODY_BYTES} bytes")
        return str(body.decode("utf-8"))
    except urllib.error.HTTPError as exc:  # before URLError: it is a subclass
        if exc.code == 503:
            raise _Busy(f"{url}: HTTP {exc.code} {exc.reason}") from None
        raise ScrapeError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, str) else _describe(exc.reason)
        raise ScrapeError(f"{url}: {reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # OSError covers timeouts and resets mid-read; ValueError a bad URL or a body
        # that is not UTF-8 (UnicodeDecodeError is a ValueError).
        raise ScrapeError(f"{url}: {_describe(exc)}") from None


def scrape(base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> Samples:
    """Every sample of ``<base_url>/metrics``; :class:`ScrapeError` for any failure."""
    url = metrics_url(base_url)
    text = _get(url, timeout)
    try:
        return parse_samples(text)
    except ValueError as exc:
        raise ScrapeError(f"{url}: not Prometheus text ({_describe(exc)})") from None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _zero_by_side() -> dict[str, float]:
    return dict.fromkeys(SIDES, 0.0)


@dataclass(frozen=True)
class SidecarStatus:
    """Totals over every replica read; all zero when none could be read."""

    #: True when every replica answered (a partial sum is flagged, not hidden).
    reachable: bool
    #: Why some replica could not be read; empty when ``reachable``.
    error: str = ""
    trades: Mapping[str, float] = field(default_factory=_zero_by_side)
    volume: Mapping[str, float] = field(default_factory=_zero_by_side)
    #: Event ``ts`` of the newest valid trade on any replica, epoch seconds; 0 before any.
    last_trade_ts: float = 0.0
    #: Frames the sidecars refused, summed over every reason and replica.
    invalid_total: float = 0.0
    #: Events publishers sent that never arrived (gaps in their ``seq``).
    lost: float = 0.0
    #: Replicas that answered, of how many were asked (Prometheus: sidecar series seen).
    replicas_up: int = 0
    replicas: int = 0
    #: Replica (URL or Prometheus instance) → its process start time, when exported.
    started: Mapping[str, float] = field(default_factory=dict)
    #: Replica → its trades over both sides, to notice a counter going down.
    replica_trades: Mapping[str, float] = field(default_factory=dict)

    @property
    def any_reachable(self) -> bool:
        return self.replicas_up > 0

    @property
    def last_trade_time(self) -> datetime | None:
        if self.last_trade_ts <= 0:
            return None
        return datetime.fromtimestamp(self.last_trade_ts, tz=UTC)


def status_from_samples(samples: Samples, replica: str = "") -> SidecarStatus:
    """One replica's totals; ``ValueError`` if the page is not the trading sidecar's."""
    if not any(name == names.TRADES for name, _ in samples):
        raise ValueError(f"no {names.TRADES} series: is this the trading sidecar?")
    trades: dict[str, float] = {s: sum_samples(samples, names.TRADES, side=s) for s in SIDES}
    started = (
        {replica: samples[(PROCESS_START, frozenset())]}
        if (PROCESS_START, frozenset()) in samples
        else {}
    )
    return SidecarStatus(
        reachable=True,
        trades=trades,
        volume={s: sum_samples(samples, names.VOLUME, side=s) for s in SIDES},
        last_trade_ts=max(
            (v for (n, _), v in samples.items() if n == names.LAST_TRADE_TS), default=0.0
        ),
        invalid_total=sum_samples(samples, names.INVALID),
        lost=sum_samples(samples, names.LOST),
        replicas_up=1,
        replicas=1,
        started=started,
        replica_trades={replica: sum(trades.values())},
    )


def fetch_status(base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> SidecarStatus:
    """One sidecar's totals; never raises for network or content problems."""
    try:
        return status_from_samples(scrape(base_url, timeout), replica=base_url)
    except ScrapeError as exc:
        return SidecarStatus(reachable=False, error=str(exc), replicas=1)
    except ValueError as exc:
        return SidecarStatus(
            reachable=False, error=f"{metrics_url(base_url)}: {_describe(exc)}", replicas=1
        )


def combine(statuses: Sequence[SidecarStatus]) -> SidecarStatus:
    """Sum replicas: counters add up, the newest trade wins, errors are listed."""
    up = [s for s in statuses if s.reachable]
    errors = [s.error for s in statuses if not s.reachable]
    return SidecarStatus(
        reachable=not errors and bool(up),
        error="; ".join(errors) if errors else ("" if up else "no sidecar URL configured"),
        trades={side: sum(s.trades[side] for s in up) for side in SIDES},
        volume={side: sum(s.volume[side] for s in up) for side in SIDES},
        last_trade_ts=max((s.last_trade_ts for s in up), default=0.0),
        invalid_total=sum(s.invalid_total for s in up),
        lost=sum(s.lost for s in up),
        replicas_up=len(up),
        replicas=len(statuses),
        started={k: v for s in up for k, v in s.started.items()},
        replica_trades={k: v for s in up for k, v in s.replica_trades.items()},
    )


def fetch_all(urls: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S) -> SidecarStatus:
    """Every replica's totals, summed (read one after the other: N is small)."""
    return combine([fetch_status(url, timeout) for url in urls])


# --- Prometheus: already scraped every replica; ask it for the sums ------------------

#: PromQL per status field. ``sum by (side)`` is what the dashboards plot, so the UI
#: and Grafana agree; the ``and on (instance)`` keeps only the sidecars' own processes.
PROMQL: Final[Mapping[str, str]] = {
    "trades": f"sum by (side) ({names.TRADES})",
    "volume": f"sum by (side) ({names.VOLUME})",
    "last": f"max({names.LAST_TRADE_TS})",
    "invalid": f"sum({names.INVALID})",
    "lost": f"sum({names.LOST})",
    "instances": f"sum by (instance) ({names.TRADES})",
    "started": f"max by (instance) ({PROCESS_START}) and on (instance) {names.TRADES}",
}


def _prom_query(base_url: str, query: str, timeout: float) -> list[tuple[dict[str, str], float]]:
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    text = _get(url, timeout)
    try:
        body = json.loads(text)
        if body.get("status") != "success":
            raise ScrapeError(f"{url}: {body.get('error', 'query failed')}")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise ScrapeError(f"{url}: not a Prometheus query API answer") from None


def fetch_prometheus(base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> SidecarStatus:
    """Totals over every replica Prometheus scrapes; never raises."""
    try:
        got = {key: _prom_query(base_url, q, timeout) for key, q in PROMQL.items()}
    except ScrapeError as exc:
        return SidecarStatus(reachable=False, error=str(exc))
    if not got["instances"]:
        return SidecarStatus(
            reachable=False, error=f"{base_url}: Prometheus has no {names.TRADES} series yet"
        )

    def by_side(rows: list[tuple[dict[str, str], float]]) -> dict[str, float]:
        out = _zero_by_side()
        for labels, v in rows:
            if labels.get("side") in out:
                out[labels["side"]] = v
        return out

    def scalar(key: str) -> float:
        return got[key][0][1] if got[key] else 0.0

    return SidecarStatus(
        reachable=True,
        trades=by_side(got["trades"]),
        volume=by_side(got["volume"]),
        last_trade_ts=scalar("last"),
        invalid_total=scalar("invalid"),
        lost=scalar("lost"),
        replicas_up=len(got["instances"]),
        replicas=len(got["instances"]),
        started={labels.get("instance", ""): v for labels, v in got["started"]},
        replica_trades={labels.get("instance", ""): v for labels, v in got["instances"]},
    )


@dataclass(frozen=True)
class TotalsSource:
    """Where the UI reads totals: Prometheus when configured, else every sidecar URL."""

    sidecar_urls: tuple[str, ...]
    prometheus_url: str = ""

    @classmethod
    def from_settings(cls, sidecar_url: str, prometheus_url: str = "") -> TotalsSource:
        return cls(tuple(split_urls(sidecar_url)), prometheus_url.strip())

    def describe(self) -> str:
        if self.prometheus_url:
            return f"Prometheus at {self.prometheus_url}"
        return ", ".join(self.sidecar_urls)

    def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> SidecarStatus:
        if self.prometheus_url:
            return fetch_prometheus(self.prometheus_url, timeout)
        return fetch_all(self.sidecar_urls, timeout)


# --- What the UI derives from successive reads ----------------------------------------


def restart_origin(base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """How a restarted sidecar's totals began, in words, from its ``GET /`` answer.

    The sidecar says ``counts_from`` (saved state or zero) and whether it keeps state at
    all; anything else (an older sidecar, no answer, a Prometheus instance label instead
    of a URL) is said as not known, never guessed.
    """
    try:
        answer = json.loads(_get(base_url.rstrip("/") + "/", timeout))
    except (ScrapeError, ValueError):
        answer = None
    if not isinstance(answer, dict):
        return "not known whether from saved state or from zero"
    counts_from, kept = answer.get("counts_from"), answer.get("state_kept")
    if counts_from == names.COUNTS_FROM_SAVED_STATE:
        return "restored from saved state"
    if counts_from == names.COUNTS_FROM_ZERO:
        if kept is False:
            return "started from zero: it keeps no state (TT_SIDECAR_STATE_DIR is unset)"
        return "started from zero: no saved state to restore"
    return "not known whether from saved state or from zero"


def detect_restarts(before: SidecarStatus, now: SidecarStatus) -> list[str]:
    """Replicas that restarted between two reads: a new process start time, or a counter
    that went down (a counter only goes down when its process started over).
    """
    restarted = []
    for replica, start in now.started.items():
        old = before.started.get(replica)
        if old is not None and start != old:
            restarted.append(replica)
    for replica, total in now.replica_trades.items():
        old = before.replica_trades.get(replica)
        if old is not None and total < old and replica not in restarted:
            restarted.append(replica)
    return restarted


def remembered(before: SidecarStatus | None, now: SidecarStatus) -> SidecarStatus:
    """``now``, with each replica's start time and trades carried over from ``before``
    when this read lacks them: the base for the next :func:`detect_restarts`.

    A replica can be missing from one read and back in the next (it was down, or its
    series were stale in Prometheus between a kill and the restart). Compared with a read
    that lacked it, the restarted replica would look new rather than restarted.
    """
    if before is None:
        return now
    return replace(
        now,
        started={**before.started, **now.started},
        replica_trades={**before.replica_trades, **now.replica_trades},
    )


class RateHistory:
    """Trades per second by side over the last ``window_s``, from successive totals.

    Kept in process memory by the UI (one per process, shared by every page, so a page
    opened later still sees the recent past). A total that goes down is a restart: as
    Prometheus's ``rate()`` does, the new value is taken as the increase since then.
    """

    def __init__(self, window_s: float = 300.0, min_step_s: float = 0.5) -> None:
        self.window_s = window_s
        self.min_step_s = min_step_s
        self._lock = threading.Lock()
        self._last: tuple[float, Mapping[str, float]] | None = None
        self._points: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, t: float, trades: Mapping[str, float]) -> None:
        with self._lock:
            last = self._last
            if last is not None and t - last[0] < self.min_step_s:
                return
            self._last = (t, dict(trades))
            if last is None:
                return
            dt = t - last[0]
            rates: dict[str, float] = {}
            for side in SIDES:
                now, old = trades.get(side, 0.0), last[1].get(side, 0.0)
                rates[side] = (now - old if now >= old else now) / dt
            self._points.append((t, rates))
            while self._points and self._points[0][0] < t - self.window_s:
                self._points.popleft()

    def points(self) -> list[tuple[float, dict[str, float]]]:
        with self._lock:
            return list(self._points)
