"""Consumers in child processes and rounds of them: what ingest and curve both measure.

The ingest mode and the CURVE stream rows time the same thing (a consumer in a spawned
child process draining a full queue with the sidecar's own code) on the same frames, and
compare medians over interleaved rounds. This module holds those shared parts so neither
mode reaches into the other's private names.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import zmq
from telemetry_contract.codec import TradeEncoder, join_batch
from telemetry_contract.errors import InvalidMessage
from telemetry_contract.events import SIDE_CODES
from telemetry_contract.frames import encode_columns
from trading_publisher.options import DEFAULT_BATCH_SIZE
from trading_sidecar.metrics import TradeMetrics
from trading_sidecar.receiver import DRAIN_BATCH, drain

from trading_bench.common import RunContext, progress_bar, trade_mix
from trading_bench.rows import Row, make_row

#: Trades per JSON batch frame of the batch variants.
BATCH = 64
#: Trades per columnar frame (the publisher client's default batch size).
COLUMNS = DEFAULT_BATCH_SIZE
#: A consumer that waits this long for a frame stops and reports what it got.
IDLE_MS = 5_000
#: Not the benchmark prefix: these frames take the trading path (see ingest's module doc).
SOURCE = "trade-ingest"


def consume_sidecar(sock: zmq.Socket[bytes], frames: int) -> int:
    """Trades the sidecar's own metrics counted (not the frames handed to it)."""
    metrics = TradeMetrics()
    rejected: list[InvalidMessage] = []
    handled = 0
    poll = sock.poll
    while handled < frames:
        if not poll(IDLE_MS, zmq.POLLIN):
            break
        handled += drain(sock, metrics, rejected.append, DRAIN_BATCH)
    if rejected:
        raise RuntimeError(f"the sidecar refused benchmark frames: {rejected[0]}")
    return sum(metrics.trades.values())


def single_frames(events: int) -> list[bytes]:
    encode = TradeEncoder(SOURCE)
    now = time.time()
    return [encode(side, qty, now, seq) for seq, (side, qty) in enumerate(trade_mix(events))]


def batch_frames(single: list[bytes]) -> list[bytes]:
    """The same trades as batch frames of BATCH, exactly as the contract joins them."""
    return [join_batch(single[i : i + BATCH]) for i in range(0, len(single), BATCH)]


def column_frames(events: int) -> list[bytes]:
    """The same kind of trades as columnar frames of COLUMNS, as the client sends them."""
    mix = trade_mix(events)
    code_of: dict[str, str] = {side: code for side, code in SIDE_CODES.items()}
    now = time.time_ns()
    found = []
    for start in range(0, events, COLUMNS):
        chunk = mix[start : start + COLUMNS]
        codes = "".join(code_of[side] for side, _ in chunk)
        qtys = [qty for _, qty in chunk]
        found.append(encode_columns(SOURCE, 0, 0, start, codes, qtys, [now] * len(chunk)))
    return found


class ConsumerChild:
    """A consumer in a spawned child process, driven over a pipe (ingest's and curve's).

    ``target(*args, conn)`` binds, sends its address, and finally sends (counted,
    seconds); :meth:`address` and :meth:`result` wait for those with a limit, so a child
    that never gets there fails the run with ``"<what> did not start/finish"`` instead of
    hanging it. Leaving the ``with`` joins the child, and kills it if it is still there.
    """

    def __init__(self, what: str, target: Callable[..., None], *args: object) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.what = what
        self.pipe, child_end = spawn.Pipe()
        self._process = spawn.Process(target=target, args=(*args, child_end))

    def __enter__(self) -> ConsumerChild:
        self._process.start()
        return self

    def address(self) -> str:
        if not self.pipe.poll(60):
            raise RuntimeError(f"{self.what} did not start")
        address: str = self.pipe.recv()
        return address

    def result(self) -> tuple[int, float]:
        if not self.pipe.poll(600):
            raise RuntimeError(f"{self.what} did not finish")
        counted, seconds = self.pipe.recv()
        return int(counted), float(seconds)

    def __exit__(self, *exc: object) -> None:
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


@dataclass
class Rounds:
    """Each variant's (count, seconds) over the rounds; the median time is what counts."""

    times: dict[str, list[float]]
    counted: dict[str, list[int]]

    def median(self, variant: str) -> float:
        return statistics.median(self.times[variant])

    def row(
        self,
        ctx: RunContext,
        variant: str,
        events: int,
        frames: int,
        started_at: float,
        ratios: dict[str, float],
    ) -> Row:
        """The variant's ingest row: its median time, and the round that counted least
        (one short round must not hide behind others)."""
        seconds = self.median(variant)
        received = min(self.counted[variant])
        times = self.times[variant]
        return make_row(
            run_id=ctx.run_id, mode="ingest", variant=variant, events=events,
            sent=events, received=received, lost=events - received,
            elapsed_s=seconds, started_at=started_at,
            extra={
                **ratios,
                "ns_per_event": seconds * 1e9 / events,
                "events_per_frame": events / frames,
                "spread": (max(times) - min(times)) / seconds,
            },
        )  # fmt: skip


def measure_rounds(
    ctx: RunContext,
    variants: Sequence[str],
    rounds: int,
    bar: tuple[str, str],
    order: Callable[[int], Sequence[str]],
    measure: Callable[[str], tuple[int, float]],
) -> Rounds:
    """``measure`` every variant once per round, in ``order(round)``, under one progress
    bar (``bar``: its title and unit)."""
    found = Rounds({v: [] for v in variants}, {v: [] for v in variants})
    title, unit = bar
    with progress_bar(ctx, len(variants) * rounds, title, unit=unit) as progress:
        for r in range(rounds):
            for variant in order(r):
                count, seconds = measure(variant)
                found.times[variant].append(seconds)
                found.counted[variant].append(count)
                progress.update(1)
    return found
