"""Counts that survive restarts (TT_SIDECAR_STATE_DIR): the file format, and real processes.

The process tests publish 200,000 events at about 20,000/s from the real client, kill or
stop the sidecar in the middle, start it again on the same ports and state folder while
the client keeps publishing, and then require counted + lost == sent, exactly, and that
no counter went backwards between the last scrape before and the first one after.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from support import Samples, Sidecar, new_sidecar, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.errors import Reason
from telemetry_contract.events import BenchmarkResult, Trade
from trading_publisher.client import Publisher
from trading_sidecar.bench_metrics import BenchMetrics
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.state import (
    FILENAME,
    KEEP_BAD,
    MAGIC,
    VERSION,
    Snapshot,
    StateError,
    StateKeeper,
    decode,
    encode,
    load,
    write_atomic,
)

EVENTS = 200_000
RATE = 20_000.0
RESULT = BenchmarkResult(
    run_id="r", mode="burst", variant="client", events=10, sent=10, dropped=0, received=10,
    lost=0, elapsed_s=0.01, rate=1000.0, target_rate=0.0, p50_us=1.0, p90_us=2.0,
    p99_us=3.0, p999_us=4.0, max_us=5.0, started_at=1.76e9, finished_at=1.76e9 + 1,
)  # fmt: skip


class Counted:
    """The trade counts and the benchmark counts, wired as the app wires them."""

    def __init__(self) -> None:
        self.bench = BenchMetrics()
        self.trading = TradeMetrics(others=self.bench.record)

    def snapshot(self) -> Snapshot:
        return Snapshot(self.trading.snapshot(), self.bench.snapshot())

    def restore(self, snapshot: Snapshot) -> None:
        self.trading.restore(snapshot.trading)
        self.bench.restore(snapshot.bench)


def _populated() -> Counted:
    """Totals of every kind and loss tables with gaps, streams and epochs."""
    counted = Counted()
    metrics = counted.trading
    now = time.time()
    events = [
        Trade(side="buy" if i % 3 else "sell", qty=1.5 + i % 5, ts=now - 0.001 * (i % 7),
              src=(f"bench-{i % 20}" if i % 10 == 0 else f"p{i % 4}"), seq=i + (i % 4) * 3,
              stream=i % 2, epoch=i // 200)
        for i in range(400)
    ]  # fmt: skip
    metrics.received = 404
    metrics.record([*events, RESULT], now)  # the result is set aside for the bench counts
    metrics.record_invalid(Reason.INVALID_SIDE)
    return counted


def _same(a: Counted, b: Counted) -> None:
    assert asdict(a.snapshot()) == asdict(b.snapshot())
    for x, y in ((a.trading, b.trading), (a.bench, b.bench)):  # LRU order too
        assert list(x.streams.positions) == list(y.streams.positions)


# --- the file ------------------------------------------------------------------------


def test_snapshot_round_trips_every_total_and_the_loss_table() -> None:
    counted = _populated()
    metrics, bench = counted.trading, counted.bench
    assert metrics.lost > 0 and len(metrics.streams.positions) == 4
    assert bench.trades == 40 and bench.lost > 0 and bench.results == 1
    assert set(bench.streams.positions) == {("bench-0", 0), ("bench-10", 0)}
    restored = Counted()
    restored.restore(decode(encode(counted.snapshot())))
    _same(counted, restored)


def test_each_loss_table_comes_back_to_its_own_collector() -> None:
    """One ``streams`` list in the file, as before the split: the src prefix sorts it."""
    counted = _populated()
    on_disk = decode(encode(counted.snapshot()))
    assert all(src.startswith("bench-") for src, _ in on_disk.bench.streams.positions)
    assert not any(src.startswith("bench-") for src, _ in on_disk.trading.streams.positions)
    # A file written when the tables were one (keys interleaved) loads the same way.
    header, _, body = encode(counted.snapshot()).partition(b"\n")
    raw = json.loads(body)
    raw["streams"].reverse()
    mixed = json.dumps(raw, separators=(",", ":")).encode()
    digest = hashlib.sha256(mixed).hexdigest()
    again = decode(f"{MAGIC} {VERSION} {digest}\n".encode() + mixed)
    assert again.trading.streams.positions == on_disk.trading.streams.positions
    assert again.bench.streams.positions == on_disk.bench.streams.positions


def _tampered() -> list[tuple[str, bytes]]:
    good = encode(_populated().snapshot())
    header, _, body = good.partition(b"\n")
    flipped = bytearray(good)
    flipped[len(header) + 10] ^= 0x01
    negative = body.replace(b'"lost":', b'"lost":-', 1)

    def signed(text: bytes) -> bytes:
        return f"{MAGIC} {VERSION} {hashlib.sha256(text).hexdigest()}\n".encode() + text

    return [
        ("empty", b""),
        ("header only", header),
        ("truncated body", good[: len(good) // 2]),
        ("one byte flipped", bytes(flipped)),
        ("other format", good.replace(f" {VERSION} ".encode(), b" 99 ", 1)),
        ("not ours", b'{"trades": 1}\n{}'),
        ("binary noise", bytes(range(256)) * 3),
        ("negative count, valid checksum", signed(negative)),
        ("NaN volume, valid checksum",
         signed(body.replace(b'"volume":{"buy":', b'"volume":{"buy":NaN,"x":', 1))),
        ("missing field, valid checksum", signed(body.replace(b'"lost"', b'"lose"', 1))),
        ("wrong shape, valid checksum", signed(b"[1, 2, 3]")),
        ("bad stream entry, valid checksum",
         signed(body.replace(b'"streams":[[', b'"streams":[[1,', 1))),
        *crafted(body),
    ]  # fmt: skip


def signed(text: bytes) -> bytes:
    return f"{MAGIC} {VERSION} {hashlib.sha256(text).hexdigest()}\n".encode() + text


def crafted(body: bytes) -> list[tuple[str, bytes]]:
    """Content behind a valid checksum that once crashed or fooled the restore."""

    def volume(value: bytes) -> bytes:
        return signed(body.replace(b'"volume":{"buy":', b'"volume":{"buy":' + value + b',"x":', 1))

    deep = b"[" * 100_000
    return [
        ("[ nested 100,000 deep", signed(body.replace(b'"lost":', b'"lost":' + deep, 1))),
        ("[ nested in a new key", signed(b'{"x":' + deep + b"]" * 100_000 + b"}")),
        ("400-digit volume", volume(b"9" * 400)),
        ("-1e308 volume", volume(b"-1e308")),
        ("1e400 latency sum", signed(body.replace(b'"latency_sum":', b'"latency_sum":1e400,"y":'))),
        (
            "9,000 streams",
            signed(body.replace(b'"streams":[', b'"streams":[' + b'["s",0,0,0],' * 9000)),
        ),
    ]


@pytest.mark.parametrize(("name", "data"), _tampered(), ids=[n for n, _ in _tampered()])
def test_anything_but_a_valid_snapshot_is_refused(name: str, data: bytes) -> None:
    with pytest.raises(StateError):
        decode(data)


def test_load_warns_once_and_starts_from_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / FILENAME
    cases = _tampered()
    for _, data in cases:
        path.write_bytes(data)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="trading_sidecar.state"):
            assert load(path) is None
        assert len(caplog.records) == 1, caplog.text
        assert "counting from zero" in caplog.text
        assert not path.exists()  # moved aside, for inspection
    kept = sorted(tmp_path.glob(f"{FILENAME}.bad-*"))
    assert len(kept) == KEEP_BAD and kept[-1].read_bytes() == cases[-1][1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trading_sidecar.state"):
        assert load(path) is None
    assert len(caplog.records) == 1 and "no state snapshot" in caplog.text


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    write_atomic(path, b"first")
    write_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]
    assert path.stat().st_mode & 0o077 == 0


def test_keeper_sync_waits_for_a_snapshot_newer_than_the_request(tmp_path: Path) -> None:
    """What /metrics relies on: after sync(), the file holds at least what was read."""
    counted = Counted()
    metrics = counted.trading
    keeper = StateKeeper(tmp_path, metrics, counted.bench, interval_s=3600)
    assert not keeper.restore()
    keeper.start()
    stop = threading.Event()
    seen: list[int] = []

    def receive_loop() -> None:  # the receiver's part: count, then checkpoint
        seq = 0
        while not stop.is_set():
            metrics.record([Trade(side="buy", qty=1.0, ts=time.time(), src="s", seq=seq)],
                           time.time())  # fmt: skip
            seq += 1
            keeper.checkpoint()

    loop = threading.Thread(target=receive_loop)
    loop.start()
    try:
        for _ in range(20):
            read = metrics.trades["buy"]
            assert keeper.sync(timeout_s=10)
            on_disk = decode((tmp_path / FILENAME).read_bytes())
            assert on_disk.trading.trades["buy"] >= read
            seen.append(on_disk.trading.trades["buy"])
    finally:
        stop.set()
        loop.join()
        keeper.close()
    assert seen == sorted(seen) and seen[-1] > seen[0]
    final = decode((tmp_path / FILENAME).read_bytes())
    assert final.trading.trades["buy"] == metrics.trades["buy"]
    assert final.trading.streams.positions == {("s", 0): (metrics.trades["buy"] - 1, 0)}
    again = Counted()
    assert StateKeeper(tmp_path, again.trading, again.bench).restore()
    _same(counted, again)


# --- real processes --------------------------------------------------------------------


def _totals(samples: Samples) -> tuple[float, float]:
    """(trades counted over both sides, events lost)."""
    counted = value(samples, names.TRADES, side="buy") + value(samples, names.TRADES, side="sell")
    return counted, value(samples, names.LOST)


class PacedPublisher:
    """The real client publishing EVENTS at about RATE from a thread, src/seq on each."""

    def __init__(self, address: str) -> None:
        self.publisher = Publisher(address, source="state-test")
        self.sent = 0
        self.done = threading.Event()
        #: Cleared to hold the stream between two chunks (``paused`` says it is held).
        self.running = threading.Event()
        self.running.set()
        self.paused = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paced-publisher")

    def start(self) -> PacedPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            start = time.monotonic()
            chunk = 200
            for first in range(0, EVENTS, chunk):
                if not self.running.is_set():
                    held = time.monotonic()
                    self.paused.set()
                    self.running.wait()
                    self.paused.clear()
                    start += time.monotonic() - held  # resume the pace, no catch-up burst
                due = start + first / RATE
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                for i in range(first, min(first + chunk, EVENTS)):
                    self.publisher.trade("buy" if i % 2 else "sell", 1.0)
                    self.sent += 1
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> None:
        self._thread.join(120)
        assert self.error is None, self.error
        assert self.done.is_set()

    def close(self) -> None:
        self.publisher.close(5_000)


def _restart_mid_stream(tmp_path: Path, how: str) -> tuple[Samples, Samples, Samples, int]:
    """Publish, stop the sidecar ``how`` at ~1/3, restart it, finish; returns the last
    scrape before the stop, the first after the restart, the final one, and how many
    events the client itself dropped (they use up seq numbers, so they count as lost)."""
    state_dir = tmp_path / "state"
    sidecar = new_sidecar(TT_SIDECAR_STATE_DIR=str(state_dir)).start(tmp_path)
    publisher = PacedPublisher(sidecar.zmq_address).start()
    try:
        wait_for(lambda: _totals(sidecar.scrape())[0] >= EVENTS // 3, timeout=60,
                 interval=0.02, what="a third of the events counted")  # fmt: skip
        assert sidecar.proc is not None
        if how == "kill":  # mid-stream: whatever is in flight dies with the process
            before = sidecar.scrape()
            sidecar.proc.process.kill()
            sidecar.proc.process.wait(10)
        else:
            # Between two chunks: a graceful stop must count every frame that reached it.
            # Frames still in the client's socket at the instant of a stop are lost
            # whatever the sidecar does (ZeroMQ has no acks; they would count as lost,
            # as in the kill case), so the stop waits until the sidecar has counted
            # every event the client handed to ZeroMQ.
            publisher.running.clear()
            assert publisher.paused.wait(10)
            client = publisher.publisher

            def delivered() -> Samples | None:
                samples = sidecar.scrape()
                handed = client.sent if client.queued == 0 else -1
                return samples if handed >= 0 and _totals(samples)[0] >= handed else None

            before = wait_for(delivered, timeout=60, interval=0.02,
                              what="the last chunk counted")  # fmt: skip
            assert sidecar.stop() == 0
        assert (state_dir / FILENAME).exists()
        sidecar.start(tmp_path)  # same ports, same state folder
        after = sidecar.scrape()
        publisher.running.set()
        publisher.join()
        assert publisher.sent == EVENTS

        def all_accounted() -> Samples | None:
            samples = sidecar.scrape()
            return samples if sum(_totals(samples)) >= EVENTS else None

        final = wait_for(all_accounted, timeout=90, interval=0.2,
                         what="every event counted or known lost")  # fmt: skip
        time.sleep(1.0)  # nothing more may arrive: the sums must stay put
        settled = sidecar.scrape()
        assert _totals(settled) == _totals(final)
        return before, after, settled, publisher.publisher.dropped
    finally:
        publisher.close()
        code = sidecar.stop()
        assert code == 0, sidecar.proc.log() if sidecar.proc else ""


@pytest.mark.parametrize("how", ["kill", "term"])
def test_restart_mid_stream_keeps_counting_exactly(tmp_path: Path, how: str) -> None:
    before, after, final, dropped = _restart_mid_stream(tmp_path, how)
    counted, lost = _totals(final)
    assert counted + lost == EVENTS, (counted, lost, dropped)
    if how == "term":
        # A graceful stop counts everything that reached it: the only gaps are events the
        # client itself dropped while the sidecar was away (none, with its default queue).
        assert lost == dropped, (lost, dropped)
    # Counters resumed, never reset: each is at least what Prometheus could have seen.
    for key, seen in before.items():
        if key[0].endswith("_total") and key[0] in {names.TRADES, names.VOLUME, names.RECEIVED}:
            assert after[key] >= seen, (key, seen, after[key])
    assert value(after, names.TRADES, side="buy") >= value(before, names.TRADES, side="buy") > 0


def _crafted_files() -> list[tuple[str, bytes, str]]:
    body = encode(_populated().snapshot()).partition(b"\n")[2]
    deep = signed(body.replace(b'"lost":', b'"lost":' + b"[" * 100_000, 1))
    digits = signed(body.replace(b'"volume":{"buy":', b'"volume":{"buy":' + b"9" * 400 + b",1", 1))
    return [
        ("bad checksum", b'trading-sidecar-state 1 deadbeef\n{"trades":', "checksum"),
        ("[ nested 100,000 deep", deep, "content"),
        ("400-digit volume", digits, "content"),
    ]


@pytest.mark.parametrize(
    ("name", "data", "reason"), _crafted_files(), ids=[n for n, _, _ in _crafted_files()]
)
def test_bad_snapshot_is_set_aside_counted_and_the_sidecar_starts_from_zero(
    tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    """Once: exit status 3 on every start (a crash loop), or a silent restore."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / FILENAME).write_bytes(data)
    sidecar: Sidecar = new_sidecar(TT_SIDECAR_STATE_DIR=str(state_dir)).start(tmp_path)
    try:
        assert sidecar.proc is not None
        warnings = [line for line in sidecar.proc.log().splitlines() if "WARNING" in line]
        assert len(warnings) == 1 and "not usable" in warnings[0], warnings
        samples = sidecar.scrape()
        assert _totals(samples) == (0.0, 0.0)
        for each in names.STATE_RESTORE_REASONS:
            count = value(samples, names.STATE_RESTORE_FAILURES, reason=each)
            assert count == (1 if each == reason else 0), each
        [kept] = state_dir.glob(f"{FILENAME}.bad-*")
        assert kept.read_bytes() == data  # kept for inspection
        with Publisher(sidecar.zmq_address, source="after-corrupt") as publisher:
            for _ in range(10):
                assert publisher.trade("buy", 2.0)
        wait_for(lambda: _totals(sidecar.scrape())[0] == 10, what="10 trades from zero")
    finally:
        assert sidecar.stop() == 0
    # The graceful stop wrote a good snapshot in its place.
    assert decode((state_dir / FILENAME).read_bytes()).trading.trades["buy"] == 10


def test_failing_writes_are_counted_and_scrapes_do_not_wait_for_them(tmp_path: Path) -> None:
    """Once: every /metrics waited 0.5 s for a snapshot that never came, silently."""
    state_dir = tmp_path / "state"
    sidecar: Sidecar = new_sidecar(TT_SIDECAR_STATE_DIR=str(state_dir)).start(tmp_path)
    try:
        path = state_dir / FILENAME
        wait_for(path.is_file, what="the first snapshot")
        path.unlink()
        path.mkdir()  # a folder where the file should be: every write fails from now on
        wait_for(
            lambda: value(sidecar.scrape(), names.STATE_WRITE_FAILURES) >= 1,
            what="a counted write failure",
        )
        started = time.monotonic()
        for _ in range(10):
            sidecar.scrape()
        elapsed = time.monotonic() - started
        assert elapsed < 4.5, elapsed  # waiting out each one: 10 x 0.5 s at the very least
        assert sidecar.healthy()
        path.rmdir()  # fixed: the writer, still trying once a second, recovers
        wait_for(path.is_file, what="writes to resume")
    finally:
        assert sidecar.stop() == 0


def healthy_process(sidecar: Sidecar) -> bool:
    return sidecar.healthy()
