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
    return 0


if __name__ == "__main__":
    sys.exit(main())
