"""The JSON Schema of one wire frame, generated from the contract's types.

Never written by hand: ``docs/contract.schema.json`` is this module's output, checked in
so readers (and other languages' publishers) can see the format, and a test fails when
the two drift. Regenerate with ``python -m telemetry_contract.schema > docs/contract.schema.json``.

The schema states what the types state. The one rule it cannot state is the upper end
of ``ts`` (the receiver's clock plus a day); its description says so.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from telemetry_contract.events import BenchmarkResult, Trade, TradeColumns
from telemetry_contract.transport import MAX_BATCH_ITEMS

#: One frame: a trade, a benchmark result, a batch of trades, or a columnar batch (the
#: one MessagePack frame: its schema is that of the decoded map).
Frame = (
    Trade
    | BenchmarkResult
    | TradeColumns
    | Annotated[
        list[Trade],
        Meta(
            max_length=MAX_BATCH_ITEMS,
            title="Batch",
            description="A batch frame: up to 1024 trades, counted in order; a bad item is "
            'refused alone. Items may leave out "type" (they are trades).',
        ),
    ]
)


def wire_schema() -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(Frame)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "trading-telemetry wire frame"
    schema["description"] = (
        "One ZeroMQ frame (single part, at most MAX_FRAME_BYTES): UTF-8 JSON (a trade, a "
        "benchmark result, or an array of trades), or a MessagePack map of type 'columns' "
        "(frame format version 1: a columnar batch of one stream's trades). Generated "
        "from telemetry_contract.events."
    )
    return schema


def render() -> str:
    return json.dumps(wire_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
