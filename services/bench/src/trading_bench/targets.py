"""The issue's targets, checked against a run's own rows (never against fixed times).

Each check reads numbers this run measured on this machine and says whether the
target holds; the report and the table show the verdicts, nothing asserts on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trading_bench.rows import Row


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    limit: float
    #: "<=" or ">=": how value must compare to limit.
    op: str

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _by_variant(rows: Sequence[Row]) -> dict[str, Row]:
    return {row.result.variant: row for row in rows}


def hotpath(rows: Sequence[Row]) -> list[Target]:
    v = _by_variant(rows)
    client = v["client"]
    found = [
        Target("client net p50 / floor net p50", client.extra["ratio_p50"], 1.5, "<="),
        Target("client net p99.9 / floor net p99.9", client.extra["ratio_p999"], 2.0, "<="),
    ]
    # On net values (timer overhead taken off), like the ratios to the floor.
    for other in ("seed-json", "statsd", "opentelemetry"):
        if other in v:
            ratio = v[other].extra["net_p50_us"] / client.extra["net_p50_us"]
            found.append(Target(f"{other} net p50 / client net p50", ratio, 3.0, ">="))
    return found


def burst(rows: Sequence[Row]) -> list[Target]:
    row = rows[0].result
    found = [Target("dropped by the client", row.dropped, 0, "<=")]
    if row.lost >= 0:
        found.append(Target("lost (seq gaps)", row.lost, 0, "<="))
        found.append(Target("sent - received", row.sent - row.received, 0, "<="))
    return found


def sustained(rows: Sequence[Row]) -> list[Target]:
    found = []
    for row in rows:
        if row.result.variant.startswith("client-"):
            rate = row.result.target_rate
            found.append(
                Target(
                    f"|achieved/target - 1| at {rate:g}/s", abs(row.extra["rate_error"]), 0.01, "<="
                )
            )
            if rate == 10_000 and "e2e_within_250us" in row.extra:
                found.append(
                    Target(
                        "share of e2e <= 250 us at 10000/s (p99 <= 250 us)",
                        row.extra["e2e_within_250us"],
                        0.99,
                        ">=",
                    )
                )
    return found


def ingest(rows: Sequence[Row]) -> list[Target]:
    """Issue 8's two ratios, both in events/s against baselines of the same run."""
    v = _by_variant(rows)
    found = [
        Target(
            "sidecar events/s / naive json+prometheus_client events/s (single-event frames)",
            v["sidecar"].extra["ratio_to_naive"], 6.0, ">=",
        ),
    ]  # fmt: skip
    if "sidecar-batch" in v:
        found.append(
            Target(
                "sidecar events/s on batch frames of 64 / raw single-frame recv rate",
                v["sidecar-batch"].extra["ratio_to_floor"],
                0.5,
                ">=",
            )  # fmt: skip
        )
    return found


CHECKS = {"hotpath": hotpath, "burst": burst, "sustained": sustained, "ingest": ingest}
