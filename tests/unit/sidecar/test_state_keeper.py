"""``StateKeeper``: restore at start, the writer thread, ``sync`` and ``close``, the counters.

Real files in ``tmp_path`` and real threads; a folder where the snapshot file should be
makes every write fail (the rename cannot replace a folder), which is how a read-only or
full volume looks to the writer. Waits are on conditions with generous ceilings; the
bounds on ``sync`` are "at once, not after the timeout", with the timeout far above them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from telemetry_contract import metric_names as names
from telemetry_contract.events import Trade
from trading_sidecar import state
from trading_sidecar.bench_metrics import BenchMetrics
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.state import FILENAME, StateKeeper, decode, register_state

NOW = 1_700_000_000.0
LOGGER = "trading_sidecar.state"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def failures_other_than(keeper: StateKeeper, count: int) -> Callable[[], bool]:
    return lambda: keeper.failures != count


def restore_failures(registry: CollectorRegistry) -> dict[str, float | None]:
    return {
        reason: registry.get_sample_value(names.STATE_RESTORE_FAILURES, {"reason": reason})
        for reason in names.STATE_RESTORE_REASONS
    }


def on_disk(directory: Path) -> state.Snapshot:
    return decode((directory / FILENAME).read_bytes())


#: Every keeper a test made, closed after it (no writer thread outlives its test).
KEEPERS: list[StateKeeper] = []


@pytest.fixture(autouse=True)
def _close_keepers() -> Iterator[None]:
    yield
    while KEEPERS:
        KEEPERS.pop().close()


class Counting:
    """A keeper over fresh trade and benchmark counts, registered in a fresh registry."""

    def __init__(self, directory: Path, *, interval_s: float = 3600.0) -> None:
        self.bench = BenchMetrics()
        self.metrics = TradeMetrics(others=self.bench.record)
        self.keeper = StateKeeper(directory, self.metrics, self.bench, interval_s=interval_s)
        KEEPERS.append(self.keeper)
        self.registry = CollectorRegistry()
        register_state(self.keeper, self.registry)

    def trade(self, src: str = "p", seq: int = 0) -> None:
        self.metrics.record([Trade("buy", 1.0, NOW, src, seq)], NOW)

    def write_failures(self) -> float | None:
        return self.registry.get_sample_value(names.STATE_WRITE_FAILURES)


class Loop:
    """The receive loop's part: checkpoint every few ms, on a thread of its own."""

    def __init__(self, keeper: StateKeeper) -> None:
        self._keeper = keeper
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._keeper.checkpoint()
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def loops() -> Iterator[list[Loop]]:
    started: list[Loop] = []
    yield started
    for loop in started:
        loop.stop()


# --- restore ---------------------------------------------------------------------------


def test_restore_creates_a_missing_state_folder_and_its_parents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "a" / "b"
    keeper = Counting(directory).keeper
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert keeper.restore() is False
    assert directory.is_dir()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"no state snapshot at {directory / FILENAME}: counting from zero")
    ]


def test_restore_brings_back_the_trade_and_the_benchmark_counts(tmp_path: Path) -> None:
    before = Counting(tmp_path)
    before.trade("p", 4)
    before.trade("bench-1", 9)
    before.keeper.close()  # never started: the final snapshot is written right here
    assert on_disk(tmp_path).bench.trades == 1
    after = Counting(tmp_path)
    assert after.keeper.restore() is True
    assert after.metrics.trades["buy"] == 1 and after.bench.trades == 1
    assert after.metrics.streams.positions == {("p", 0): (4, 0)}
    assert after.bench.streams.positions == {("bench-1", 0): (9, 0)}
    assert restore_failures(after.registry) == dict.fromkeys(names.STATE_RESTORE_REASONS, 0.0)


def test_a_keeper_without_benchmark_counts_writes_zeros_for_them(tmp_path: Path) -> None:
    metrics = TradeMetrics()
    metrics.record([Trade("sell", 3.0, NOW, "p", 0)], NOW)
    StateKeeper(tmp_path, metrics).close()
    snapshot = on_disk(tmp_path)
    assert snapshot.trading.trades["sell"] == 1 and snapshot.bench.trades == 0
    assert StateKeeper(tmp_path, TradeMetrics()).restore() is True


def test_each_bad_snapshot_found_adds_one_to_its_reason(tmp_path: Path) -> None:
    counting = Counting(tmp_path)
    path = tmp_path / FILENAME
    for n, (data, reason) in enumerate(
        [(b"junk\n", "header"), (b"other-format 1 x\n{}", "header"), (b"junk\n", "header")]
    ):
        path.write_bytes(data)
        assert counting.keeper.restore() is False
        assert restore_failures(counting.registry)[reason] == n + 1
        assert not path.exists()
    assert len(list(tmp_path.glob(f"{FILENAME}.bad-*"))) == 3


def test_an_unexpected_error_while_reading_is_a_bad_snapshot_of_reason_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing a file holds may stop the start: a decoder failing in a way nobody
    foresaw is handled like bad content (the file is kept, one warning, +1)."""

    def broken(body: bytes) -> state.Body:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(state, "_DECODE_BODY", broken)
    counting = Counting(tmp_path)
    path = tmp_path / FILENAME
    for n in (1, 2):
        counting.trade()
        counting.keeper.close()  # a valid file: only the decoder fails on it
        data = path.read_bytes()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert counting.keeper.restore() is False
        assert not path.exists()
        assert restore_failures(counting.registry) == {
            "unreadable": 0.0, "header": 0.0, "checksum": 0.0, "content": float(n)
        }  # fmt: skip
        [kept] = [p for p in tmp_path.glob(f"{FILENAME}.bad-*") if p.read_bytes() == data]
        assert [r.getMessage() for r in caplog.records] == [
            f"state snapshot {path} is not usable (content: unexpected "
            "RecursionError('maximum recursion depth exceeded')): counting from zero; "
            f"it is kept as {kept.name}"
        ]
        kept.unlink()


# --- the writer thread -------------------------------------------------------------------


def test_the_writer_is_a_daemon_thread_named_state_writer(tmp_path: Path) -> None:
    """Named for thread dumps; a daemon, so a write stuck on a dead disk cannot keep the
    process alive once close() has waited its 30 s."""
    keeper = Counting(tmp_path).keeper
    before = set(threading.enumerate())
    keeper.start()
    [writer] = set(threading.enumerate()) - before
    assert (writer.name, writer.daemon) == ("state-writer", True)
    # An idle writer stops at once (close() would give up on it after 30 s): a SIGTERM
    # is not held up by it.
    closing = threading.Thread(target=keeper.close, daemon=True)
    closing.start()
    closing.join(10)
    assert not closing.is_alive() and not writer.is_alive()


def test_close_writes_the_last_totals_and_stops_the_writer(tmp_path: Path) -> None:
    counting = Counting(tmp_path)
    counting.keeper.start()
    for seq in range(5):
        counting.trade("p", seq)
    counting.keeper.close()
    snapshot = on_disk(tmp_path)
    assert snapshot.trading.trades["buy"] == 5
    assert snapshot.trading.streams.positions == {("p", 0): (4, 0)}


def test_close_without_a_writer_thread_writes_in_place(tmp_path: Path) -> None:
    counting = Counting(tmp_path)
    counting.trade()
    counting.keeper.close()
    assert on_disk(tmp_path).trading.trades["buy"] == 1


def test_snapshots_are_taken_no_more_often_than_the_interval(
    tmp_path: Path, loops: list[Loop]
) -> None:
    """Every write attempt fails here, and each is counted: the count is the number of
    attempts, which the interval (not the receive loop's pace) decides."""
    counting = Counting(tmp_path, interval_s=0.25)
    (tmp_path / FILENAME).mkdir()
    counting.keeper.start()
    started = time.monotonic()
    loops.append(Loop(counting.keeper))
    wait_until(lambda: counting.keeper.failures >= 1, "the first attempt")
    time.sleep(1.0)  # the loop checkpoints ~hundreds of times meanwhile
    attempts = counting.keeper.failures
    elapsed = time.monotonic() - started
    assert 1 <= attempts <= elapsed / 0.25 + 2, (attempts, elapsed)


# --- failing writes ----------------------------------------------------------------------


def test_each_failed_write_is_counted_once_logged_once_and_recovery_clears_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counting = Counting(tmp_path, interval_s=0.0)  # every checkpoint is due
    keeper = counting.keeper
    path = tmp_path / FILENAME
    path.mkdir()
    assert keeper.failing is False and counting.write_failures() == 0.0
    keeper.start()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for n in (1, 2, 3):
            keeper.checkpoint()
            wait_until(failures_other_than(keeper, n - 1), f"write attempt {n}")
            assert keeper.failures == n and counting.write_failures() == n
            assert keeper.failing is True
    [line] = caplog.records  # at most one line per 30 s
    assert line.levelname == "ERROR"
    assert line.getMessage().startswith(
        f"cannot write the state snapshot {path}: [Errno 21] Is a directory"
    ), line.getMessage()
    path.rmdir()  # the volume is fixed: the next attempt succeeds
    counting.trade()
    keeper.checkpoint()
    wait_until(lambda: path.is_file(), "a write after the recovery")
    wait_until(lambda: keeper.failing is False, "failing to clear")
    keeper.close()
    assert keeper.failures == 3 and counting.write_failures() == 3.0
    assert on_disk(tmp_path).trading.trades["buy"] == 1


def test_the_first_failed_write_is_logged_even_just_after_boot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monotonic clock counts from boot: a sidecar started with the node reads it
    below 30 s, and its first "cannot write" line must not wait for the clock to pass 30."""
    counting = Counting(tmp_path)
    (tmp_path / FILENAME).mkdir()
    monkeypatch.setattr(time, "monotonic", lambda: 5.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        counting.keeper.close()  # never started: the write happens here, on this thread
    monkeypatch.undo()
    assert counting.write_failures() == 1.0
    assert [r.levelname for r in caplog.records] == ["ERROR"], caplog.text


def test_close_counts_a_failed_final_write(tmp_path: Path) -> None:
    counting = Counting(tmp_path)
    (tmp_path / FILENAME).mkdir()
    counting.keeper.start()
    counting.keeper.close()
    assert counting.write_failures() == 1.0 and counting.keeper.failing is True


# --- sync: what /metrics waits for ---------------------------------------------------------


def _timed_sync(keeper: StateKeeper, timeout_s: float) -> tuple[bool | None, float]:
    """``keeper.sync(timeout_s)`` on a daemon thread: (answer, seconds), answer None if
    it had not returned after timeout_s + 20 s (a wait without its timeout)."""
    answer: list[bool] = []
    started = time.monotonic()
    waiter = threading.Thread(target=lambda: answer.append(keeper.sync(timeout_s)), daemon=True)
    waiter.start()
    waiter.join(timeout_s + 20)
    return (answer[0] if answer else None), time.monotonic() - started


def test_sync_gives_up_after_its_timeout_when_no_snapshot_comes(tmp_path: Path) -> None:
    keeper = Counting(tmp_path).keeper
    keeper.start()  # nobody calls checkpoint(): the snapshot never comes
    answer, _ = _timed_sync(keeper, 0.2)
    assert answer is False
    keeper.close()


def test_sync_waits_for_a_snapshot_taken_after_it(tmp_path: Path, loops: list[Loop]) -> None:
    counting = Counting(tmp_path)
    counting.keeper.start()
    loops.append(Loop(counting.keeper))
    wait_until(lambda: (tmp_path / FILENAME).is_file(), "the first snapshot")
    counting.trade()  # read by "a scrape" before it asks
    assert counting.keeper.sync(timeout_s=20) is True
    assert on_disk(tmp_path).trading.trades["buy"] == 1


def test_a_write_failing_while_sync_waits_ends_the_wait(tmp_path: Path, loops: list[Loop]) -> None:
    counting = Counting(tmp_path)  # one snapshot at start, then only when asked
    path = tmp_path / FILENAME
    counting.keeper.start()
    loops.append(Loop(counting.keeper))
    wait_until(path.is_file, "the first snapshot")
    path.unlink()
    path.mkdir()
    answer, elapsed = _timed_sync(counting.keeper, 20.0)
    assert answer is False and elapsed < 10, elapsed  # at the failure, not the timeout
    assert counting.keeper.failures == 1


def test_while_writes_fail_sync_answers_at_once(tmp_path: Path) -> None:
    counting = Counting(tmp_path)
    (tmp_path / FILENAME).mkdir()
    counting.keeper.start()
    counting.keeper.checkpoint()
    wait_until(lambda: counting.keeper.failures == 1, "the failed write")
    # Nobody checkpoints now: a sync that waited would wait out all of its 20 s.
    answer, elapsed = _timed_sync(counting.keeper, 20.0)
    assert answer is False and elapsed < 10, elapsed
    counting.keeper.close()


# --- the exported series -------------------------------------------------------------------


def test_the_series_help_says_what_a_failure_means(tmp_path: Path) -> None:
    text = generate_latest(Counting(tmp_path).registry).decode()
    assert (
        f"# HELP {names.STATE_WRITE_FAILURES} State snapshot writes that failed; while they "
        "fail, /metrics answers without waiting for a snapshot on disk (a restart may then "
        "lose counts already scraped).\n"
    ) in text
    assert (
        f"# HELP {names.STATE_RESTORE_FAILURES} State snapshots found unusable at start "
        "(moved aside, counting from zero), by reason.\n"
    ) in text
