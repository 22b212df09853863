"""What every mode gets from the command line, and the progress bar they share."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm import tqdm  # type: ignore[import-untyped]

from trading_bench.sidecar import MetricsReader


class BenchError(RuntimeError):
    """A run that cannot give a meaningful result; the CLI prints it and exits 1."""


@dataclass(frozen=True)
class RunContext:
    run_id: str
    #: The sidecar's ZMQ address events go to.
    address: str
    #: Reads the sidecar's counters; None when the mode cannot know them (no URL given).
    reader: MetricsReader | None
    progress: bool
    #: The client's per-socket high-water mark; None: derived from its memory budget.
    sndhwm: int | None


@contextmanager
def progress_bar(ctx: RunContext, total: float, desc: str, unit: str = "ev") -> Iterator[tqdm]:
    """A tqdm bar on stderr, updated in chunks by the caller (never per timed call)."""
    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        disable=not ctx.progress,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


@contextmanager
def paced_progress(bar: tqdm, rate: float, total: int, period_s: float = 0.25) -> Iterator[None]:
    """Move ``bar`` from elapsed time on a thread of its own, for a paced loop.

    A paced loop's position is known from the clock (event *i* is due at i/rate), so
    the loop itself need not touch the bar at all: no update, and no rendering, between
    one deadline and the next. The thread sleeps between updates; when the loop sleeps
    it releases the GIL and the update fits into that idle time.
    """
    if bar.disable:
        yield
        return
    stop = threading.Event()
    t0 = time.perf_counter()

    def advance() -> None:
        while not stop.wait(period_s):
            bar.n = min(total, int((time.perf_counter() - t0) * rate))
            bar.refresh()

    thread = threading.Thread(target=advance, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.n = total
        bar.refresh()


def trade_mix(count: int, seed: int = 7) -> list[tuple[str, float]]:
    """Buys and sells with lot sizes that vary, as a trading loop's would."""
    rng = random.Random(seed)
    lots = [round(rng.uniform(0.01, 500.0), 2) for _ in range(997)]
    return [("buy" if rng.random() < 0.5 else "sell", lots[i % len(lots)]) for i in range(count)]
