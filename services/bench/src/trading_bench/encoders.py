"""``python -m trading_bench.encoders``: what one event costs to encode and decode, per format.

The flush runs on a thread holding the GIL the trading loop needs, so its cost per event
is a pause of that loop; this prints it for each frame format the contract knows, with
1,024-event frames as the client sends them: JSON trade objects formatted in Python
(``TradeEncoder.now`` + ``join_batch``, the technique the client used before issue 17),
the columnar struct as JSON, and as MessagePack (what the client sends now), plus what
the sidecar pays to decode each. Best of ``--repeat`` runs, µs per event.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from telemetry_contract.codec import decode, encode_batch
from telemetry_contract.events import COLUMNS_VERSION, SIDE_CODES, Trade, TradeColumns
from telemetry_contract.frames import TradeEncoder, encode_columns, join_batch

from trading_bench.common import trade_mix

EVENTS = 1024


def best_us_per_event(work: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6 / EVENTS


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trading_bench.encoders")
    p.add_argument("--repeat", type=int, default=300)
    args = p.parse_args(argv)
    mix = trade_mix(EVENTS)
    code_of: dict[str, str] = {side: code for side, code in SIDE_CODES.items()}
    now = time.time_ns()
    flat: list[str | float | int] = []
    for i, (side, qty) in enumerate(mix):
        flat.extend((code_of[side], qty, now + i))
    encoder = TradeEncoder("bench-encoders", stream=7, epoch=0).now

    def json_objects() -> bytes:
        return join_batch([encoder(side, qty, seq) for seq, (side, qty) in enumerate(mix)])

    def columns() -> TradeColumns:
        return TradeColumns(
            COLUMNS_VERSION, "bench-encoders", 7, 0, 0,
            "".join(flat[0::3]), flat[1::3], flat[2::3],  # type: ignore[arg-type]
        )  # fmt: skip

    def columns_json() -> bytes:
        return msgspec.json.encode(columns())

    def columns_msgpack() -> bytes:
        c = columns()
        return encode_columns(c.src, c.stream, c.epoch, c.seq, c.side, c.qty, c.ts_ns)

    trades = [
        Trade(side, qty, (now + i) / 1e9, "bench-encoders", i, 7, 0)  # type: ignore[arg-type]
        for i, (side, qty) in enumerate(mix)
    ]
    json_batch, packed = encode_batch(trades), columns_msgpack()
    rows = [
        ("encode: JSON trade objects, Python formatting", json_objects),
        ("encode: columns as JSON (msgspec)", columns_json),
        ("encode: columns as MessagePack (msgspec)", columns_msgpack),
        ("decode: JSON batch of trade objects", lambda: decode(json_batch)),
        ("decode: columnar frame, expanded to trades", lambda: decode(packed)),
    ]
    print(f"µs per event, frames of {EVENTS} events, best of {args.repeat}")
    for name, work in rows:
        print(f"{name:<50}{best_us_per_event(work, args.repeat):>8.3f}")
    print()
    hold_parts(args.repeat // 10 or 1)
    print()
    sidecar_split(args.repeat // 50 or 1)
    return 0


def hold_parts(repeat: int, events: int = 20_000) -> None:
    """One flush of ``events`` (what a 3.5M calls/s loop adds between two GIL hand-offs),
    step by step: taking the pending list as columns, cutting frames, encoding."""
    code_of: dict[str, str] = {side: code for side, code in SIDE_CODES.items()}
    base: list[str | float | int] = []
    now = time.time_ns()
    for i, (side, qty) in enumerate(trade_mix(events)):
        base.extend((code_of[side], qty, now + i))

    def best(work: Callable[[], object]) -> float:
        found = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            work()
            found = min(found, time.perf_counter() - t0)
        return found * 1e6

    def take() -> float:
        found = float("inf")
        for _ in range(repeat):
            flat = list(base)
            t0 = time.perf_counter()
            n = len(flat)
            "".join(flat[0:n:3])  # type: ignore[arg-type]
            flat[1:n:3], flat[2:n:3]  # noqa: B018 - the slices are the work
            del flat[:n]
            found = min(found, time.perf_counter() - t0)
        return found * 1e6

    codes = "".join(base[0::3])  # type: ignore[arg-type]
    qtys, stamps = base[1::3], base[2::3]
    bounds = range(0, events, EVENTS)

    def cut() -> None:
        for a in bounds:
            codes[a : a + EVENTS], qtys[a : a + EVENTS], stamps[a : a + EVENTS]  # noqa: B018

    def encode() -> None:
        for a in bounds:
            encode_columns(
                "bench-encoders", 7, 0, a, codes[a : a + EVENTS],
                qtys[a : a + EVENTS], stamps[a : a + EVENTS],  # type: ignore[arg-type]
            )  # fmt: skip

    print(f"one flush of {events:,} events, µs, best of {repeat}")
    for name, micros in (("take the columns", take()), ("cut frames", best(cut)),
                         ("encode (MessagePack)", best(encode))):  # fmt: skip
        print(f"{name:<50}{micros:>8.0f}")


def sidecar_split(repeat: int, events: int = 200_000) -> None:
    """What the sidecar pays per event, decoding (``decode_frames``) and counting
    (``TradeMetrics.record``), for JSON batches of 64 and columnar frames of 1,024; and a
    prototype that counts a columnar frame without building a trade per event."""
    from bisect import bisect_left
    from collections import Counter
    from itertools import compress
    from itertools import repeat as again
    from operator import eq, sub, truediv

    from telemetry_contract.codec import decode_frames
    from telemetry_contract.metric_names import E2E_LATENCY_BUCKETS
    from trading_sidecar.metrics import TradeMetrics

    from trading_bench.consumers import batch_frames, column_frames, single_frames

    feeds = {
        "JSON batches of 64": batch_frames(single_frames(events)),
        "columnar frames of 1,024": column_frames(events),
    }
    print(f"sidecar, ns per event over {events:,} events, chunks of 64 frames, best of {repeat}")
    for name, frames in feeds.items():
        best_decode = best_record = float("inf")
        for _ in range(repeat):
            metrics = TradeMetrics()
            decoding = counting = 0.0
            for i in range(0, len(frames), 64):
                out: list[Any] = []
                t0 = time.perf_counter()
                decode_frames(frames[i : i + 64], out, time.time())
                t1 = time.perf_counter()
                metrics.record(out, time.time())
                counting += time.perf_counter() - t1
                decoding += t1 - t0
            best_decode, best_record = min(best_decode, decoding), min(best_record, counting)
        total = best_decode + best_record
        print(
            f"{name:<26} decode {best_decode * 1e9 / events:5.0f}, count "
            f"{best_record * 1e9 / events:5.0f}: {events / total / 1e6:.2f}M events/s"
        )
    columns_of = msgspec.msgpack.Decoder(TradeColumns).decode
    frames = feeds["columnar frames of 1,024"]

    def bulk() -> None:
        now = time.time()
        for frame in frames:
            c = columns_of(frame)
            c.side.count("b")
            sum(compress(c.qty, list(map(eq, c.side, again("b")))))
            sum(c.qty)
            latency = list(map(sub, again(now), map(truediv, c.ts_ns, again(10**9))))
            Counter(map(bisect_left, again(E2E_LATENCY_BUCKETS), latency))
            sum(latency)

    found = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        bulk()
        found = min(found, time.perf_counter() - t0)
    print(
        f"{'prototype: count columns':<26} {found * 1e9 / events:5.0f} ns in all: "
        f"{events / found / 1e6:.2f}M events/s"
    )


if __name__ == "__main__":
    sys.exit(main())
