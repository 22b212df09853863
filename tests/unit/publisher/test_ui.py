"""``ui``: which clicks of the browser's click list are new, decided once per process.

Every rerun sends the page's whole recent-click list; each click must become exactly one
event however often the list arrives, from however many runs or sessions at once, and
whatever malformed items the browser sends.
"""

from __future__ import annotations

import threading

from trading_publisher.ui import SeenClicks


def clicks(*ids: int, side: str = "buy", prefix: str = "p") -> list[dict[str, object]]:
    return [{"id": f"{prefix}-{n}", "side": side} for n in ids]


def test_a_click_list_that_arrives_again_emits_only_the_new_clicks() -> None:
    seen = SeenClicks()
    assert seen.claim(clicks(1, 2)) == [("p-1", "buy"), ("p-2", "buy")]
    assert seen.claim(clicks(1, 2)) == []
    assert seen.claim(clicks(1, 2, 3, 4)) == [("p-3", "buy"), ("p-4", "buy")]
    # Another page (another mount prefix) is not confused with this one.
    assert seen.claim(clicks(1, prefix="q", side="sell")) == [("q-1", "sell")]


def test_malformed_items_are_skipped_never_trusted() -> None:
    state = [
        "p-1", {"id": 7, "side": "buy"}, {"id": "p-2", "side": "hold"}, {"id": "x" * 65,
        "side": "buy"}, {"side": "buy"}, {"id": "p-3", "side": "sell"},
    ]  # fmt: skip
    assert SeenClicks().claim(state) == [("p-3", "sell")]
    assert SeenClicks().claim({"id": "p-1", "side": "buy"}) == []
    assert SeenClicks().claim(None) == []


def test_runs_claiming_the_same_list_at_once_emit_each_click_once() -> None:
    seen = SeenClicks()
    state = clicks(*range(500))
    claimed: list[tuple[str, str]] = []
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
    assert sorted(claimed) == sorted((f"p-{n}", "buy") for n in range(500))


def test_the_oldest_ids_are_forgotten_past_the_limit() -> None:
    seen = SeenClicks(limit=3)
    seen.claim(clicks(1, 2, 3, 4))
    assert seen.claim(clicks(2, 3, 4)) == []
    assert seen.claim(clicks(1)) == [("p-1", "buy")]  # forgotten, so new again
