"""The trading UI in a real browser: real ``trading-ui`` process, real sidecar, Chromium.

Debian's chromium is driven through Playwright's protocol client only (Playwright's own
browser download is never used). One browser serves the module; every test gets its
own UI process and page, and checks the UI exits 0 on SIGTERM.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from support import (
    BIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    Proc,
    Sidecar,
    free_port,
    push_frames,
    start_process,
    value,
    wait_for,
    wait_http_ok,
)
from telemetry_contract import metric_names as names
from telemetry_contract.codec import encode_trade

pytestmark = pytest.mark.browser

#: Budget for one UI update to show: the live panel refreshes every second.
UI_TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    opened = context.new_page()
    yield opened
    context.close()


def start_ui(log_dir: Path, sidecar: Sidecar) -> tuple[Proc, str]:
    port = free_port()
    proc = start_process(
        [str(BIN / "trading-ui")],
        log_dir / f"ui-{port}.log",
        {
            "TT_PUBLISHER_ZMQ_CONNECT": sidecar.zmq_address,
            "TT_PUBLISHER_SIDECAR_URL": sidecar.url,
            "TT_PUBLISHER_UI_PORT": str(port),
            "TT_PUBLISHER_SOURCE": "ui-test",
        },
        name="trading-ui",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc, f"{url}/_stcore/health")
    except AssertionError:
        proc.stop()
        raise
    return proc, url


def stop_ui(proc: Proc) -> None:
    code = proc.stop()
    assert code == 0, f"trading-ui exited {code} on SIGTERM:\n{proc.log()}"


@pytest.fixture
def ui_url(sidecar: Sidecar, tmp_path: Path) -> Iterator[str]:
    """A ``trading-ui`` in front of the test's sidecar; it must exit 0 on SIGTERM."""
    proc, url = start_ui(tmp_path, sidecar)
    yield url
    stop_ui(proc)


def metric(page: Page, label: str) -> str:
    return (
        page.get_by_test_id("stMetric")
        .filter(has_text=label)
        .get_by_test_id("stMetricValue")
        .inner_text()
    )


def log_rows(page: Page) -> list[list[str]]:
    """The UI's event log as cells: [time, side, qty, status], newest first."""
    rows = page.get_by_test_id("stTable").locator("tbody tr").all()
    return [[cell.strip() for cell in row.locator("td").all_inner_texts()] for row in rows]


def expect_no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def open_ui(page: Page, url: str) -> Locator:
    """Load the UI and wait until its Buy button is drawn; returns that button."""
    page.goto(url)
    buy = page.get_by_role("button", name="Buy", exact=True)
    expect(buy).to_be_visible(timeout=UI_TIMEOUT_MS)
    return buy


def click(page: Page, name: str, rows_after: int) -> None:
    """Click, then wait until the log shows the event (one rerun at a time, like a person)."""
    page.get_by_role("button", name=name, exact=True).click()
    wait_for(lambda: len(log_rows(page)) == rows_after, what=f"{rows_after} rows in the log")


class Shots:
    """Saves a screenshot under the test's tmp dir and names it in failure messages."""

    def __init__(self, page: Page, tmp_path: Path) -> None:
        self.page, self.path = page, tmp_path / "ui.png"

    def fail(self, message: str) -> str:
        try:
            self.page.screenshot(path=str(self.path), full_page=True)
        except Exception as exc:  # noqa: BLE001 - the message matters more than the picture
            return f"{message}\n(no screenshot: {exc!r})"
        return f"{message}\nscreenshot: {self.path}"


def background(page: Page, name: str) -> tuple[int, int, int]:
    """The button's computed background colour as (r, g, b)."""
    css = page.get_by_role("button", name=name, exact=True).evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    r, g, b = (int(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return r, g, b


def test_buy_and_sell_reach_the_sidecar_and_the_log(
    sidecar: Sidecar, ui_url: str, page: Page, tmp_path: Path
) -> None:
    page.goto(ui_url)
    expect(page.get_by_role("heading", name="Trading")).to_be_visible(timeout=UI_TIMEOUT_MS)
    qty = page.get_by_label("Quantity")
    qty.fill("3")
    qty.press("Enter")
    expect(qty).to_have_value("3")
    click(page, "Buy", rows_after=1)
    click(page, "Sell", rows_after=2)

    def counted() -> bool:
        s = sidecar.scrape()
        return value(s, names.TRADES, side="buy") == 1 and value(s, names.TRADES, side="sell") == 1

    wait_for(counted, what="one buy and one sell in the sidecar")
    s = sidecar.scrape()
    assert value(s, names.VOLUME, side="buy") == 3
    assert value(s, names.VOLUME, side="sell") == 3
    assert value(s, names.LOST) == 0

    (newest_ts, *newest), (oldest_ts, *oldest) = log_rows(page)
    assert newest == ["sell", "3", "queued"]
    assert oldest == ["buy", "3", "queued"]
    assert newest_ts.endswith(" UTC") and oldest_ts.endswith(" UTC")

    # The live panel shows the sidecar's totals and the client's own counts.
    # (Polled as a whole: a refresh from between the two clicks shows buy but no sell.)
    live = {"Buy trades": "1", "Buy volume": "3", "Sell trades": "1", "Sell volume": "3"}
    wait_for(lambda: {k: metric(page, k) for k in live} == live, what=f"live panel {live}")
    assert metric(page, "Queued") == "2"
    expect(page.get_by_text("Dropped: 0")).to_be_visible()
    expect(page.get_by_text("Last trade:")).not_to_contain_text("none yet")
    expect(page.get_by_text("events may be dropped")).to_have_count(0)
    expect_no_exception(page)
    page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)


def test_warning_while_the_sidecar_is_away(page: Page, tmp_path: Path) -> None:
    absent = Sidecar(zmq_port=free_port())  # promised to the UI before it listens
    proc, url = start_ui(tmp_path, absent)
    try:
        page.goto(url)
        warning = page.get_by_text("events may be dropped")
        expect(warning).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect_no_exception(page)
        assert metric(page, "Buy trades") == "—"

        absent.start(tmp_path)  # same ports the UI was told about
        expect(warning).to_have_count(0, timeout=UI_TIMEOUT_MS)
        click(page, "Buy", rows_after=1)
        wait_for(
            lambda: value(absent.scrape(), names.TRADES, side="buy") == 1,
            what="the click counted by the sidecar",
        )
        assert value(absent.scrape(), names.VOLUME, side="buy") == 1
        wait_for(lambda: metric(page, "Buy trades") == "1", what="live buy count")

        assert absent.stop() == 0
        expect(warning).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect_no_exception(page)

        # Back with fresh counters: the page says it restarted instead of quietly
        # showing smaller numbers.
        absent.start(tmp_path)
        expect(warning).to_have_count(0, timeout=UI_TIMEOUT_MS)
        click(page, "Buy", rows_after=2)
        wait_for(lambda: metric(page, "Buy trades") == "1", what="buy count after the restart")
        notice = page.get_by_text("The sidecar restarted")
        expect(notice).to_be_visible(timeout=UI_TIMEOUT_MS)
        # This sidecar keeps no state (no TT_SIDECAR_STATE_DIR): the page says so.
        expect(notice).to_contain_text("started from zero: it keeps no state")
    finally:
        if absent.proc is not None:
            absent.stop()
        stop_ui(proc)


def test_ten_fast_clicks_are_ten_events_and_ten_rows(
    sidecar: Sidecar, ui_url: str, page: Page, tmp_path: Path
) -> None:
    """No pause between clicks: Streamlit's rerun coalescing must not swallow any."""
    shots = Shots(page, tmp_path)
    buy = open_ui(page, ui_url)
    for _ in range(10):
        buy.click(delay=0)
    try:
        wait_for(
            lambda: value(sidecar.scrape(), names.TRADES, side="buy") == 10,
            what="ten buys counted by the sidecar",
        )
        wait_for(lambda: len(log_rows(page)) == 10, what="ten rows in the page log")
    except AssertionError as exc:
        counted = value(sidecar.scrape(), names.TRADES, side="buy")
        raise AssertionError(
            shots.fail(f"{exc}; sidecar counted {counted}, log has {len(log_rows(page))}")
        ) from None
    assert all(row[1:] == ["buy", "1", "queued"] for row in log_rows(page))
    # Settled: nothing more arrives later either.
    wait_for(lambda: metric(page, "Buy trades") == "10", what="live buy count 10")
    assert value(sidecar.scrape(), names.TRADES, side="buy") == 10, shots.fail("more than 10")
    assert len(log_rows(page)) == 10, shots.fail("log grew past 10")
    # The activity chart: trades per second by side, drawn once two reads exist.
    expect(page.get_by_text("Trades per second, last 5 minutes")).to_be_visible()
    chart = page.get_by_test_id("stVegaLiteChart")
    try:
        expect(chart).to_have_count(1, timeout=UI_TIMEOUT_MS)
        expect(chart.locator("g.role-axis-title text")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    except AssertionError as exc:
        raise AssertionError(shots.fail(f"no rate chart: {exc}")) from None
    assert_chart_axes_read_as_units_and_clock_times(chart, shots)


def assert_chart_axes_read_as_units_and_clock_times(chart: Locator, shots: Shots) -> None:
    """The rate chart's axes as drawn: a unit on y, whole-second clock times on x.

    Vega's default time axis, over the first seconds, labels every tick ".500".
    """
    titles = chart.locator("g.role-axis-title text").all_text_contents()
    assert "trades/s" in titles and "time (UTC)" in titles, shots.fail(f"axis titles {titles}")

    def x_ticks() -> list[str]:
        return [t for t in chart.locator("g.role-axis-label text").all_text_contents() if ":" in t]

    # The chart gains a point a second: wait until it spans more than one tick.
    try:
        wait_for(lambda: len(x_ticks()) >= 2, what="two x ticks on the rate chart")
    except AssertionError as exc:
        raise AssertionError(shots.fail(f"{exc}: {x_ticks()}")) from None
    ticks = x_ticks()
    assert len(set(ticks)) == len(ticks), shots.fail(f"repeated x tick labels {ticks}")
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", tick) for tick in ticks), shots.fail(
        f"x tick labels are not clock times: {ticks}"
    )


def test_buy_is_green_sell_is_red_and_lost_events_stand_out(
    sidecar: Sidecar, ui_url: str, page: Page, tmp_path: Path
) -> None:
    shots = Shots(page, tmp_path)
    open_ui(page, ui_url)
    r, g, b = background(page, "Buy")
    assert g > r and g > b, shots.fail(f"Buy is rgb{(r, g, b)}, not green")
    r, g, b = background(page, "Sell")
    assert r > g and r > b, shots.fail(f"Sell is rgb{(r, g, b)}, not red")
    # Zero lost: a plain caption, no alert.
    expect(page.get_by_text("Lost events: 0")).to_be_visible(timeout=UI_TIMEOUT_MS)

    # seq 0 then seq 3: the sidecar counts two lost events.
    push_frames(
        sidecar.zmq_address,
        encode_trade("buy", 1.0, 1_700_000_000.0, "ui-lost-test", 0),
        encode_trade("buy", 1.0, 1_700_000_001.0, "ui-lost-test", 3),
    )
    wait_for(lambda: value(sidecar.scrape(), names.LOST) == 2, what="2 lost")
    alert = page.get_by_test_id("stAlert").filter(has_text="Lost events: 2")
    try:
        expect(alert).to_be_visible(timeout=UI_TIMEOUT_MS)
    except AssertionError as exc:
        raise AssertionError(shots.fail(f"lost count not highlighted: {exc}")) from None
    assert "never counted" in alert.inner_text()
    page.screenshot(path=str(tmp_path / "ui-lost.png"), full_page=True)


def test_a_click_books_the_quantity_shown_when_it_was_clicked(
    sidecar: Sidecar, ui_url: str, page: Page, tmp_path: Path
) -> None:
    """Quantity changed between fast clicks: each click carries the quantity it saw.

    Three rounds of: quantity 1, ten fast Buy clicks, type 100 + Enter, one Buy click.
    Each round is eleven trades and 1 * 10 + 100 = 110 volume, counted by the sidecar;
    a UI that reads the quantity when it processes a click (not when it was clicked)
    books some of the ten at 100.
    """
    shots = Shots(page, tmp_path)
    buy = open_ui(page, ui_url)
    qty = page.get_by_label("Quantity")

    def buys() -> float:
        return value(sidecar.scrape(), names.TRADES, side="buy")

    for round_no in range(1, 4):
        qty.fill("1")
        qty.press("Enter")
        for _ in range(10):
            buy.click(delay=0)
        qty.fill("100")
        qty.press("Enter")
        buy.click(delay=0)
        try:
            wait_for(
                lambda: buys() == 11 * round_no,  # noqa: B023 - called in this iteration
                what=f"{11 * round_no} buys counted after round {round_no}",
            )
        except AssertionError as exc:
            raise AssertionError(shots.fail(str(exc))) from None
        volume = value(sidecar.scrape(), names.VOLUME, side="buy")
        assert volume == 110 * round_no, shots.fail(
            f"round {round_no}: sidecar counted volume {volume:g}, expected {110 * round_no}"
        )
    # Settled: no late click arrives, and the page's log shows what was booked.
    wait_for(lambda: len(log_rows(page)) == 33, what="33 rows in the page log")
    assert sorted(row[2] for row in log_rows(page)) == ["1"] * 30 + ["100"] * 3
    assert value(sidecar.scrape(), names.TRADES, side="buy") == 33
    expect_no_exception(page)

    # A quantity that is not one books nothing and says why, right under the field.
    for bad in ("-5", ""):
        qty.fill(bad)
        buy.click(delay=0)
        expect(page.get_by_test_id("tt-qty-error")).to_contain_text("nothing was booked")
    qty.fill("2")
    buy.click(delay=0)
    expect(page.get_by_test_id("tt-qty-error")).to_be_hidden()
    wait_for(lambda: len(log_rows(page)) == 34, what="34 rows in the page log")
    s = sidecar.scrape()
    assert value(s, names.TRADES, side="buy") == 34
    assert value(s, names.VOLUME, side="buy") == 332
