"""Typed events carried on the wire.

Events are plain frozen dataclasses rather than dicts so a decoded message can only
exist in a validated shape; the codec is the one place that builds them from bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Side = Literal["buy", "sell"]

#: The only label values ``side`` can take; fixed so no input can create new series.
SIDES: Final[tuple[Side, ...]] = ("buy", "sell")

#: Upper bound on the optional publisher id; it is a label-free key, but memory is not free.
MAX_SOURCE_LEN: Final = 64


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One executed trade, as the trading process reports it.

    ``src`` and ``seq`` are optional so older publishers stay valid; when both are
    present the sidecar can tell how many events of that publisher never arrived.
    """

    side: Side
    qty: float
    ts: float
    src: str | None = None
    seq: int | None = None


BenchMode = Literal["hotpath", "burst", "sustained", "ingest"]

#: The benchmark's modes; also the values of the sidecar's ``mode`` label.
BENCH_MODES: Final[tuple[BenchMode, ...]] = ("hotpath", "burst", "sustained", "ingest")

#: ``run_id`` and ``variant`` become label values, so they are short and plain.
LABEL_VALUE_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


@dataclass(frozen=True, slots=True)
class BenchmarkResult:
    """One row of a benchmark run: one variant of one mode, e.g. hotpath/client.

    The benchmark sends these to the sidecar (so results land in Prometheus/Grafana)
    and writes its headline row as the Job's termination message (so the operator can
    put it in the LatencyBenchmark status). Latencies are in microseconds; counts are
    events; ``received`` and ``lost`` are -1 where the mode cannot know them.
    """

    run_id: str
    mode: BenchMode
    variant: str
    events: int
    sent: int
    dropped: int
    received: int
    lost: int
    elapsed_s: float
    rate: float
    target_rate: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    started_at: float
    finished_at: float


Event = TradeEvent | BenchmarkResult
