"""``ui``: which clicks of the browser's click list are new, decided once per process.

Every rerun sends the page's whole recent-click list; each click must become exactly one
event however often the list arrives, from however many runs or sessions at once, and
whatever malformed items the browser sends.
"""

from __future__ import annotations

import math
import threading

import pytest
from telemetry_contract.events import MAX_QTY
from trading_publisher.ui import SeenClicks, click_qty


def clicks(
    *ids: int, side: str = "buy", prefix: str = "p", qty: object = 1
) -> list[dict[str, object]]:
    return [{"id": f"{prefix}-{n}", "side": side, "qty": qty} for n in ids]


def test_a_click_list_that_arrives_again_emits_only_the_new_clicks() -> None:
    seen = SeenClicks()
    assert seen.claim(clicks(1, 2)) == [("p-1", "buy", 1.0), ("p-2", "buy", 1.0)]
    assert seen.claim(clicks(1, 2)) == []
    assert seen.claim(clicks(1, 2, 3, 4)) == [("p-3", "buy", 1.0), ("p-4", "buy", 1.0)]
    # Another page (another mount prefix) is not confused with this one.
    assert seen.claim(clicks(1, prefix="q", side="sell")) == [("q-1", "sell", 1.0)]


def test_each_click_keeps_its_own_quantity() -> None:
    """The quantity travels with the click; later clicks never change earlier ones."""
    state = clicks(1, 2, qty=1) + clicks(3, qty=100) + clicks(4, qty=2.5)
    assert [qty for _, _, qty in SeenClicks().claim(state)] == [1.0, 1.0, 100.0, 2.5]


@pytest.mark.parametrize(
    "raw",
    [True, False, None, "1", -1, -0.5, math.nan, math.inf, -math.inf, MAX_QTY * 2, [1], {}],
)
def test_a_click_without_a_valid_quantity_books_nothing(raw: object) -> None:
    assert click_qty(raw) is None
    assert SeenClicks().claim(clicks(1, qty=raw)) == []


@pytest.mark.parametrize("raw", [0, 1, 100, 0.25, MAX_QTY])
def test_valid_quantities_pass_as_floats(raw: float) -> None:
    assert click_qty(raw) == float(raw)


def test_malformed_items_are_skipped_never_trusted() -> None:
    state = [
        "p-1", {"id": 7, "side": "buy"}, {"id": "p-2", "side": "hold"}, {"id": "x" * 65,
        "side": "buy"}, {"side": "buy"}, {"id": "p-3", "side": "sell", "qty": 2},
    ]  # fmt: skip
    assert SeenClicks().claim(state) == [("p-3", "sell", 2.0)]
    assert SeenClicks().claim({"id": "p-1", "side": "buy", "qty": 1}) == []
    assert SeenClicks().claim(None) == []


def test_runs_claiming_the_same_list_at_once_emit_each_click_once() -> None:
    seen = SeenClicks()
    state = clicks(*range(500))
    claimed: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        for _ in range(20):
            fresh = seen.claim(state)
            with lock:
                claimed.extend(fresh)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(claimed) == sorted((f"p-{n}", "buy", 1.0) for n in range(500))


def test_the_oldest_ids_are_forgotten_past_the_limit() -> None:
    seen = SeenClicks(limit=3)
    seen.claim(clicks(1, 2, 3, 4))
    assert seen.claim(clicks(2, 3, 4)) == []
    assert seen.claim(clicks(1)) == [("p-1", "buy", 1.0)]  # forgotten, so new again
