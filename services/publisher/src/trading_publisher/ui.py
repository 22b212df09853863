"""The trading UI: Buy/Sell buttons that emit trade events, and what the sidecar counted.

Run it with ``trading-ui`` (see ui_launcher). Streamlit re-executes this script on every
interaction and runs each browser session on its own thread, which shapes the design:

* One :class:`SharedPublisher` per process, from ``st.cache_resource``, never one per
  rerun (that would open a socket and a fresh ``seq`` stream on every click). Sessions
  share it from different threads and a ZeroMQ socket is not thread-safe, so every
  call goes through its lock; ``trade()`` never blocks, so the lock is held for
  microseconds.
* Live numbers are a fragment re-run every second (``st.fragment(run_every=...)``): only
  that part of the page refreshes, and the script thread is never parked in a loop.
* The log of emitted events lives in ``st.session_state``: it is this page's history,
  newest first, as the trader saw it (sent or dropped at the moment of the click).

Only this module imports streamlit; ``client.py`` stays importable on hosts without it.
"""

from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import streamlit as st

from trading_publisher.client import Publisher, PublisherStats
from trading_publisher.settings import PublisherSettings, load
from trading_publisher.sidecar_status import SidecarStatus, fetch_status

REFRESH_SECONDS: Final = 1.0
#: Entries kept per page; older ones are forgotten so a long session stays small.
LOG_LIMIT: Final = 200
#: The warning while the sidecar cannot be read; tests look for "events may be dropped".
UNREACHABLE_TEXT: Final = (
    "Sidecar unreachable at `{url}`: events may be dropped. They are queued until it "
    "is back, as long as the queue has room. Reason: `{error}`"
)
_LOG_KEY: Final = "emitted"
_QTY_KEY: Final = "qty"


@dataclass(frozen=True)
class Emitted:
    """One click's event, as this UI handed it to the publisher."""

    side: str
    qty: float
    ts: float
    sent: bool


class SharedPublisher:
    """The process's one Publisher, safe to call from every session's thread."""

    def __init__(self, settings: PublisherSettings) -> None:
        self._lock = threading.Lock()
        # One frame per click, sent at once: a trader sees it counted immediately.
        self._publisher = Publisher.from_settings(settings, batch_size=1)
        self._closed = False

    def trade(self, side: str, qty: float) -> Emitted:
        ts = time.time()
        with self._lock:
            sent = self._publisher.trade(side, qty, ts)
        return Emitted(side=side, qty=qty, ts=ts, sent=sent)

    def stats(self) -> PublisherStats:
        with self._lock:
            return self._publisher.stats()

    def close(self) -> None:
        """Flush what is queued (up to the linger time) and release; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._publisher.close()


@st.cache_resource(show_spinner=False)
def _settings() -> PublisherSettings:
    return load()


@st.cache_resource(show_spinner=False, on_release=lambda shared: shared.close())
def _shared_publisher() -> SharedPublisher:
    shared = SharedPublisher(_settings())
    # The cache is not released when the server stops; this flushes on the way out.
    atexit.register(shared.close)
    return shared


def _format_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"


def _format_qty(qty: float) -> str:
    return f"{qty:g}"


def _emit(side: str) -> None:
    """Button callback: runs before the rerun, so the log below already shows the event."""
    qty = float(st.session_state[_QTY_KEY])
    emitted = _shared_publisher().trade(side, qty)
    log: list[Emitted] = st.session_state.setdefault(_LOG_KEY, [])
    log.insert(0, emitted)
    del log[LOG_LIMIT:]


def _render_controls() -> None:
    st.number_input("Quantity", min_value=0.0, value=1.0, step=1.0, format="%g", key=_QTY_KEY)
    buy, sell = st.columns(2)
    buy.button("Buy", key="buy", on_click=_emit, args=("buy",), type="primary", width="stretch")
    sell.button("Sell", key="sell", on_click=_emit, args=("sell",), width="stretch")


def _render_sidecar(status: SidecarStatus, url: str) -> None:
    if not status.reachable:
        st.warning(UNREACHABLE_TEXT.format(url=url, error=status.error), icon="⚠️")
    st.subheader("Counted by the sidecar")

    def shown(number: float) -> str:
        # Zeros from a failed scrape would read as "nothing traded"; show "unknown".
        return f"{number:g}" if status.reachable else "—"

    columns = iter(st.columns(4))
    for side in ("buy", "sell"):
        next(columns).metric(f"{side.capitalize()} trades", shown(status.trades[side]))
        next(columns).metric(f"{side.capitalize()} volume", shown(status.volume[side]))
    if status.reachable:
        last = status.last_trade_ts
        st.caption(
            f"Last trade: {_format_ts(last) if last > 0 else 'none yet'} · "
            f"invalid frames: {status.invalid_total:g} · lost events: {status.lost:g}"
        )


def _render_client(stats: PublisherStats) -> None:
    st.subheader("This publisher")
    sent, dropped, link = st.columns(3)
    sent.metric("Sent", stats.sent)
    dropped.metric("Dropped", stats.dropped)
    link.metric("ZMQ link", "connected" if stats.connected else "waiting")


@st.fragment(run_every=REFRESH_SECONDS)
def _live() -> None:
    settings = _settings()
    _render_sidecar(fetch_status(settings.sidecar_url), settings.sidecar_url)
    _render_client(_shared_publisher().stats())


def _render_log() -> None:
    st.subheader("Events emitted from this page")
    log: list[Emitted] = st.session_state.get(_LOG_KEY, [])
    if not log:
        st.caption("None yet.")
        return
    rows: list[dict[str, Any]] = [
        {
            "time": _format_ts(e.ts),
            "side": e.side,
            "qty": _format_qty(e.qty),
            "status": "sent" if e.sent else "dropped",
        }
        for e in log
    ]
    st.table(rows, hide_index=True)


def main() -> None:
    st.set_page_config(page_title="Trading", page_icon="📈")
    st.title("Trading")
    _render_controls()
    _live()
    _render_log()


# Streamlit runs this file as a script (its __name__ is "__main__"); importing it as a
# module, e.g. for type checking, must not draw a page.
if __name__ == "__main__":
    main()
