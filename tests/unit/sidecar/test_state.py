"""``state``: a bad snapshot never stops the sidecar, and failing writes never go unseen.

Written as a crashing pod and a hostile volume would meet it: crafted content behind a
valid checksum, a folder where the file should be, at start and while running. Each
case checks what the operator sees: the file kept aside, one log line, the counters.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from telemetry_contract import metric_names as names
from telemetry_contract.events import Trade
from trading_sidecar.bench_metrics import BenchMetrics
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.state import (
    FILENAME,
    MAGIC,
    VERSION,
    Snapshot,
    StateKeeper,
    encode,
    register_state,
)

NOW = 1_700_000_000.0


def _good_body() -> bytes:
    metrics = TradeMetrics()
    metrics.record([Trade("buy", 2.0, NOW, "s", 0), Trade("sell", 1.0, NOW, "s", 3)], NOW)
    return encode(Snapshot(metrics.snapshot(), BenchMetrics().snapshot())).partition(b"\n")[2]


def signed(body: bytes) -> bytes:
    return f"{MAGIC} {VERSION} {hashlib.sha256(body).hexdigest()}\n".encode() + body


BODY = _good_body()
VOLUME = b'"volume":{"buy":2.0'


def _volume(value: bytes) -> bytes:
    return signed(BODY.replace(VOLUME, b'"volume":{"buy":' + value, 1))


BAD = [
    ("deep", signed(BODY.replace(b'"lost":', b'"lost":' + b"[" * 100_000, 1)), "content"),
    ("400 digits", _volume(b"9" * 400), "content"),
    ("-1e308", _volume(b"-1e308"), "content"),
    ("NaN", _volume(b"NaN"), "content"),
    ("checksum", signed(BODY)[:-3] + b"}}}", "checksum"),
    ("header", b"not a state file\n{}", "header"),
]


def keeper_for(directory: Path) -> tuple[StateKeeper, TradeMetrics, CollectorRegistry]:
    metrics = TradeMetrics()
    keeper = StateKeeper(directory, metrics, BenchMetrics(), interval_s=0.05)
    registry = CollectorRegistry()
    register_state(keeper, registry)
    return keeper, metrics, registry


def test_the_crafted_bodies_are_what_they_claim() -> None:
    assert VOLUME in BODY  # each case replaced something real
    assert len({data for _, data, _ in BAD}) == len(BAD)


@pytest.mark.parametrize(("name", "data", "reason"), BAD, ids=[n for n, _, _ in BAD])
def test_a_bad_snapshot_is_set_aside_counted_and_counting_starts_from_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, data: bytes, reason: str
) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(data)
    keeper, metrics, registry = keeper_for(tmp_path)
    with caplog.at_level(logging.WARNING, logger="trading_sidecar.state"):
        assert keeper.restore() is False  # no exception: a crash here is a crash loop
    assert [r.levelname for r in caplog.records] == ["WARNING"], caplog.text
    assert metrics.trades == {"buy": 0, "sell": 0} and metrics.volume["buy"] == 0.0
    [kept] = tmp_path.glob(f"{FILENAME}.bad-*")
    assert kept.read_bytes() == data and not path.exists()
    assert kept.name in caplog.text
    for each in names.STATE_RESTORE_REASONS:
        value = registry.get_sample_value(names.STATE_RESTORE_FAILURES, {"reason": each})
        assert value == (1.0 if each == reason else 0.0), each


def test_a_folder_where_the_snapshot_should_be_is_set_aside_at_start(tmp_path: Path) -> None:
    (tmp_path / FILENAME).mkdir()
    keeper, metrics, registry = keeper_for(tmp_path)
    assert keeper.restore() is False
    sample = registry.get_sample_value(names.STATE_RESTORE_FAILURES, {"reason": "unreadable"})
    assert sample == 1.0
    [kept] = tmp_path.glob(f"{FILENAME}.bad-*")
    assert kept.is_dir()
    keeper.start()
    metrics.record([Trade("buy", 1.0, NOW)], NOW)
    keeper.checkpoint()
    keeper.close()  # writes now succeed: the path is free again
    assert (tmp_path / FILENAME).is_file() and keeper.failures == 0


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[StateKeeper, CollectorRegistry]]:
    """A keeper with a receive loop that checkpoints, as the receiver does."""
    keeper, metrics, registry = keeper_for(tmp_path)
    keeper.restore()
    keeper.start()
    stop = threading.Event()

    def receive_loop() -> None:
        while not stop.is_set():
            metrics.record([Trade("buy", 1.0, NOW)], NOW)
            keeper.checkpoint()
            time.sleep(0.005)

    loop = threading.Thread(target=receive_loop)
    loop.start()
    yield keeper, registry
    stop.set()
    loop.join()
    keeper.close()


def test_failing_writes_are_counted_and_do_not_hold_every_scrape(
    running: tuple[StateKeeper, CollectorRegistry], tmp_path: Path
) -> None:
    keeper, registry = running
    path = tmp_path / FILENAME
    assert keeper.sync(timeout_s=10)  # healthy: waits for its snapshot, and gets it
    path.unlink()
    path.mkdir()  # a folder where the file should be: every write fails from now on
    while keeper.sync(timeout_s=10):
        pass  # the first failure ends this loop (it also ends a wait in progress)
    started = time.monotonic()
    answers = [keeper.sync() for _ in range(6)]
    elapsed = time.monotonic() - started
    # Waiting out each one (the old behaviour) takes 6 x 0.5 s at the very least.
    assert answers == [False] * 6 and elapsed < 2.5, elapsed
    failures = registry.get_sample_value(names.STATE_WRITE_FAILURES)
    assert failures is not None and failures >= 1
    path.rmdir()  # fixed: writes succeed again, and scrapes wait for them again
    deadline = time.monotonic() + 20
    while not keeper.sync(timeout_s=1):
        assert time.monotonic() < deadline, "writes never recovered"
    assert path.is_file() and not keeper.failing


def test_without_a_state_folder_the_series_exist_at_zero() -> None:
    registry = CollectorRegistry()
    register_state(None, registry)
    assert registry.get_sample_value(names.STATE_WRITE_FAILURES) == 0.0
    for reason in names.STATE_RESTORE_REASONS:
        sample = registry.get_sample_value(names.STATE_RESTORE_FAILURES, {"reason": reason})
        assert sample == 0.0
