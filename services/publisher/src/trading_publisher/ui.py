"""The trading UI: Buy/Sell buttons that emit trade events, and what the sidecar counted.

Run it with ``trading-ui`` (see ui_launcher). Streamlit reruns this script on every
interaction, one thread per browser session, and folds fast pending clicks into one rerun;
the design follows from that. The buttons and the quantity field are one small
``st.components.v2`` component whose state is the list of recent clicks, each
``{id, side, qty}`` recorded in the browser at the moment of the click: no click is lost
to coalescing (each run emits the ids it has not seen, :class:`SeenClicks`), and a click
books the quantity shown when it was clicked, not when the server reads it. One
:class:`SharedPublisher` per process (``st.cache_resource``) behind a lock, since a
ZeroMQ socket is not thread-safe; live totals are a fragment re-run every second
(:mod:`trading_publisher.metrics_reader`); the log of emitted events is this page's
history in ``st.session_state``. Only this module imports streamlit.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import streamlit as st
from telemetry_contract.events import MAX_QTY, SIDES

from trading_publisher.client import Publisher, PublisherStats
from trading_publisher.metrics_reader import (
    RateHistory,
    SidecarStatus,
    TotalsSource,
    detect_restarts,
    remembered,
    restart_origin,
)
from trading_publisher.settings import PublisherSettings, load

REFRESH_SECONDS: Final = 1.0
#: Entries kept per page; older ones are forgotten so a long session stays small.
LOG_LIMIT: Final = 200
#: Click ids the process remembers, oldest forgotten first: a page's browser keeps at
#: most 512 recent clicks, so this covers 128 pages each at that limit.
SEEN_LIMIT: Final = 65_536
#: The chart's time window.
CHART_WINDOW_S: Final = 300.0
#: How long the restart notice stays after the restart was noticed.
RESTART_NOTICE_S: Final = 300.0
#: The warning while the sidecar cannot be read; tests look for "events may be dropped".
UNREACHABLE_TEXT: Final = (
    "Sidecar unreachable ({error}): events may be dropped. They are queued until it "
    "is back, as long as the queue has room."
)
RESTART_TEXT: Final = (
    "The sidecar restarted at {when}: {which}. Totals below are the new process's."
)
BUY_COLOUR: Final = "#1a7f37"
SELL_COLOUR: Final = "#cf222e"

_LOG_KEY: Final = "emitted"
_LAST_STATUS_KEY: Final = "last_status"
_RESTART_KEY: Final = "restart_notice"

# The quantity field and the buttons. Each click appends {id, side, qty} to a bounded
# list, qty read from the field at that moment, and sends the whole list as component
# state; ids are a per-mount random prefix plus a counter, so a remounted component never
# reuses one. The state (and the last quantity typed) lives on the mount point, which
# survives reruns. A quantity that is not a number in [0, MAX_QTY] books nothing: the
# field says why, and the click is not recorded.
_BUTTONS_HTML: Final = """
<div class="tt-trade">
  <label class="tt-qty-label" for="tt-qty">Quantity</label>
  <input id="tt-qty" class="tt-qty" type="number" min="0" step="1" value="1"
         inputmode="decimal" data-testid="tt-qty">
  <p class="tt-qty-error" role="alert" data-testid="tt-qty-error" hidden></p>
  <div class="tt-buttons">
    <button type="button" class="tt-buy" data-side="buy" data-testid="tt-buy">Buy</button>
    <button type="button" class="tt-sell" data-side="sell" data-testid="tt-sell">Sell</button>
  </div>
</div>
"""
_BUTTONS_CSS: Final = f"""
.tt-trade {{ font-family: inherit; }}
.tt-qty-label {{ display: block; font-size: 0.875rem; margin-bottom: 0.25rem; }}
.tt-qty {{
  box-sizing: border-box; width: 100%; padding: 0.5rem 0.75rem; font-size: 1rem;
  border: 1px solid #d0d7de; border-radius: 0.5rem; background: #f6f8fa;
}}
.tt-qty[aria-invalid="true"] {{ border-color: #cf222e; }}
.tt-qty-error {{ color: #cf222e; font-size: 0.875rem; margin: 0.25rem 0 0; }}
.tt-buttons {{ display: flex; gap: 1rem; margin-top: 0.75rem; }}
.tt-buttons button {{
  flex: 1; padding: 0.6rem 1rem; border: none; border-radius: 0.5rem;
  color: #ffffff; font-size: 1rem; font-weight: 600; cursor: pointer;
}}
.tt-buttons .tt-buy {{ background-color: {BUY_COLOUR}; }}
.tt-buttons .tt-sell {{ background-color: {SELL_COLOUR}; }}
.tt-buttons button:active {{ filter: brightness(0.85); }}
"""
_BUTTONS_JS: Final = f"const MAX_QTY = {MAX_QTY:.0f};\n" + (
    """
export default function (component) {
  const { parentElement, setStateValue } = component;
  if (!parentElement.__ttClicks) {
    parentElement.__ttClicks = {
      prefix: Math.random().toString(36).slice(2, 10), n: 0, recent: [], qty: null,
    };
  }
  const clicks = parentElement.__ttClicks;
  const input = parentElement.querySelector("input.tt-qty");
  const error = parentElement.querySelector(".tt-qty-error");
  if (!input.__ttBound) {
    input.__ttBound = true;
    if (clicks.qty !== null) input.value = clicks.qty;
    input.addEventListener("input", () => { clicks.qty = input.value; });
  }
  const readQty = () => {
    const text = input.value.trim();
    const qty = Number(text);
    const ok = text !== "" && Number.isFinite(qty) && qty >= 0 && qty <= MAX_QTY;
    input.setAttribute("aria-invalid", ok ? "false" : "true");
    error.hidden = ok;
    error.textContent = ok
      ? "" : `Quantity must be a number from 0 to ${MAX_QTY}; nothing was booked.`;
    return ok ? qty : null;
  };
  for (const button of parentElement.querySelectorAll("button[data-side]")) {
    button.onclick = () => {
      const qty = readQty();
      if (qty === null) return;
      clicks.n += 1;
      clicks.recent.push({ id: `${clicks.prefix}-${clicks.n}`, side: button.dataset.side, qty });
      if (clicks.recent.length > 512) clicks.recent.shift();
      setStateValue("clicks", clicks.recent.slice());
    };
  }
}
"""
)


@dataclass(frozen=True)
class Emitted:
    """One click's event, as this UI handed it to the publisher."""

    side: str
    qty: float
    ts: float
    queued: bool


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
            queued = self._publisher.trade(side, qty, ts)
        return Emitted(side=side, qty=qty, ts=ts, queued=queued)

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


@st.cache_resource(show_spinner=False)
def _source() -> TotalsSource:
    settings = _settings()
    return TotalsSource.from_settings(settings.sidecar_url, settings.prometheus_url)


@st.cache_resource(show_spinner=False)
def _history() -> RateHistory:
    """One per process: every page draws the same recent past."""
    return RateHistory(window_s=CHART_WINDOW_S)


@st.cache_resource(show_spinner=False, on_release=lambda shared: shared.close())
def _shared_publisher() -> SharedPublisher:
    shared = SharedPublisher(_settings())
    # The cache is not released when the server stops; this flushes on the way out.
    atexit.register(shared.close)
    return shared


@st.cache_resource(show_spinner=False)
def _buttons() -> Any:
    """Registered once per process (registering again on every rerun logs a warning)."""
    return st.components.v2.component(
        "trading_buttons", html=_BUTTONS_HTML, css=_BUTTONS_CSS, js=_BUTTONS_JS
    )


def _format_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"


def _format_qty(qty: float) -> str:
    return f"{qty:g}"


def click_qty(raw: object) -> float | None:
    """The click's quantity as a float, or None when it is not a valid quantity.

    A bool is not a quantity (JSON ``true`` would otherwise pass as 1).
    """
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    qty = float(raw)
    return qty if math.isfinite(qty) and 0.0 <= qty <= MAX_QTY else None


def new_clicks(state: object, seen: Mapping[str, None]) -> list[tuple[str, str, float]]:
    """``(id, side, qty)`` of every well-formed click in ``state`` not in ``seen``, in order.

    The state comes from the browser, so anything malformed is skipped, never trusted.
    """
    if not isinstance(state, list):
        return []
    out = []
    for item in state:
        if not isinstance(item, dict):
            continue
        click_id, side, qty = item.get("id"), item.get("side"), click_qty(item.get("qty"))
        if isinstance(click_id, str) and len(click_id) <= 64 and side in SIDES and qty is not None:
            if click_id not in seen:
                out.append((click_id, str(side), qty))
    return out


class SeenClicks:
    """Click ids already emitted, for the whole process, checked and marked under one lock.

    Ids carry a random per-mount prefix, so one process-wide record is safe across
    sessions, and it does not depend on Streamlit keeping a session's state through an
    interrupted run or a reconnect: a click list that arrives again (every rerun sends the
    whole list) can never emit a click twice. The oldest ids go first past ``limit``; the
    browser keeps at most 512 recent clicks per mount, far below it.
    """

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self.limit = limit
        self._seen: dict[str, None] = {}
        self._lock = threading.Lock()

    def claim(self, state: object) -> list[tuple[str, str, float]]:
        """The clicks in ``state`` never claimed before, now marked as claimed."""
        with self._lock:
            fresh = new_clicks(state, self._seen)
            for click_id, _, _ in fresh:
                self._seen[click_id] = None
            for old in list(self._seen)[: max(0, len(self._seen) - self.limit)]:
                del self._seen[old]
        return fresh


@st.cache_resource(show_spinner=False)
def _seen_clicks() -> SeenClicks:
    return SeenClicks()


def _emit_new_clicks(state: object) -> None:
    """Emit one event and one log row per click not emitted yet, at the click's quantity.

    Streamlit stops a run for a newer rerun request at its own calls: any ``st.*``
    element, every ``st.session_state`` access, a cache lookup. One of those between
    claiming a click and emitting it lost the click (claimed, so never emitted later):
    every Streamlit call happens first, and from the claim on only plain Python runs.
    """
    seen = _seen_clicks()
    shared = _shared_publisher()
    log: list[Emitted] = st.session_state.setdefault(_LOG_KEY, [])
    for _, side, qty in seen.claim(state):
        log.insert(0, shared.trade(side, qty))
    del log[LOG_LIMIT:]


def _render_controls() -> None:
    result = _buttons()(key="trade_buttons", on_clicks_change=lambda: None)
    _emit_new_clicks(result.get("clicks"))


def _note_restarts(status: SidecarStatus) -> None:
    """Compare with the last reachable read of this page; remember a restart."""
    if not status.any_reachable:
        return
    before: SidecarStatus | None = st.session_state.get(_LAST_STATUS_KEY)
    st.session_state[_LAST_STATUS_KEY] = remembered(before, status)
    if before is not None:
        restarted = detect_restarts(before, status)
        if restarted:
            # Asked once per restart: the sidecar's GET / says where its counts began.
            which = "; ".join(
                f"{replica} {restart_origin(replica)}" if len(restarted) > 1 else
                restart_origin(replica)
                for replica in restarted
            )  # fmt: skip
            st.session_state[_RESTART_KEY] = (time.time(), which)


def _render_problem(value: float, label: str, explanation: str, *, level: str) -> None:
    """Zero is a grey caption; non-zero is a coloured box with what it means."""
    text = f"**{label}: {value:g}** — {explanation}"
    if value == 0:
        st.caption(f"{label}: 0 — {explanation}")
    elif level == "error":
        st.error(text, icon="🚨")
    else:
        st.warning(text, icon="⚠️")


def _render_sidecar(status: SidecarStatus, source: TotalsSource) -> None:
    if not status.reachable:
        st.warning(UNREACHABLE_TEXT.format(error=status.error), icon="⚠️")
    notice = st.session_state.get(_RESTART_KEY)
    if notice is not None and time.time() - notice[0] < RESTART_NOTICE_S:
        st.info(RESTART_TEXT.format(when=_format_ts(notice[0]), which=notice[1]), icon="🔄")
    st.subheader("Delivered and counted by the sidecar")
    replicas = f"{status.replicas_up} of {status.replicas} replicas" if status.replicas > 1 else ""
    st.caption(f"Read from {source.describe()}" + (f" · {replicas}" if replicas else ""))

    def shown(number: float) -> str:
        # Zeros from a failed scrape would read as "nothing traded"; show "unknown".
        return f"{number:g}" if status.any_reachable else "—"

    columns = iter(st.columns(4))
    for side in SIDES:
        next(columns).metric(f"{side.capitalize()} trades", shown(status.trades[side]))
        next(columns).metric(f"{side.capitalize()} volume", shown(status.volume[side]))
    if not status.any_reachable:
        return
    last = status.last_trade_ts
    st.caption(f"Last trade: {_format_ts(last) if last > 0 else 'none yet'}")
    _render_problem(
        status.lost,
        "Lost events",
        "sent by a publisher but never counted (gaps in its sequence numbers)",
        level="error",
    )
    _render_problem(
        status.invalid_total,
        "Invalid frames",
        "messages the sidecar refused as malformed (see telemetry_messages_invalid_total)",
        level="warning",
    )


def _render_client(stats: PublisherStats) -> None:
    st.subheader("This UI's publisher")
    queued, link = st.columns(2)
    queued.metric(
        "Queued",
        stats.sent,
        help="Handed to the ZeroMQ socket; delivered to the sidecar as soon as the link is up.",
    )
    link.metric("ZMQ link", "connected" if stats.connected else "waiting")
    _render_problem(
        stats.dropped,
        "Dropped",
        "the send queue was full, so these events were discarded here and never sent",
        level="warning",
    )


def rate_chart(points: Sequence[tuple[float, Mapping[str, float]]]) -> dict[str, Any]:
    """The Vega-Lite spec of trades per second by side over time, with units on the axes.

    Vega-Lite's default time axis, over the first seconds of a run, picks millisecond
    ticks that all read ".500"; whole seconds (``tickMinStep``) formatted as clock
    times in UTC, like every other time on the page, read as what they are.
    """
    rows = [
        {"time": t * 1000.0, "side": side, "rate": rates[side]}
        for t, rates in points
        for side in SIDES
    ]
    return {
        "data": {"values": rows},
        "mark": {"type": "line"},
        "height": 220,
        "encoding": {
            "x": {
                "field": "time",
                "type": "temporal",
                "title": "time (UTC)",
                "scale": {"type": "utc"},
                "axis": {"format": "%H:%M:%S", "tickMinStep": 1000, "labelOverlap": True},
            },
            "y": {
                "field": "rate",
                "type": "quantitative",
                "title": "trades/s",
                "axis": {"tickMinStep": 1},
            },
            "color": {
                "field": "side",
                "type": "nominal",
                "title": "side",
                "scale": {"domain": list(SIDES), "range": [BUY_COLOUR, SELL_COLOUR]},
            },
        },
    }


def _render_chart() -> None:
    points = _history().points()
    st.subheader("Trades per second, last 5 minutes")
    if len(points) < 2:
        st.caption("Collecting…")
        return
    st.vega_lite_chart(rate_chart(points), width="stretch")


@st.fragment(run_every=REFRESH_SECONDS)
def _live() -> None:
    source = _source()
    status = source.read()
    if status.any_reachable:
        _history().add(time.time(), status.trades)
    _note_restarts(status)
    _render_sidecar(status, source)
    _render_client(_shared_publisher().stats())
    _render_chart()


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
            "status": "queued" if e.queued else "dropped",
        }
        for e in log
    ]
    st.table(rows, hide_index=True)


def main() -> None:
    st.set_page_config(page_title="Trading", page_icon="📈")
    st.title("Trading")
    st.caption(
        "Each click is **queued** by this page's publisher, **delivered** over ZeroMQ to "
        "the sidecar, and **counted** there; the totals below are what was counted."
    )
    _render_controls()
    _live()
    _render_log()


# Streamlit runs this file as a script (its __name__ is "__main__"); importing it as a
# module, e.g. for type checking, must not draw a page.
if __name__ == "__main__":
    main()
