"""One benchmark row: the contract's BenchmarkResult plus what only the report needs.

Every row the benchmark reports is a real :class:`BenchmarkResult` (it is what goes to
the sidecar and into the termination log); the extras, such as the ratio to the floor
or the e2e latency, live beside it in the JSON report only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from telemetry_contract.events import BenchmarkResult, BenchMode

from trading_bench.latency import EMPTY, Percentiles


@dataclass
class Row:
    result: BenchmarkResult
    #: Numbers shown in the table and JSON beyond the contract's fields.
    extra: dict[str, float] = field(default_factory=dict)
    #: The raw per-call samples' summary, kept for the plot (None: no per-call timing).
    latency: Percentiles | None = None
    #: True when the percentiles are histogram bucket upper bounds (e2e), not samples.
    bounded: bool = False

    @property
    def percentile_kind(self) -> str:
        """What the row's p50..max are: the JSON says it, the table marks bounds ``≤``."""
        if self.bounded:
            return "bucket_upper_bound"
        return "per_call" if self.latency is not None else "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            **msgspec.structs.asdict(self.result),
            **self.extra,
            "percentile_kind": self.percentile_kind,
        }


def make_row(
    *,
    run_id: str,
    mode: BenchMode,
    variant: str,
    events: int,
    sent: int,
    dropped: int = 0,
    received: int = -1,
    lost: int = -1,
    elapsed_s: float,
    target_rate: float = 0.0,
    latency: Percentiles = EMPTY,
    started_at: float,
    extra: dict[str, float] | None = None,
    bounded: bool = False,
) -> Row:
    """Build a row; the rate is what was achieved, events over elapsed wall time."""
    rate = events / elapsed_s if elapsed_s > 0 else 0.0
    result = BenchmarkResult(
        run_id=run_id,
        mode=mode,
        variant=variant,
        events=events,
        sent=sent,
        dropped=dropped,
        received=received,
        lost=lost,
        elapsed_s=elapsed_s,
        rate=rate,
        target_rate=target_rate,
        p50_us=latency.p50_us,
        p90_us=latency.p90_us,
        p99_us=latency.p99_us,
        p999_us=latency.p999_us,
        max_us=latency.max_us,
        started_at=started_at,
        finished_at=time.time(),
    )
    return Row(result, dict(extra or {}), latency if latency.count else None, bounded)
