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
    #: For the hotpath plot: the variant and percentile ("p50", "p99.9") this target
    #: bounds, and the bound in the plot's own unit (gross µs per call, i.e. the net
    #: limit plus the run's timer overhead). Empty/None for targets that are not a
    #: latency bound of one variant.
    variant: str = ""
    percentile: str = ""
    limit_us: float | None = None

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _by_variant(rows: Sequence[Row]) -> dict[str, Row]:
    return {row.result.variant: row for row in rows}


#: Issue 9's hotpath targets, as (client variant, percentile, limit × prometheus_client).
#: Medians only: hotpath times slices of back-to-back calls with the client settled in
#: between, so its tails are not what a running loop sees; the tail targets (issue 17)
#: are the paced mode's.
HOTPATH_VS_PROMETHEUS = (
    ("client", "p50", 0.25),
    ("client-unbatched", "p50", 0.75),
)
#: Each client variant must be at least this many times cheaper at p50 than these.
HOTPATH_ALTERNATIVES = ("seed-json", "statsd", "opentelemetry")
HOTPATH_FACTOR = 3.0
_NET = {"p50": "net_p50_us", "p99": "net_p99_us", "p99.9": "net_p999_us"}


def hotpath(rows: Sequence[Row]) -> list[Target]:
    """Net values (timer overhead taken off) throughout, like the ratios to the floor."""
    v = _by_variant(rows)
    found: list[Target] = []
    prom = v.get("prometheus-client")
    for name, percentile, factor in HOTPATH_VS_PROMETHEUS:
        if prom is None or name not in v:
            continue
        mine = v[name].extra[_NET[percentile]]
        theirs = prom.extra[_NET[percentile]]
        overhead = v[name].extra["timer_overhead_us"]
        found.append(
            Target(
                f"{name} net {percentile} / prometheus-client net {percentile}",
                mine / theirs,
                factor,
                "<=",
                variant=name,
                percentile=percentile,
                limit_us=factor * theirs + overhead,
            )
        )
    for name in ("client", "client-unbatched"):
        if name not in v:
            continue
        mine = v[name].extra["net_p50_us"]
        overhead = v[name].extra["timer_overhead_us"]
        for other in HOTPATH_ALTERNATIVES:
            if other in v:
                theirs = v[other].extra["net_p50_us"]
                found.append(
                    Target(
                        f"{other} net p50 / {name} net p50",
                        theirs / mine,
                        HOTPATH_FACTOR,
                        ">=",
                        variant=name,
                        percentile="p50",
                        limit_us=theirs / HOTPATH_FACTOR + overhead,
                    )
                )
    return found


def burst(rows: Sequence[Row]) -> list[Target]:
    row = rows[0].result
    found = [Target("dropped by the client", row.dropped, 0, "<=")]
    if row.lost >= 0:
        found.append(Target("lost (seq gaps)", row.lost, 0, "<="))
        found.append(Target("sent - received", row.sent - row.received, 0, "<="))
    return found


def sustained(rows: Sequence[Row]) -> list[Target]:
    """Rate within 1 % at every rate; e2e p99 <= max delay + 5 ms (batching).

    The limit is a bucket bound of the sidecar's histogram, so the share of events at
    or under it is exact (see :mod:`trading_bench.e2e`): p99 <= limit iff share >= 99 %.
    """
    found = []
    for row in rows:
        if row.result.variant.startswith("client-"):
            rate = row.result.target_rate
            found.append(
                Target(
                    f"|achieved/target - 1| at {rate:g}/s", abs(row.extra["rate_error"]), 0.01, "<="
                )
            )
            if "e2e_within_limit" in row.extra:
                limit_us = row.extra["e2e_limit_us"]
                found.append(
                    Target(
                        f"share of e2e <= {limit_us:g} us at {rate:g}/s (p99 <= {limit_us:g} us)",
                        row.extra["e2e_within_limit"],
                        0.99,
                        ">=",
                    )
                )
    return found


#: Issue 17: batch frames counted on one core, events/s (ingest times the counting code
#: alone, in one process: one core).
INGEST_COLUMNS_RATE = 2_000_000.0


def ingest(rows: Sequence[Row]) -> list[Target]:
    """Issue 8's two ratios, both in events/s against baselines of the same run."""
    v = _by_variant(rows)
    found = [
        Target(
            "sidecar events/s / naive json+prometheus_client events/s (single-event frames)",
            v["sidecar"].extra["ratio_to_naive"], 6.0, ">=",
        ),
    ]  # fmt: skip
    if "sidecar-columns" in v:
        found.append(
            Target(
                "sidecar events/s on the client's columnar frames (one core)",
                v["sidecar-columns"].result.rate,
                INGEST_COLUMNS_RATE,
                ">=",
            )
        )
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


#: Issue 17's paced loops (styles and rates) the tail targets apply to, when run.
PACED_TARGET_LOOPS = ("busy-10000", "busy-100000", "sleep-1000", "sleep-2000", "sleep-10000")
#: (percentile field, limit × prometheus_client) per targeted loop, for the client.
PACED_VS_PROMETHEUS = (("p99_us", 0.5), ("p999_us", 1.0))
PACED_CLIENT = "client"
PACED_PROMETHEUS = "prometheus-client"


def paced(rows: Sequence[Row]) -> list[Target]:
    """Issue 17: the default client against prometheus_client, loop by loop (gross µs:
    both pay the same timer, so ratios of gross values slightly favour the slower)."""
    v = _by_variant(rows)
    found: list[Target] = []
    for loop in PACED_TARGET_LOOPS:
        mine, theirs = v.get(f"{PACED_CLIENT}-{loop}"), v.get(f"{PACED_PROMETHEUS}-{loop}")
        if mine is None or theirs is None:
            continue
        for field, factor in PACED_VS_PROMETHEUS:
            a, b = getattr(mine.result, field), getattr(theirs.result, field)
            label = field.removesuffix("_us").replace("p999", "p99.9")
            found.append(
                Target(
                    f"{loop}: client {label} / prometheus-client {label}",
                    a / max(b, 1e-9),
                    factor,
                    "<=",
                    variant=mine.result.variant,
                    percentile=label,
                    limit_us=factor * b,
                )
            )
        found.append(
            Target(
                f"{loop}: client % of calls > 100 us minus prometheus-client's",
                100 * (mine.extra["over_100us"] - theirs.extra["over_100us"]),
                0.0,
                "<=",
                variant=mine.result.variant,
            )
        )
    mine, theirs = v.get(f"{PACED_CLIENT}-continuous"), v.get(f"{PACED_PROMETHEUS}-continuous")
    if mine is not None and theirs is not None:
        found.append(
            Target(
                "continuous: client calls > 1 ms - prometheus-client's",
                mine.extra["over_1ms"] - theirs.extra["over_1ms"],
                0.0,
                "<=",
                variant=mine.result.variant,
            )
        )
        found.append(
            Target(
                "continuous: client max / prometheus-client max",
                mine.result.max_us / max(theirs.result.max_us, 1e-9),
                2.0,
                "<=",
                variant=mine.result.variant,
                percentile="max",
                limit_us=2.0 * theirs.result.max_us,
            )
        )
        found.append(
            Target(
                "continuous: client p50 / prometheus-client p50",
                mine.result.p50_us / max(theirs.result.p50_us, 1e-9),
                0.25,
                "<=",
                variant=mine.result.variant,
                percentile="p50",
                limit_us=0.25 * theirs.result.p50_us,
            )
        )
        for other in ("statsd", "opentelemetry"):
            alt = v.get(f"{other}-continuous")
            if alt is not None:
                found.append(
                    Target(
                        f"continuous: {other} p50 / client p50",
                        alt.result.p50_us / max(mine.result.p50_us, 1e-9),
                        HOTPATH_FACTOR,
                        ">=",
                    )
                )
    return found


CHECKS = {
    "hotpath": hotpath,
    "burst": burst,
    "sustained": sustained,
    "ingest": ingest,
    "paced": paced,
}
