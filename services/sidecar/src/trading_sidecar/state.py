"""Counts that survive a restart: a snapshot file in ``TT_SIDECAR_STATE_DIR``.

A :class:`Snapshot` holds the trade counts and the benchmark counts, each with its loss
table (last ``seq``/``epoch`` per ``(src, stream)``), taken at one instant: that is what
makes a crash exact, since events counted after the last snapshot reappear as a seq gap
when the publisher reconnects, so counted + lost still equals sent.

Snapshots are taken once a second by the receive loop (between two drains, so totals and
positions agree), before every ``/metrics`` answer (so Prometheus never sees a value the
sidecar could forget), and on SIGTERM. Writes are atomic (temp file, fsync, rename), on
a writer thread of their own. A snapshot that cannot be trusted is never a crash: it is
decoded by typed msgspec Structs, and a bad one is moved aside, logged once, counted in
``telemetry_state_restore_failures_total{reason}``, and the sidecar starts from zero.
Failing writes are counted (``telemetry_state_write_failures_total``) and stop /metrics
from waiting on them. docs/operations.md has the operator's side of this.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final

import msgspec
from msgspec import Meta
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from telemetry_contract import metric_names as names
from telemetry_contract.codec import BENCH_SOURCE_PREFIX
from telemetry_contract.events import MAX_SAFE_INT, MAX_SOURCE_LEN

from trading_sidecar.bench_metrics import BenchMetrics, BenchState
from trading_sidecar.metrics import (
    MAX_TRACKED_STREAMS,
    LossTracker,
    MetricsState,
    TradeMetrics,
)

log = logging.getLogger(__name__)

FILENAME = "sidecar-state.json"
#: First line: ``MAGIC VERSION SHA256`` of the body that follows.
MAGIC = "trading-sidecar-state"
VERSION = 1
DEFAULT_INTERVAL_S = 1.0
#: How long a /metrics answer waits for its snapshot before answering anyway.
DEFAULT_SYNC_TIMEOUT_S = 0.5
#: At most one "cannot write" log line per this many seconds.
ERROR_LOG_INTERVAL_S = 30.0
#: A snapshot is a few hundred KB at most (8,192 loss-table keys); a larger file is not one.
MAX_STATE_BYTES = 16 * 1024 * 1024
#: Bad snapshots kept beside the state file (``<name>.bad-<time>``); older ones go.
KEEP_BAD = 5


class StateError(ValueError):
    """The snapshot file cannot be trusted; ``reason`` (STATE_RESTORE_REASONS) says how."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# --- the file format -----------------------------------------------------------------

#: Counts: integers, never negative; int64 is what msgspec reads without loss.
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
#: Sums and timestamps: finite (JSON has no NaN, and 1e400 is out of range), never negative.
Total = Annotated[float, Meta(ge=0.0)]
Label = Annotated[str, Meta(max_length=64)]
#: One slot per latency bound plus +Inf; more than 64 is no histogram of ours.
Slots = Annotated[list[Count], Meta(max_length=64)]
Position = Annotated[int, Meta(ge=0, le=MAX_SAFE_INT)]
Source = Annotated[str, Meta(min_length=1, max_length=MAX_SOURCE_LEN)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """The snapshot's body, as the file holds it: every value typed and bounded.

    Unknown keys are refused rather than skipped, so there is nothing a parser would
    recurse into: ``[`` nested 100,000 deep fails at its first bracket.
    """

    trades: Annotated[dict[Label, Count], Meta(max_length=16)]
    volume: Annotated[dict[Label, Total], Meta(max_length=16)]
    last_trade_ts: Total
    received: Count
    invalid: Annotated[dict[Label, Count], Meta(max_length=128)]
    lost: Count
    latency_counts: Slots
    latency_sum: Total
    bench_trades: Count
    bench_lost: Count
    bench_latency_counts: Slots
    bench_latency_sum: Total
    bench_results: Count
    #: ``[src, stream, seq, epoch]``, trading keys then benchmark keys, each oldest first.
    streams: Annotated[
        list[tuple[Source, Position, Position, Position]],
        Meta(max_length=2 * MAX_TRACKED_STREAMS),
    ]
    #: Seq jumps taken as stream resets (absent in files written before they were counted).
    stream_resets: Count = 0
    bench_stream_resets: Count = 0


_DECODE_BODY: Final = msgspec.json.Decoder(Body).decode
_ENCODE_BODY: Final = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Snapshot:
    """Everything the sidecar counts, copied at one instant by the receive loop."""

    trading: MetricsState
    bench: BenchState = field(default_factory=BenchState)


def encode(snapshot: Snapshot) -> bytes:
    """One file for both: the format is the one a single ``metrics`` module wrote before
    the benchmark's counts got a module of their own, so existing snapshots still load.
    The two loss tables share the ``streams`` list (trading keys first, then benchmark
    keys, each oldest first); a key's ``src`` prefix says which table it goes back to."""
    state, bench = snapshot.trading, snapshot.bench
    body = _ENCODE_BODY(
        Body(
            trades=state.trades,
            volume=state.volume,
            last_trade_ts=state.last_trade_ts,
            received=state.received,
            invalid=state.invalid,
            lost=state.lost,
            latency_counts=state.latency_counts,
            latency_sum=state.latency_sum,
            bench_trades=bench.trades,
            bench_lost=bench.lost,
            bench_latency_counts=bench.latency_counts,
            bench_latency_sum=bench.latency_sum,
            bench_results=bench.results,
            # Oldest first, as the LRU tables order them, so the order survives too.
            streams=[
                (src, stream, seq, epoch)
                for table in (state.streams, bench.streams)
                for (src, stream), (seq, epoch) in table.positions.items()
            ],
            stream_resets=state.streams.jumps,
            bench_stream_resets=bench.streams.jumps,
        )
    )
    digest = hashlib.sha256(body).hexdigest()
    return f"{MAGIC} {VERSION} {digest}\n".encode() + body


def decode(data: bytes) -> Snapshot:
    """The state in ``data``; :class:`StateError` for anything short of a valid snapshot."""
    header, newline, body = data.partition(b"\n")
    if not newline:
        raise StateError("header", "no header line (truncated?)")
    parts = header.decode("ascii", "replace").split(" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        raise StateError("header", "not a sidecar state file")
    if parts[1] != str(VERSION):
        raise StateError("header", f"format version {parts[1]}, this sidecar reads {VERSION}")
    if hashlib.sha256(body).hexdigest() != parts[2]:
        raise StateError("checksum", "checksum mismatch (truncated or corrupt)")
    try:
        raw = _DECODE_BODY(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StateError("content", f"unusable content: {str(exc)[:200]}") from None
    return _state_from(raw)


def _state_from(raw: Body) -> Snapshot:
    positions: dict[tuple[str, int], tuple[int, int]] = {}
    bench_positions: dict[tuple[str, int], tuple[int, int]] = {}
    for src, stream, seq, epoch in raw.streams:
        table = bench_positions if src.startswith(BENCH_SOURCE_PREFIX) else positions
        table[(src, stream)] = (seq, epoch)
    trading = MetricsState(
        trades=raw.trades,
        volume=raw.volume,
        last_trade_ts=raw.last_trade_ts,
        received=raw.received,
        invalid=raw.invalid,
        lost=raw.lost,
        latency_counts=raw.latency_counts,
        latency_sum=raw.latency_sum,
        streams=LossTracker(positions, jumps=raw.stream_resets),
    )
    bench = BenchState(
        trades=raw.bench_trades,
        lost=raw.bench_lost,
        latency_counts=raw.bench_latency_counts,
        latency_sum=raw.bench_latency_sum,
        results=raw.bench_results,
        streams=LossTracker(bench_positions, jumps=raw.bench_stream_resets),
    )
    return Snapshot(trading, bench)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader (or a crash) sees old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            tmp.unlink()  # a full disk keeps no half-written copy of its own
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)  # the rename itself is durable only once the folder is
    finally:
        os.close(folder)


def read(path: Path) -> Snapshot | None:
    """The snapshot at ``path``, ``None`` when there is none; StateError when it is bad."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a folder where the file should be, no permission, I/O error
        raise StateError("unreadable", f"cannot read it ({exc})") from None
    if len(data) > MAX_STATE_BYTES:
        raise StateError("content", f"larger than {MAX_STATE_BYTES} bytes")
    return decode(data)


def move_aside(path: Path) -> Path | None:
    """Rename a bad snapshot to ``<name>.bad-<ns>`` (kept for inspection; the newest
    KEEP_BAD stay). ``None`` when even that fails: the next write replaces it anyway."""
    target = path.with_name(f"{path.name}.bad-{time.time_ns()}")
    try:
        path.rename(target)
    except OSError as exc:
        log.error("cannot move the bad state snapshot %s aside: %s", path, exc)
        return None
    kept = sorted(path.parent.glob(f"{path.name}.bad-*"))  # one folder: by name, oldest first
    for old in kept[:-KEEP_BAD]:
        try:
            if old.is_dir():
                continue  # a folder someone left there: not ours to delete
            old.unlink()
        except OSError:
            pass
    return target


def set_aside(path: Path, exc: StateError) -> None:
    """A bad snapshot: moved aside, and the one warning that says why and where it is."""
    moved = move_aside(path)
    log.warning(
        "state snapshot %s is not usable (%s: %s): counting from zero; %s",
        path,
        exc.reason,
        exc,
        f"it is kept as {moved.name}" if moved else "it could not be moved aside",
    )


def load(path: Path) -> Snapshot | None:
    """The snapshot at ``path``, or ``None`` with one warning saying why: there is none,
    or it is bad (then it is moved aside, see :func:`set_aside`)."""
    try:
        snapshot = read(path)
    except StateError as exc:
        set_aside(path, exc)
        return None
    if snapshot is None:
        log.warning("no state snapshot at %s: counting from zero", path)
    return snapshot


# --- taking snapshots while the sidecar runs -------------------------------------------


class StateKeeper:
    """Restores the counts at start, snapshots them while running and at shutdown.

    ``bench`` is the benchmark collector the app routes benchmark traffic to; without one
    (tests of the trade counts alone) the file holds zero benchmark counts.

    :meth:`checkpoint` runs in the receive loop (the numbers' only writer) between drains;
    a writer thread encodes and writes; :meth:`sync` lets an HTTP request wait for a
    snapshot taken after it started.
    """

    def __init__(
        self,
        directory: Path,
        metrics: TradeMetrics,
        bench: BenchMetrics | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.path = directory / FILENAME
        self._metrics = metrics
        self._bench = bench if bench is not None else BenchMetrics()
        self._interval = interval_s
        self._due = 0.0
        self._cond = threading.Condition()
        #: Snapshot requests made (sync) / covered by a snapshot written to disk.
        self._wanted = 0
        self._written = 0
        self._request = threading.Event()
        self._pending: tuple[Snapshot, int] | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        #: Below any clock reading: the first failure is logged even just after boot
        #: (the monotonic clock counts from there).
        self._last_error_log = -math.inf
        #: Requests covered by a write attempt that failed; True while writes fail.
        self._attempted = 0
        self.failing = False
        #: Write attempts that failed (exported: STATE_WRITE_FAILURES).
        self.failures = 0
        #: Bad snapshots found at start, by reason (exported: STATE_RESTORE_FAILURES).
        self.restore_failures = dict.fromkeys(names.STATE_RESTORE_REASONS, 0)

    def restore(self) -> bool:
        """Continue from the snapshot, if one can be trusted; True when restored."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            snapshot = read(self.path)
        except StateError as exc:
            set_aside(self.path, exc)
            self.restore_failures[exc.reason] += 1
            return False
        except Exception as exc:  # nothing a file holds may stop the start: same handling
            set_aside(self.path, StateError("content", f"unexpected {exc!r}"))
            self.restore_failures["content"] += 1
            return False
        if snapshot is None:
            log.warning("no state snapshot at %s: counting from zero", self.path)
            return False
        state = snapshot.trading
        self._metrics.restore(state)
        self._bench.restore(snapshot.bench)
        log.info(
            "restored counts from %s: %d trades, %d lost, %d streams (+%d benchmark trades)",
            self.path,
            sum(state.trades.values()),
            state.lost,
            len(state.streams.positions),
            snapshot.bench.trades,
        )
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._write_loop, name="state-writer", daemon=True)
        self._thread.start()

    def checkpoint(self) -> None:
        """Hand a copy of the state to the writer when one is due or asked for.

        Called by the receive loop between drains, where totals and positions agree.
        """
        now = time.monotonic()
        if now < self._due and not self._request.is_set():
            return
        self._request.clear()
        with self._cond:
            covers = self._wanted  # every request made so far is older than this copy
        state = self._snapshot()
        self._due = now + self._interval
        with self._cond:
            self._pending = (state, covers)
            self._cond.notify_all()

    def sync(self, timeout_s: float = DEFAULT_SYNC_TIMEOUT_S) -> bool:
        """Wait until a snapshot taken after this call is on disk; False if none will be.

        While writes fail (the last attempt failed) this returns False at once: waiting
        would only make every scrape slow and would not make the numbers safer. The
        guarantee lapses then, and says so: ``telemetry_state_write_failures_total``
        grows once a second (the writer keeps trying), which the alert rules watch.
        A write that fails while a request waits ends the wait as well.
        """
        with self._cond:
            if self.failing:
                return False
            self._wanted += 1
            target = self._wanted
        self._request.set()
        with self._cond:
            self._cond.wait_for(
                lambda: self._written >= target or self._attempted >= target, timeout_s
            )
            return self._written >= target

    def close(self) -> None:
        """Write the final snapshot (the receive loop has stopped) and stop the writer."""
        with self._cond:
            covers = self._wanted
            self._pending = (self._snapshot(), covers)
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(30)
        else:
            self._write_pending()
        log.info("state saved to %s", self.path)

    def _snapshot(self) -> Snapshot:
        """Both copies in a row, on the receive thread (their only writer): one instant."""
        return Snapshot(self._metrics.snapshot(), self._bench.snapshot())

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closing)
                if self._pending is None and self._closing:
                    return
            self._write_pending()

    def _write_pending(self) -> None:
        with self._cond:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        state, covers = pending
        try:
            write_atomic(self.path, encode(state))
        except Exception as exc:  # a full disk must not stop counting: log, keep trying
            now = time.monotonic()
            if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
                self._last_error_log = now
                log.error("cannot write the state snapshot %s: %s", self.path, exc)
            with self._cond:
                self.failures += 1
                self.failing = True
                self._attempted = max(self._attempted, covers)
                self._cond.notify_all()
            return
        with self._cond:
            self.failing = False
            self._written = max(self._written, covers)
            self._attempted = max(self._attempted, covers)
            self._cond.notify_all()


class StateCollector(Collector):
    """The snapshot's own health: write failures, and bad snapshots found at start.

    Registered whether or not a state folder is set (zeros without one), so the
    alert rules and dashboards see the same series on every sidecar.
    """

    def __init__(self, keeper: StateKeeper | None) -> None:
        self._keeper = keeper

    def collect(self) -> Iterator[Metric]:
        keeper = self._keeper
        yield CounterMetricFamily(
            names.STATE_WRITE_FAILURES,
            "State snapshot writes that failed; while they fail, /metrics answers without "
            "waiting for a snapshot on disk (a restart may then lose counts already scraped).",
            value=keeper.failures if keeper else 0,
        )
        restores = CounterMetricFamily(
            names.STATE_RESTORE_FAILURES,
            "State snapshots found unusable at start (moved aside, counting from zero), by reason.",
            labels=["reason"],
        )
        for reason in names.STATE_RESTORE_REASONS:
            restores.add_metric([reason], keeper.restore_failures[reason] if keeper else 0)
        yield restores


def register_state(keeper: StateKeeper | None, registry: CollectorRegistry) -> StateCollector:
    """Expose the snapshot's health in ``registry`` (zeros when no state folder is set)."""
    collector = StateCollector(keeper)
    registry.register(collector)
    return collector
