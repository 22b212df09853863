"""docs/contract.schema.json is generated from the types; a drift fails here.

The checked-in schema must equal what the types generate now, docs/contract.md must show
the Trade definition exactly as generated, and real frames (single, batch, benchmark)
must validate against the schema while refused ones do not.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from telemetry_contract import BenchmarkResult, Trade, encode, encode_batch
from telemetry_contract.codec import TradeEncoder, join_batch
from telemetry_contract.schema import render, wire_schema

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "docs" / "contract.schema.json"
CONTRACT_MD = ROOT / "docs" / "contract.md"
REGENERATE = "python -m telemetry_contract.schema > docs/contract.schema.json"


def test_checked_in_schema_is_what_the_types_generate() -> None:
    assert SCHEMA.read_text() == render(), f"schema drifted from the types: run `{REGENERATE}`"


def test_contract_md_shows_the_generated_trade_definition() -> None:
    text = CONTRACT_MD.read_text()
    found = re.search(r"<!-- schema:Trade -->\n```json\n(.*?)\n```", text, re.S)
    assert found, "docs/contract.md lost its generated Trade schema block"
    assert json.loads(found.group(1)) == wire_schema()["$defs"]["Trade"]


def _validator() -> Any:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def test_real_frames_validate_and_refused_ones_do_not() -> None:
    validator = _validator()
    now = time.time()
    enc = TradeEncoder("desk-1", stream=7, epoch=0)
    frames = [
        encode(Trade("buy", 2.0, now)),
        b'{"type": "trade", "side": "sell", "qty": 1, "ts": 1700000000}',  # the seed's
        enc.now("sell", 3.5, 42),
        join_batch([enc.now("buy", 1.0, seq) for seq in range(64)]),
        encode_batch([Trade("buy", 1.0, now, "a", 1)]),
        encode(
            BenchmarkResult(
                run_id="r1",
                mode="burst",
                variant="client",
                events=1,
                sent=1,
                dropped=0,
                received=1,
                lost=0,
                elapsed_s=1.0,
                rate=1.0,
                target_rate=0.0,
                p50_us=1.0,
                p90_us=1.0,
                p99_us=1.0,
                p999_us=1.0,
                max_us=1.0,
                started_at=1.0,
                finished_at=2.0,
            )  # fmt: skip
        ),
    ]
    for frame in frames:
        validator.validate(json.loads(frame))
    for bad in (
        {"type": "trade", "side": "hold", "qty": 1, "ts": 1.7e9},
        {"type": "trade", "side": "buy", "qty": 2e15, "ts": 1.7e9},
        {"type": "trade", "side": "buy", "qty": 1, "ts": 0},
        {"type": "trade", "side": "buy", "qty": 1, "ts": 1.7e9, "src": ""},
        [{"side": "buy", "qty": 1, "ts": 1.7e9}] * 1025,
    ):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)
