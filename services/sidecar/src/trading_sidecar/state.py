"""Counts that survive a restart: a snapshot file in ``TT_SIDECAR_STATE_DIR``.

What is saved is a :class:`Snapshot`: the trade counts
(:class:`trading_sidecar.metrics.MetricsState`) and the benchmark traffic counts
(:class:`trading_sidecar.bench_metrics.BenchState`), each a set of running totals and a
loss table (last ``seq``/``epoch`` per ``(src, stream)``). Saving totals and positions together,
taken at one instant, is what makes a crash exact: events the dead process counted
after its last snapshot are forgotten with it, and when the publisher reconnects
(``epoch`` + 1) the restored position shows them as a seq gap, so counted + lost still
equals sent.

When a snapshot is taken:
- once a second (``interval_s``), by the receive loop between two drains, so the copy
  never sees half of a chunk: totals and positions always agree;
- before every ``/metrics`` answer (:meth:`StateKeeper.sync`): the response waits until
  a snapshot taken *after* its numbers were read is on disk, so Prometheus never sees a
  value the sidecar could forget. After a ``kill -9`` the counters resume at or above the
  last scraped value and ``rate()`` sees no counter reset;
- on SIGTERM, after the last queued frame is counted (:meth:`StateKeeper.close`).

Writes are atomic: a temporary file in the same folder, fsync, rename over the old one,
fsync of the folder. Copying the state is done in the receive loop (it is the only
writer of the numbers); encoding and disk I/O happen on a writer thread of their own.

A snapshot that is missing, truncated, corrupt, or from another format means starting
from zero with one warning, never a crash: the first line carries a format version and
the SHA-256 of the body, and every field is checked before anything is restored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telemetry_contract.codec import BENCH_SOURCE_PREFIX

from trading_sidecar.bench_metrics import BenchMetrics, BenchState
from trading_sidecar.metrics import LossTracker, MetricsState, TradeMetrics

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


class StateError(ValueError):
    """The snapshot file cannot be trusted; the message says why."""


# --- the file format -----------------------------------------------------------------


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
    body = json.dumps(
        {
            "trades": state.trades,
            "volume": state.volume,
            "last_trade_ts": state.last_trade_ts,
            "received": state.received,
            "invalid": state.invalid,
            "lost": state.lost,
            "latency_counts": state.latency_counts,
            "latency_sum": state.latency_sum,
            "bench_trades": bench.trades,
            "bench_lost": bench.lost,
            "bench_latency_counts": bench.latency_counts,
            "bench_latency_sum": bench.latency_sum,
            "bench_results": bench.results,
            # Oldest first, as the LRU tables order them, so the order survives too.
            "streams": [
                [src, stream, seq, epoch]
                for table in (state.streams, bench.streams)
                for (src, stream), (seq, epoch) in table.positions.items()
            ],
        },
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    digest = hashlib.sha256(body).hexdigest()
    return f"{MAGIC} {VERSION} {digest}\n".encode() + body


def decode(data: bytes) -> Snapshot:
    """The state in ``data``; :class:`StateError` for anything short of a valid snapshot."""
    header, newline, body = data.partition(b"\n")
    if not newline:
        raise StateError("no header line (truncated?)")
    parts = header.decode("ascii", "replace").split(" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        raise StateError("not a sidecar state file")
    if parts[1] != str(VERSION):
        raise StateError(f"format version {parts[1]}, this sidecar reads {VERSION}")
    if hashlib.sha256(body).hexdigest() != parts[2]:
        raise StateError("checksum mismatch (truncated or corrupt)")
    try:
        raw = json.loads(body)
        return _state_from(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise StateError(f"unreadable content: {exc}") from None


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise StateError(f"{what}: expected a count, got {value!r}")
    return value


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise StateError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def _counts(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise StateError(f"{what}: expected an object")
    return {str(k): _count(v, f"{what}.{k}") for k, v in value.items()}


def _state_from(raw: Any) -> Snapshot:
    if not isinstance(raw, dict):
        raise StateError("expected an object")
    volume = raw["volume"]
    if not isinstance(volume, dict):
        raise StateError("volume: expected an object")
    positions: dict[tuple[str, int], tuple[int, int]] = {}
    bench_positions: dict[tuple[str, int], tuple[int, int]] = {}
    for item in raw["streams"]:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str)):
            raise StateError(f"streams: bad entry {item!r}")
        src, stream, seq, epoch = item
        table = bench_positions if src.startswith(BENCH_SOURCE_PREFIX) else positions
        table[(src, _count(stream, "stream"))] = (_count(seq, "seq"), _count(epoch, "epoch"))
    trading = MetricsState(
        trades=_counts(raw["trades"], "trades"),
        volume={str(k): _number(v, f"volume.{k}") for k, v in volume.items()},
        last_trade_ts=_number(raw["last_trade_ts"], "last_trade_ts"),
        received=_count(raw["received"], "received"),
        invalid=_counts(raw["invalid"], "invalid"),
        lost=_count(raw["lost"], "lost"),
        latency_counts=[_count(v, "latency_counts") for v in raw["latency_counts"]],
        latency_sum=_number(raw["latency_sum"], "latency_sum"),
        streams=LossTracker(positions),
    )
    bench = BenchState(
        trades=_count(raw["bench_trades"], "bench_trades"),
        lost=_count(raw["bench_lost"], "bench_lost"),
        latency_counts=[_count(v, "bench_latency_counts") for v in raw["bench_latency_counts"]],
        latency_sum=_number(raw["bench_latency_sum"], "bench_latency_sum"),
        results=_count(raw["bench_results"], "bench_results"),
        streams=LossTracker(bench_positions),
    )
    return Snapshot(trading, bench)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader (or a crash) sees old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)  # the rename itself is durable only once the folder is
    finally:
        os.close(folder)


def load(path: Path) -> Snapshot | None:
    """The snapshot at ``path``; ``None``, with one warning saying why, when there is none
    to trust (missing, unreadable, truncated, corrupt, another format)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        log.warning("no state snapshot at %s: counting from zero", path)
        return None
    except OSError as exc:
        log.warning("cannot read the state snapshot %s (%s): counting from zero", path, exc)
        return None
    try:
        return decode(data)
    except StateError as exc:
        log.warning(
            "state snapshot %s is not usable (%s): ignoring it and counting from zero; "
            "it is overwritten by the next snapshot",
            path,
            exc,
        )
        return None


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
        self._last_error_log = 0.0
        #: Snapshots written and write failures, for tests and the log.
        self.writes = 0
        self.failures = 0

    def restore(self) -> bool:
        """Continue from the snapshot, if one can be trusted; True when restored."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        snapshot = load(self.path)
        if snapshot is None:
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
        """Wait until a snapshot taken after this call is on disk; False on timeout."""
        with self._cond:
            self._wanted += 1
            target = self._wanted
        self._request.set()
        with self._cond:
            return self._cond.wait_for(lambda: self._written >= target, timeout_s)

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
            self.failures += 1
            now = time.monotonic()
            if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
                self._last_error_log = now
                log.error("cannot write the state snapshot %s: %s", self.path, exc)
            return
        self.writes += 1
        with self._cond:
            self._written = max(self._written, covers)
            self._cond.notify_all()
