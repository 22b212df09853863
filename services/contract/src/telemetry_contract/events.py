"""Typed events carried on the wire, as msgspec Structs.

Every rule a frame must follow lives in these types (``Meta`` constraints), so the one
decoder that builds them from bytes is also the one validator, and the JSON Schema in
``docs/contract.schema.json`` is generated from them rather than written by hand. Two
rules are checked by :mod:`telemetry_contract.codec` right after decoding instead: the
upper end of ``ts`` (the receiver's clock plus a day, not a static bound) and ``src``
being printable ASCII (stated in the schema; see ``Source`` for why).

Struct construction in Python does *not* run the constraints (msgspec checks on decode
only); :func:`telemetry_contract.codec.encode` therefore round-trips what it writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final, Literal

from msgspec import Meta, Struct

from telemetry_contract.transport import MAX_BATCH_ITEMS

Side = Literal["buy", "sell"]

#: The only label values ``side`` can take; fixed so no input can create new series.
SIDES: Final[tuple[Side, ...]] = ("buy", "sell")

#: Upper bound on the optional publisher id; it is a label-free key, but memory is not free.
MAX_SOURCE_LEN: Final = 64

#: Largest qty: per-side sums of whole quantities stay exact below 2**53 for a long time
#: (a float adds 1 exactly up to 2**53 ~ 9.007e15), and 1e300 can no longer swallow
#: every later trade or push a counter to +Inf.
MAX_QTY: Final = 1e15

#: 2000-01-01T00:00:00Z: nothing older is a live trade; 0 ("no trade yet") is refused.
MIN_TS: Final = 946_684_800.0
#: The receiver refuses ts beyond its own clock plus this (clock skew between hosts).
MAX_TS_AHEAD_S: Final = 86_400.0

#: Largest seq/stream/epoch: exact in a float and in every JSON parser (2**53 - 1).
MAX_SAFE_INT: Final = 2**53 - 1

#: Largest seq gap the sidecar counts as loss. A jump further than this within one
#: stream (e.g. seq 0 then 2**53 - 1) is not 9e15 lost events but a stream reset
#: (``telemetry_stream_resets_total{reason="seq_jump"}``): more than a publisher loses
#: at 100,000 events/s in 11 hours, so one frame cannot claim an absurd loss.
MAX_SEQ_GAP: Final = 2**32

#: Printable ASCII, 1..64 characters: a key in the sidecar's loss table and in logs.
SOURCE_PATTERN: Final = r"^[ -~]{1,64}$"

Qty = Annotated[
    float,
    Meta(ge=0.0, le=MAX_QTY, description="Traded quantity, finite, 0 <= qty <= 1e15."),
]
Timestamp = Annotated[
    float,
    Meta(
        ge=MIN_TS,
        description="Event time in epoch seconds (float). At least 2000-01-01; the "
        "receiver also refuses values beyond its clock + 1 day, and names values that "
        "look like milliseconds, microseconds or nanoseconds as such.",
    ),
]
# The printable-ASCII rule is in the schema, but checked by the codec right after
# decoding (str.isascii/isprintable, skipped for the src of the previous frame) rather
# than as a msgspec ``pattern``: the regex constraint cost ~0.5 us per frame, half of
# the whole validating decode.
Source = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_SOURCE_LEN,
        extra_json_schema={"pattern": SOURCE_PATTERN},
        description="Publisher id, 1-64 printable ASCII characters. Sources starting "
        "with 'bench-' are benchmark traffic, counted apart.",
    ),
]
SafeInt = Annotated[int, Meta(ge=0, le=MAX_SAFE_INT)]


class Trade(Struct, tag_field="type", tag="trade", frozen=True, omit_defaults=True):
    """One executed trade, as the trading process reports it.

    ``src`` and ``seq`` are optional so the seed's ``{type, side, qty, ts}`` stays
    valid; with both the sidecar counts events that never arrived. ``stream`` (one
    publisher socket's sequence within ``src``) and ``epoch`` (bumped on each new
    connection of that socket) make that count exact when publishers and sidecars are
    scaled out; see docs/contract.md for the rule. Absent means 0 for both.
    """

    side: Side
    qty: Qty
    ts: Timestamp
    src: Source | None = None
    seq: Annotated[SafeInt, Meta(description="Per-stream sequence number.")] | None = None
    stream: Annotated[SafeInt, Meta(description="One publisher socket's id within src.")] | None = (
        None
    )
    epoch: (
        Annotated[SafeInt, Meta(description="Connection count of the stream, from 0.")] | None
    ) = None


#: Version of the columnar batch frame (:class:`TradeColumns`); a frame with any other
#: ``v`` is refused, so a later layout can never be counted under this one's rules.
COLUMNS_VERSION: Final = 1
#: ``side`` of a columnar frame, one character per event.
SIDE_CODES: Final[dict[Side, str]] = {"buy": "b", "sell": "s"}
#: MIN_TS in nanoseconds, the unit of a columnar frame's ``ts_ns``.
MIN_TS_NS: Final = 946_684_800 * 10**9

TimestampNs = Annotated[int, Meta(ge=MIN_TS_NS, le=2**63 - 1)]


class TradeColumns(
    Struct, tag_field="type", tag="columns", frozen=True, forbid_unknown_fields=True
):
    """A columnar batch of trades from one stream: one array per field (frame format v1).

    Sent as MessagePack (docs/contract.md, "Columnar batch frame"): the publisher builds
    it from its pending events with slices and one ``str.join`` and msgspec encodes it
    in C, ~0.02 us an event against ~0.45 us for formatting JSON trade objects in Python
    (docs/benchmark.md). Event ``i`` is the trade ``(side[i], qty[i], ts_ns[i] / 1e9)``
    with ``seq + i``; ``src``, ``stream`` and ``epoch`` are the frame's. All or nothing:
    one bad event refuses the whole frame (its seqs then show up as loss).
    """

    v: Annotated[int, Meta(ge=COLUMNS_VERSION, le=COLUMNS_VERSION)]
    src: Source
    stream: SafeInt
    epoch: SafeInt
    seq: Annotated[SafeInt, Meta(description="seq of the first event; event i has seq + i.")]
    side: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_BATCH_ITEMS,
            extra_json_schema={"pattern": "^[bs]+$"},
            description="One character per event: 'b' (buy) or 's' (sell).",
        ),
    ]
    qty: Annotated[list[Qty], Meta(min_length=1, max_length=MAX_BATCH_ITEMS)]
    ts_ns: Annotated[
        list[TimestampNs],
        Meta(
            min_length=1,
            max_length=MAX_BATCH_ITEMS,
            description="Event times in epoch nanoseconds (the same rules as ts).",
        ),
    ]


BenchMode = Literal["hotpath", "burst", "sustained", "ingest", "paced"]

#: The benchmark's modes; also the values of the sidecar's ``mode`` label.
BENCH_MODES: Final[tuple[BenchMode, ...]] = ("hotpath", "burst", "sustained", "ingest", "paced")

#: Target rates the sustained mode names in its variants ("client-10000"); any other
#: rate is reported under "client-other" / "e2e-other" (its rate is still a value).
SUSTAINED_RATES: Final[tuple[int, ...]] = (
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    500_000, 1_000_000,
)  # fmt: skip


def sustained_variant(kind: Literal["client", "e2e"], rate: float) -> str:
    """The closed-set variant name of a sustained row at ``rate`` events/s."""
    whole = int(rate)
    if whole == rate and whole in SUSTAINED_RATES:
        return f"{kind}-{whole}"
    return f"{kind}-other"


#: The paced mode's variants (each in its own process) and the rates its loops name;
#: a loop at another rate is reported as "<variant>-<style>-other".
PACED_VARIANTS: Final[tuple[str, ...]] = (
    "client", "client-unbatched", "prometheus-client", "statsd", "opentelemetry", "floor",
)  # fmt: skip
PACED_RATES: Final[tuple[int, ...]] = (1_000, 2_000, 10_000, 100_000)
PACED_STYLES: Final[tuple[str, ...]] = ("busy", "sleep")


def paced_variant(variant: str, style: str, rate: float) -> str:
    """The closed-set variant name of a paced row: ``client-busy-10000``, ``floor-continuous``."""
    if style == "continuous":
        return f"{variant}-continuous"
    whole = int(rate)
    return f"{variant}-{style}-{whole if whole == rate and whole in PACED_RATES else 'other'}"


#: Every variant trading-bench emits, and so every value of the sidecar's ``variant``
#: label. Closed: a benchmark frame with any other variant is refused, so 100,000
#: crafted frames cannot create 100,000 series.
BENCH_VARIANTS: Final[tuple[str, ...]] = (
    # hotpath (and burst: "client")
    "empty", "floor", "client", "client-batched", "client-unbatched",
    "seed-json", "prometheus-client", "opentelemetry", "statsd",
    "floor-curve", "client-curve",  # trading_bench.curve
    # ingest
    "raw-recv", "sidecar", "sidecar-batch", "sidecar-columns", "naive-json-prometheus",
    "stream", "stream-curve", "stream-batch", "stream-batch-curve",  # trading_bench.curve
    # sustained
    *(f"{kind}-{rate}" for kind in ("client", "e2e") for rate in SUSTAINED_RATES),
    "client-other", "e2e-other",
    # paced
    *(
        paced_variant(v, style, rate)
        for v in PACED_VARIANTS
        for style in PACED_STYLES
        for rate in (*PACED_RATES, 0.5)  # 0.5: the "-other" name
    ),
    *(paced_variant(v, "continuous", 0) for v in PACED_VARIANTS),
)  # fmt: skip

#: ``run_id`` is carried as a value of an info series that is replaced per
#: (mode, variant), so it only needs to be a short plain string.
LABEL_VALUE_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

# Python's ``$`` also matches just before a final newline, so ``^...$`` let
# "abc\n" through as a run id (each one a new label value). ``(?![\s\S])`` ("no
# character follows") is the end of the text in Python and in JSON Schema's ECMA
# dialect alike; ``\Z`` would be Python only.
RunId = Annotated[str, Meta(pattern=rf"^{LABEL_VALUE_PATTERN}(?![\s\S])")]

if TYPE_CHECKING:
    Variant = str
else:
    # An enum (a Literal of the closed set), not a regex: nothing but one of these exact
    # strings decodes, and the JSON Schema lists them.
    Variant = Literal[BENCH_VARIANTS]

Count = Annotated[int, Meta(ge=-1, le=MAX_SAFE_INT, description="-1: the mode cannot know.")]
NonNegative = Annotated[float, Meta(ge=0.0, le=1e300)]


class BenchmarkResult(Struct, tag_field="type", tag="benchmark", frozen=True):
    """One row of a benchmark run: one variant of one mode, e.g. hotpath/client.

    The benchmark sends these to the sidecar (so results land in Prometheus/Grafana)
    and writes its headline row as the Job's termination message (so the operator can
    put it in the LatencyBenchmark status). Latencies are in microseconds; counts are
    events; ``received`` and ``lost`` are -1 where the mode cannot know them.
    """

    run_id: RunId
    mode: BenchMode
    variant: Variant
    events: Count
    sent: Count
    dropped: Count
    received: Count
    lost: Count
    elapsed_s: NonNegative
    rate: NonNegative
    target_rate: NonNegative
    p50_us: NonNegative
    p90_us: NonNegative
    p99_us: NonNegative
    p999_us: NonNegative
    max_us: NonNegative
    started_at: NonNegative
    finished_at: NonNegative


Event = Trade | BenchmarkResult
