"""``state``'s file: what each bad snapshot is called, what is left where, what the log says.

The operator meets a bad snapshot through three things: the ``reason`` label, the one
warning line (with the error's own words), and the file kept beside the state file. Each
case here pins those, on real files in ``tmp_path``: the header's exact layout, the size
limit at its boundary (and that a pipe in the file's place cannot make it read more),
the ``.bad-<ns>`` files kept, and a rename that fails.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import msgspec
import pytest
from telemetry_contract.events import Trade
from trading_sidecar.bench_metrics import BenchState
from trading_sidecar.metrics import LossTracker, MetricsState, TradeMetrics
from trading_sidecar.state import (
    FILENAME,
    KEEP_BAD,
    MAGIC,
    MAX_STATE_BYTES,
    VERSION,
    Body,
    Snapshot,
    StateError,
    decode,
    encode,
    load,
    move_aside,
    read,
    set_aside,
    write_atomic,
)

NOW = 1_700_000_000.0
LOGGER = "trading_sidecar.state"


def _body() -> bytes:
    metrics = TradeMetrics()
    metrics.record([Trade("buy", 2.0, NOW, "s", 0), Trade("sell", 1.0, NOW, "s", 3)], NOW)
    return encode(Snapshot(metrics.snapshot())).partition(b"\n")[2]


BODY = _body()
DIGEST = hashlib.sha256(BODY).hexdigest()


def signed(body: bytes) -> bytes:
    return f"{MAGIC} {VERSION} {hashlib.sha256(body).hexdigest()}\n".encode() + body


def _msgspec_says(body: bytes) -> str:
    """What msgspec itself says about ``body`` (the detail the error passes on)."""
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)) as caught:
        msgspec.json.decode(body, type=Body)
    return str(caught.value)


NEGATIVE = BODY.replace(b'"lost":', b'"lost":-', 1)
#: An unknown key whose name makes msgspec's message longer than the 200 characters kept.
LONG_KEY = b'{"' + b"k" * 300 + b'":1}'

REFUSED = [
    ("no newline", f"{MAGIC} {VERSION} {DIGEST}".encode(), "header",
     "no header line (truncated?)"),
    ("empty", b"", "header", "no header line (truncated?)"),
    ("two fields", f"{MAGIC} {VERSION}\n".encode() + BODY, "header", "not a sidecar state file"),
    ("four fields", f"{MAGIC} {VERSION} {DIGEST} x\n".encode() + BODY, "header",
     "not a sidecar state file"),
    ("another magic, valid checksum", f"other-state {VERSION} {DIGEST}\n".encode() + BODY,
     "header", "not a sidecar state file"),
    # Fields are separated by one space each: not any whitespace.
    ("two spaces", f"{MAGIC}  {VERSION} {DIGEST}\n".encode() + BODY, "header",
     "not a sidecar state file"),
    ("tab", f"{MAGIC}\t{VERSION} {DIGEST}\n".encode() + BODY, "header",
     "not a sidecar state file"),
    # Bytes that are not ASCII are a wrong header, not a crash.
    ("not ASCII", b"\xff\xfe" + f"{MAGIC} {VERSION} {DIGEST}\n".encode() + BODY, "header",
     "not a sidecar state file"),
    ("version 99", f"{MAGIC} 99 {DIGEST}\n".encode() + BODY, "header",
     f"format version 99, this sidecar reads {VERSION}"),
    ("version 0", f"{MAGIC} 0 {DIGEST}\n".encode() + BODY, "header",
     f"format version 0, this sidecar reads {VERSION}"),
    ("checksum", f"{MAGIC} {VERSION} {DIGEST}\n".encode() + NEGATIVE, "checksum",
     "checksum mismatch (truncated or corrupt)"),
    ("truncated", signed(BODY)[:-1], "checksum", "checksum mismatch (truncated or corrupt)"),
    ("negative count", signed(NEGATIVE), "content",
     f"unusable content: {_msgspec_says(NEGATIVE)}"),
    ("not JSON", signed(b"{oops"), "content", f"unusable content: {_msgspec_says(b'{oops')}"),
    ("long detail", signed(LONG_KEY), "content",
     f"unusable content: {_msgspec_says(LONG_KEY)[:200]}"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "data", "reason", "detail"), REFUSED, ids=[case[0] for case in REFUSED]
)
def test_each_bad_snapshot_gets_its_reason_and_its_detail(
    name: str, data: bytes, reason: str, detail: str
) -> None:
    with pytest.raises(StateError) as caught:
        decode(data)
    assert (caught.value.reason, str(caught.value)) == (reason, detail)


def test_a_long_detail_keeps_the_first_200_characters_of_msgspecs_message() -> None:
    said = _msgspec_says(LONG_KEY)
    assert len(said) > 200  # the case really is cut
    with pytest.raises(StateError) as caught:
        decode(signed(LONG_KEY))
    assert str(caught.value) == "unusable content: " + said[:200]


def _with_resets(trading: int, bench: int) -> Snapshot:
    return Snapshot(
        MetricsState(streams=LossTracker({("p", 0): (7, 1)}, jumps=trading)),
        BenchState(streams=LossTracker({("bench-1", 2): (9, 0)}, jumps=bench)),
    )


def test_stream_resets_of_both_tables_survive_the_file() -> None:
    back = decode(encode(_with_resets(3, 5)))
    assert back.trading.streams.jumps == 3 and back.bench.streams.jumps == 5
    assert back.trading.streams.positions == {("p", 0): (7, 1)}
    assert back.bench.streams.positions == {("bench-1", 2): (9, 0)}


def test_a_file_written_before_resets_were_counted_loads_with_zero_resets() -> None:
    raw = msgspec.json.decode(encode(_with_resets(3, 5)).partition(b"\n")[2])
    del raw["stream_resets"], raw["bench_stream_resets"]
    back = decode(signed(msgspec.json.encode(raw)))
    assert back.trading.streams.jumps == 0 and back.bench.streams.jumps == 0


def test_the_body_is_everything_after_the_first_newline() -> None:
    """A body with line breaks (re-signed after a hand edit) is still one body."""
    pretty = msgspec.json.format(BODY, indent=2)
    assert pretty.count(b"\n") > 10
    assert decode(signed(pretty)) == decode(signed(BODY))


# --- reading the file ----------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid snapshot of exactly ``size`` bytes (JSON allows trailing spaces)."""
    header_len = len(signed(BODY)) - len(BODY)
    return signed(BODY + b" " * (size - header_len - len(BODY)))


def test_a_snapshot_of_exactly_the_size_limit_loads(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(_padded(MAX_STATE_BYTES))
    assert path.stat().st_size == MAX_STATE_BYTES
    snapshot = read(path)
    assert snapshot is not None and snapshot.trading.trades == {"buy": 1, "sell": 1}


def test_one_byte_over_the_size_limit_is_content(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(_padded(MAX_STATE_BYTES + 1))
    with pytest.raises(StateError) as caught:
        read(path)
    assert caught.value.reason == "content"
    assert str(caught.value) == f"larger than {MAX_STATE_BYTES} bytes"


def test_a_pipe_in_the_files_place_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    """At most MAX_STATE_BYTES + 1 bytes are read: a pipe (or a device) that never ends
    cannot hold the start or fill the memory. The pipe holds exactly that many and stays
    open, so reading one byte more would wait for ever."""
    path = tmp_path / FILENAME
    os.mkfifo(path)
    done = threading.Event()

    def feed() -> None:
        with path.open("wb") as pipe:
            try:
                pipe.write(b"x" * (MAX_STATE_BYTES + 1))
                pipe.flush()
            except BrokenPipeError:
                return
            done.wait(60)

    outcome: list[BaseException | None] = []

    def reader() -> None:
        try:
            read(path)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)
        else:
            outcome.append(None)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    reading = threading.Thread(target=reader, daemon=True)
    reading.start()
    try:
        reading.join(30)
        assert not reading.is_alive(), "still reading: it asked for more than the limit"
    finally:
        done.set()
    [error] = outcome
    assert isinstance(error, StateError) and error.reason == "content"
    feeder.join(10)


def test_a_folder_in_the_files_place_is_unreadable_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    path.mkdir()
    with pytest.raises(IsADirectoryError) as os_says:
        path.open("rb")
    with pytest.raises(StateError) as caught:
        read(path)
    assert caught.value.reason == "unreadable"
    assert str(caught.value) == f"cannot read it ({os_says.value})"


def test_no_file_is_no_snapshot(tmp_path: Path) -> None:
    assert read(tmp_path / FILENAME) is None


# --- moving a bad file aside -----------------------------------------------------------


def test_a_bad_snapshot_is_renamed_and_the_warning_says_why_and_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(b"junk\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert load(path) is None
    [kept] = tmp_path.iterdir()
    assert kept.name.startswith(f"{FILENAME}.bad-") and kept.read_bytes() == b"junk\n"
    assert kept.name.removeprefix(f"{FILENAME}.bad-").isdigit()  # the time, in ns
    assert [r.getMessage() for r in caplog.records] == [
        f"state snapshot {path} is not usable (header: not a sidecar state file): "
        f"counting from zero; it is kept as {kept.name}"
    ]


def test_no_snapshot_at_all_is_one_warning_naming_the_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / FILENAME
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert load(path) is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"no state snapshot at {path}: counting from zero")
    ]


def _too_long_to_rename(folder: Path) -> Path:
    """A file whose ``.bad-<ns>`` name would exceed the 255 bytes a name may have: the
    rename fails as it would on a read-only volume or a file mounted in place."""
    path = folder / ("s" * 240)
    path.write_bytes(b"junk\n")
    return path


def test_a_bad_snapshot_that_cannot_be_moved_stays_and_both_lines_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _too_long_to_rename(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        set_aside(path, StateError("checksum", "checksum mismatch (truncated or corrupt)"))
    assert path.read_bytes() == b"junk\n" and list(tmp_path.iterdir()) == [path]
    error, warning = caplog.records
    assert error.levelname == "ERROR"
    assert error.getMessage().startswith(
        f"cannot move the bad state snapshot {path} aside: [Errno 36] File name too long"
    ), error.getMessage()
    assert (warning.levelname, warning.getMessage()) == (
        "WARNING",
        f"state snapshot {path} is not usable (checksum: checksum mismatch (truncated or "
        "corrupt)): counting from zero; it could not be moved aside",
    )


def test_move_aside_says_none_when_the_rename_fails(tmp_path: Path) -> None:
    path = _too_long_to_rename(tmp_path)
    assert move_aside(path) is None
    assert path.exists()


def test_the_newest_bad_files_are_kept_and_a_folder_among_them_is_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / FILENAME
    folder = tmp_path / f"{FILENAME}.bad-0000000000000000001"  # the oldest name of all
    folder.mkdir()
    (folder / "inside").write_bytes(b"not ours")
    older = [tmp_path / f"{FILENAME}.bad-{n:019d}" for n in range(2, 2 + KEEP_BAD + 2)]
    for old in older:
        old.write_bytes(old.name.encode())
    path.write_bytes(b"newest")
    moved = move_aside(path)
    assert moved is not None and moved.read_bytes() == b"newest" and not path.exists()
    left = sorted(p.name for p in tmp_path.glob(f"{FILENAME}.bad-*") if p.is_file())
    assert left == sorted([p.name for p in older[-(KEEP_BAD - 1) :]] + [moved.name])
    assert folder.is_dir() and (folder / "inside").read_bytes() == b"not ours"


def test_a_write_that_fails_leaves_no_temporary_copy_behind(tmp_path: Path) -> None:
    """A rename that fails (here: a non-empty folder in the file's place) keeps nothing of
    its own: an earlier process's leftover would otherwise stay forever (pids differ)."""
    target = tmp_path / "snapshot.json"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        write_atomic(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot.json"]
    write_atomic(tmp_path / "other.json", b"data")  # the good path still leaves one file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "snapshot.json"]
