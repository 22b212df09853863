"""What the sidecar has counted, as the trading UI shows it: one scrape of ``/metrics``.

The UI polls this every second from a Streamlit fragment, so it must be cheap and it
must never raise: an unreachable sidecar is a state to display ("events may be
dropped"), not an error page. Every failure — refused, timed out, a non-200 answer,
or a page that is not the sidecar's — becomes ``reachable=False`` with the reason.

Only the standard library does the HTTP (the publisher package ships to trading hosts
and must not pull in test-only clients); prometheus_client's own parser reads the
text format, so exposition details (escaping, ``+Inf``, ``NaN``) are not re-invented.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families
from telemetry_contract import metric_names as names
from telemetry_contract.events import SIDES

#: Short, because the UI calls this once a second per open page and a hung sidecar
#: must not freeze the page; a healthy loopback/in-cluster scrape takes milliseconds.
DEFAULT_TIMEOUT_S = 0.5

#: A /metrics page is a few KiB; anything far larger is not the sidecar.
_MAX_BODY_BYTES = 4 * 1024 * 1024


def _zero_by_side() -> dict[str, float]:
    return dict.fromkeys(SIDES, 0.0)


@dataclass(frozen=True)
class SidecarStatus:
    """One scrape's worth of totals; all zero when the sidecar could not be read."""

    reachable: bool
    #: Why the sidecar could not be read; empty when ``reachable``.
    error: str = ""
    trades: Mapping[str, float] = field(default_factory=_zero_by_side)
    volume: Mapping[str, float] = field(default_factory=_zero_by_side)
    #: Event ``ts`` of the newest valid trade, epoch seconds; 0 before any trade.
    last_trade_ts: float = 0.0
    #: Frames the sidecar refused, summed over every reason.
    invalid_total: float = 0.0
    #: Events publishers sent that never arrived (gaps in their ``seq``).
    lost: float = 0.0

    @property
    def last_trade_time(self) -> datetime | None:
        if self.last_trade_ts <= 0:
            return None
        return datetime.fromtimestamp(self.last_trade_ts, tz=UTC)


def metrics_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/metrics"


def parse_status(text: str) -> SidecarStatus:
    """Read the totals out of a /metrics page; ``ValueError`` if it is not the sidecar's."""
    trades = _zero_by_side()
    volume = _zero_by_side()
    last_ts = invalid = lost = 0.0
    seen: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            side = sample.labels.get("side", "")
            if name == names.TRADES and side in trades:
                trades[side] = sample.value
            elif name == names.VOLUME and side in volume:
                volume[side] = sample.value
            elif name == names.LAST_TRADE_TS:
                last_ts = sample.value
            elif name == names.INVALID:
                invalid += sample.value
            elif name == names.LOST:
                lost = sample.value
            else:
                continue
            seen.add(name)
    if names.TRADES not in seen:
        raise ValueError(f"no {names.TRADES} series: is this the trading sidecar?")
    return SidecarStatus(
        reachable=True,
        trades=trades,
        volume=volume,
        last_trade_ts=last_ts,
        invalid_total=invalid,
        lost=lost,
    )


def fetch_status(base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> SidecarStatus:
    """Scrape ``<base_url>/metrics``; never raises for network or content problems."""
    url = metrics_url(base_url)
    if not url.startswith(("http://", "https://")):
        # urllib would also open file:// and ftp:// URLs; the sidecar speaks HTTP only.
        return SidecarStatus(reachable=False, error=f"{url}: not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(_MAX_BODY_BYTES + 1)
        if len(body) > _MAX_BODY_BYTES:
            raise ValueError(f"response larger than {_MAX_BODY_BYTES} bytes")
        return parse_status(body.decode("utf-8"))
    except urllib.error.HTTPError as exc:  # before URLError: it is a subclass
        return SidecarStatus(reachable=False, error=f"{url}: HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        return SidecarStatus(reachable=False, error=f"{url}: {_describe_reason(exc.reason)}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # OSError covers timeouts and resets mid-read; ValueError a bad URL or a page
        # that is not Prometheus text (UnicodeDecodeError is a ValueError too).
        return SidecarStatus(reachable=False, error=f"{url}: {_describe(exc)}")


def _describe_reason(reason: str | BaseException) -> str:
    return reason if isinstance(reason, str) else _describe(reason)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
