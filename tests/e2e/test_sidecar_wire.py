"""Wire path v2 against a real ``trading-sidecar`` process: hostile frames, exact sums,
batch frames with bad items, and a bounded number of benchmark series."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest
import zmq
from support import Samples, Sidecar, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.codec import TradeEncoder, encode_trade, join_batch
from telemetry_contract.events import BENCH_MODES, BENCH_VARIANTS, LABEL_VALUE_PATTERN, MAX_QTY
from telemetry_contract.transport import MAX_FRAME_BYTES, MAX_NESTING_DEPTH


@pytest.fixture
def push(sidecar: Sidecar) -> Iterator[zmq.Socket[bytes]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.connect(sidecar.zmq_address)
    try:
        yield sock
    finally:
        sock.close(linger=0)
        ctx.term()


def trades(samples: Samples) -> float:
    return value(samples, names.TRADES, side="buy") + value(samples, names.TRADES, side="sell")


def healthy(sidecar: Sidecar) -> bool:
    return httpx.get(f"{sidecar.url}/healthz", timeout=5).status_code == 200


def good(i: int, side: str = "buy", qty: float = 1.0) -> bytes:
    return encode_trade(side, qty, time.time(), "wire-good", i)


HOSTILE: list[list[bytes]] = [
    [b'{"type":"trade","side":[],"qty":1,"ts":1700000000}'],
    [b'{"type":"trade","side":{},"qty":1,"ts":1700000000}'],
    [
        b'{"type":"trade","side":"buy","qty":' + b"[" * 5000 + b"]" * 5000 + b',"ts":1700000000}'
    ],  # too deep: malformed_json
    [b'{"a":' * 50_000 + b"1" + b"}" * 50_000],
    [b"x" * (2 * 1024 * 1024)],  # 2 MiB: received, then refused as oversize
    [b'{"type":"trade","side":"buy","qty":1,"ts":1700000000}', b"second part"],
    [b'{"type":"trade","side":"buy","qty":1.7e308,"ts":1700000000}'],
    [b'{"type":"trade","side":"buy","qty":1,"ts":NaN}'],
    ['{"type":"trade","side":"buy","qty":1,"ts":1700000000}'.encode("utf-16")],
]


def test_hostile_frames_then_every_good_trade_counts(
    sidecar: Sidecar, push: zmq.Socket[bytes]
) -> None:
    assert 2 * 1024 * 1024 > MAX_FRAME_BYTES
    before = sidecar.scrape()
    for parts in HOSTILE:
        push.send_multipart(parts)
        assert healthy(sidecar)
    for i in range(100):
        push.send(good(i))
    wait_for(lambda: trades(sidecar.scrape()) == trades(before) + 100, what="100 good trades")
    after = sidecar.scrape()
    assert healthy(sidecar)
    invalid = {
        reason: value(after, names.INVALID, reason=reason)
        for reason in ("wrong_type", "malformed_json", "oversize", "multipart", "invalid_qty",
                       "not_utf8", "internal_error")
    }  # fmt: skip
    assert invalid == {
        "wrong_type": 2, "malformed_json": 3, "oversize": 1, "multipart": 1, "invalid_qty": 1,
        "not_utf8": 1, "internal_error": 0,
    }  # fmt: skip
    assert value(after, names.RECEIVED) == len(HOSTILE) + 100
    assert value(after, names.LOST) == 0


def test_every_promise_of_the_contract_holds_in_the_real_sidecar(
    sidecar: Sidecar, push: zmq.Socket[bytes]
) -> None:
    """Issue 19 as a hostile sender: each frame lands under the reason docs/contract.md
    names, good items beside bad ones still count, and one frame cannot claim 9e15 lost."""
    now = time.time()
    ok = b'{"type":"trade","side":"buy","qty":1,"ts":%r' % now

    def deep(levels: int) -> bytes:  # the trade object is level 1
        return ok + b',"x":' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"

    frames = [
        (ok + b',"note":"\xff"}', "not_utf8"),  # in a string nobody reads
        (b"[" + ok + b"}," + ok + b',"n\xc3":1}]', "not_utf8"),  # a batch: whole frame
        (ok + b',"qty":-1}', "duplicate_key"),  # neither value wins
        (b"[" + ok + b"}," + ok + b',"qty":2,"qty":-1},' + ok + b"}]", "duplicate_key"),
        (deep(500), "malformed_json"),  # deeper than the limit: same answer on any stack
        (deep(MAX_NESTING_DEPTH), ""),  # at the limit: a trade
        (b'{"type":"trade","side":1e309,"qty":1,"ts":%r}' % now, "wrong_type"),
        (ok + b',"src":1e309}', "wrong_type"),
    ]
    for frame, _ in frames:
        push.send(frame)
    jumper = TradeEncoder("wire-jumper")
    push.send(jumper("buy", 1.0, now, 0))
    push.send(jumper("buy", 1.0, now, 2**53 - 1))  # one frame claiming 9e15 lost events
    push.send(jumper("buy", 1.0, now, 2**53 - 1))  # a duplicate: no loss either
    # 2 trades beside the bad batch item, 1 at the depth limit, 3 from the jumper.
    wait_for(lambda: trades(sidecar.scrape()) == 6, what="the 6 good trades")
    after = sidecar.scrape()
    assert value(after, names.RECEIVED) == len(frames) + 3
    expected: dict[str, int] = {}
    for _, reason in frames:
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
    for reason in ("not_utf8", "duplicate_key", "malformed_json", "wrong_type", "internal_error"):
        assert value(after, names.INVALID, reason=reason) == expected.get(reason, 0), reason
    assert value(after, names.LOST) == 0
    assert value(after, names.STREAM_RESETS, reason="seq_jump") == 1


def test_volume_stays_exact_and_out_of_bound_values_change_no_trade_series(
    sidecar: Sidecar, push: zmq.Socket[bytes]
) -> None:
    push.send(good(0, qty=MAX_QTY))
    for i in range(1, 1001):
        push.send(good(i))
    wait_for(lambda: trades(sidecar.scrape()) == 1001, what="1,001 trades")
    counted = sidecar.scrape()
    assert value(counted, names.VOLUME, side="buy") == MAX_QTY + 1000  # exact, no rounding
    push.send(b'{"type":"trade","side":"buy","qty":1000000000000001,"ts":%d}' % time.time())
    push.send(b'{"type":"trade","side":"sell","qty":1,"ts":0}')
    push.send(b'{"type":"trade","side":"sell","qty":1,"ts":%d}' % (time.time() * 1000))
    wait_for(lambda: value(sidecar.scrape(), names.RECEIVED) == 1004, what="the refused frames")
    after = sidecar.scrape()
    assert value(after, names.INVALID, reason="invalid_qty") == 1
    assert value(after, names.INVALID, reason="invalid_ts") == 1
    assert value(after, names.INVALID, reason="ts_milliseconds") == 1
    trade_series = (names.TRADES, names.VOLUME, names.LAST_TRADE_TS, names.E2E_LATENCY + "_sum")
    for (name, labels), number in counted.items():
        if name in trade_series:
            assert after[(name, labels)] == number, name


def test_batch_of_64_with_3_bad_items(sidecar: Sidecar, push: zmq.Socket[bytes]) -> None:
    now = time.time()
    items = [encode_trade("sell", 2.0, now, "wire-batch", seq) for seq in range(64)]
    items[5] = b'{"type":"trade","side":"hold","qty":2,"ts":%r,"src":"wire-batch","seq":5}' % now
    items[30] = b'{"type":"trade","side":"sell","qty":-2,"ts":%r,"src":"wire-batch","seq":30}' % now
    items[63] = b'{"type":"trade","side":"sell","qty":2,"ts":%r}' % (now * 1e9)
    push.send(join_batch(items))
    wait_for(lambda: value(sidecar.scrape(), names.TRADES, side="sell") == 61, what="61 trades")
    s = sidecar.scrape()
    assert value(s, names.VOLUME, side="sell") == 122.0
    assert value(s, names.INVALID, reason="invalid_side") == 1
    assert value(s, names.INVALID, reason="invalid_qty") == 1
    assert value(s, names.INVALID, reason="ts_nanoseconds") == 1
    assert value(s, names.RECEIVED) == 1  # one frame
    # Items 5 and 30 never counted: their seq numbers are gaps, as the loss rule says.
    assert value(s, names.LOST) == 2


#: Series one (mode, variant) row adds: run info, 5 percentiles, rate, target, 5 outcomes,
#: elapsed, finished.
SERIES_PER_ROW = 15


def series_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_benchmark_frames_cannot_grow_the_series_count(
    sidecar: Sidecar, push: zmq.Socket[bytes]
) -> None:
    before = series_count(httpx.get(f"{sidecar.url}/metrics", timeout=10).text)
    rng = random.Random(8)
    row = {
        "type": "benchmark", "events": 1, "sent": 1, "dropped": 0, "received": 1, "lost": 0,
        "elapsed_s": 1.0, "rate": 1.0, "target_rate": 0.0, "p50_us": 1.0, "p90_us": 1.0,
        "p99_us": 1.0, "p999_us": 1.0, "max_us": 1.0, "started_at": 1.0, "finished_at": 2.0,
    }  # fmt: skip
    sent = 100_000
    refused = 0
    for i in range(sent):
        variant = rng.choice(BENCH_VARIANTS)
        run_id = f"run-{i}"
        if i % 10 == 0:  # a made-up variant: refused, no series at all
            variant, refused = f"v{i}", refused + 1
        elif i % 10 == 5:  # a real variant plus a newline (Python's `$` matched it)
            variant, refused = variant + "\n", refused + 1
        elif i % 10 == 7:  # a run id plus a newline, likewise
            run_id, refused = run_id + "\n", refused + 1
        frame = {**row, "run_id": run_id, "mode": rng.choice(BENCH_MODES), "variant": variant}
        push.send(json.dumps(frame).encode())
    wait_for(
        lambda: value(sidecar.scrape(), names.RECEIVED) == sent,
        timeout=120,
        what="100,000 benchmark frames received",
    )
    text = httpx.get(f"{sidecar.url}/metrics", timeout=10).text
    samples = sidecar.scrape()
    assert value(samples, names.BENCH_RESULTS) == sent - refused
    assert value(samples, names.INVALID, reason="invalid_benchmark") == refused
    bound = len(BENCH_MODES) * len(BENCH_VARIANTS) * SERIES_PER_ROW
    assert series_count(text) - before <= bound
    runs = [dict(labels) for name, labels in samples if name == names.BENCH_RUN]
    assert len(runs) <= len(BENCH_MODES) * len(BENCH_VARIANTS)
    assert all(r["variant"] in BENCH_VARIANTS for r in runs)
    assert all(re.fullmatch(LABEL_VALUE_PATTERN, r["run_id"]) for r in runs)
    assert healthy(sidecar)


def test_streams_over_the_wire_into_one_sidecar(sidecar: Sidecar) -> None:
    """Three sockets of one publisher (three streams), interleaved, plus real drops."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socks = [ctx.socket(zmq.PUSH) for _ in range(3)]
    try:
        for sock in socks:
            sock.connect(sidecar.zmq_address)
        encoders = [TradeEncoder("wire-streams", stream=s, epoch=0) for s in (11, 12, 13)]
        sent = 0
        for seq in range(1000):
            for index, (sock, encode) in enumerate(zip(socks, encoders, strict=True)):
                if index == 2 and seq % 100 == 99:
                    continue  # stream 13 "drops" one event in a hundred: seq still advances
                sock.send(encode.now("buy", 1.0, seq))
                sent += 1
        wait_for(lambda: value(sidecar.scrape(), names.TRADES, side="buy") == sent)
        assert value(sidecar.scrape(), names.LOST) == 9  # the last drop has no successor
    finally:
        for sock in socks:
            sock.close(linger=0)
        ctx.term()
