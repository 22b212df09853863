"""``trade()`` never blocks: a bound on the slowest call while the sidecar is away.

The promise a trading loop relies on (README, docs/architecture.md): whatever happens to
the sidecar, a ``trade()`` call returns at once and the loss is counted, never waited
out. A hang-only check (the test timeout) would pass a client that stalls 10 s per call;
these tests bound the slowest of thousands of calls instead, while the sidecar is gone,
stopped mid-stream (SIGSTOP: the connection stays up, nothing is read, the queues fill),
behind a TCP peer that accepts but never speaks ZeroMQ, or killed mid-stream (SIGKILL).

The bound is generous on purpose (``SLOWEST_CALL_S``, thousands of times a normal call):
the machine is shared and a scheduler hiccup must not fail the test, while any wait on
the network (a blocking send, a linger, a reconnect) takes far longer than that. Each
case also checks that the path it means was taken (events dropped: the budget was full).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import free_port, new_sidecar, wait_for
from trading_publisher.client import DEFAULT_MAX_QUEUE_BYTES, Publisher

#: The slowest single trade() call allowed, in seconds.
SLOWEST_CALL_S = 0.050
#: Each case makes at least this many calls.
MIN_CALLS = 20_000
#: A small budget, so a stalled sidecar fills it (and drops start) within a second.
BUDGET = 1 << 20

# A real process that accepts TCP connections and never reads or writes a byte: the
# ZeroMQ handshake never completes (a hung peer, a half-dead proxy).
_SILENT_PEER = """
import socket, sys, time
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
held = []
while True:
    held.append(server.accept()[0])
"""


class _RunQueueWait:
    """Nanoseconds a thread spent runnable but off the CPU (``/proc/.../schedstat``).

    The machine is shared: a call can take 40 ms of wall time because the OS ran other
    processes, with the client doing nothing wrong. That time is the kernel's run-queue
    wait; a call that *blocks* (a socket, a lock, a sleep, the GIL held by our flusher
    while it works) sleeps instead, which this does not count. One ``pread`` (~2 us).
    """

    def __init__(self, native_id: int) -> None:
        self.fd = os.open(f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY)

    def __call__(self) -> int:
        return int(os.pread(self.fd, 64, 0).split()[1])

    def close(self) -> None:
        os.close(self.fd)


def slowest_call(
    pub: Publisher, seconds: float, at: tuple[float, Callable[[], None]] | None = None
) -> tuple[float, float, int]:
    """Call ``pub.trade`` back to back for ``seconds``: (slowest s, slowest wall s, calls).

    "Slowest" leaves out the time the OS kept the calling thread, or the client's own
    threads (the flusher may hold the GIL the call waits for), runnable but off the CPU:
    the larger of the two, so a blocking call is never excused by more than the machine's
    load explains. ``at=(after_s, action)`` runs ``action`` once, untimed, ``after_s``
    into the run: the sidecar is stopped or killed while the loop keeps trading.
    """
    me = _RunQueueWait(threading.get_native_id())
    others = [
        _RunQueueWait(t.native_id)
        for t in threading.enumerate()
        if t is not threading.current_thread() and t.native_id is not None
    ]
    clock = time.perf_counter_ns
    trade = pub.trade
    start = clock()
    end = start + int(seconds * 1e9)
    when = start + int(at[0] * 1e9) if at else end + 1
    cap = end + 60_000_000_000
    worst = worst_wall = calls = 0
    try:
        while True:
            mine, theirs = me(), [o() for o in others]
            before = clock()
            trade("buy", 1.0)
            after = clock()
            wall = after - before
            if wall > worst:  # rare: only a new maximum pays for the second reads
                off_cpu = max(
                    [me() - mine, *(o() - t for o, t in zip(others, theirs, strict=True))]
                )
                worst = max(worst, wall - off_cpu)
                worst_wall = max(worst_wall, wall)
            calls += 1
            if after >= when and at is not None:
                at[1]()
                when = end + 1
            # Past the time and the count, and drops began (or a minute passed: check()
            # then fails on it): the budget filled, so the drop path was timed too.
            if after >= end and calls >= MIN_CALLS and (pub.dropped or after >= cap):
                return worst / 1e9, worst_wall / 1e9, calls
    finally:
        for reader in (me, *others):
            reader.close()


def check(pub: Publisher, measured: tuple[float, float, int]) -> None:
    worst, wall, calls = measured
    assert calls >= MIN_CALLS
    assert worst < SLOWEST_CALL_S, (
        f"slowest of {calls} trade() calls took {worst * 1e3:.1f} ms on the CPU or blocked "
        f"({wall * 1e3:.1f} ms wall)"
    )
    assert pub.dropped > 0, "the budget never filled: the case did not test what it means to"


@pytest.fixture
def silent_peer() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", _SILENT_PEER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"tcp://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(
    ("batch_size", "budget"), [(64, BUDGET), (1, BUDGET), (64, DEFAULT_MAX_QUEUE_BYTES)]
)
def test_trade_never_blocks_with_no_sidecar(batch_size: int, budget: int) -> None:
    with Publisher(
        f"tcp://127.0.0.1:{free_port()}",
        source="gone",
        batch_size=batch_size,
        max_queue_bytes=budget,
        linger_ms=0,
    ) as pub:
        measured = slowest_call(pub, 1.0)
        check(pub, measured)


@pytest.mark.parametrize("batch_size", [64, 1])
def test_trade_never_blocks_behind_a_peer_that_never_reads(
    silent_peer: str, batch_size: int
) -> None:
    with Publisher(
        silent_peer, source="silent", batch_size=batch_size, max_queue_bytes=BUDGET, linger_ms=0
    ) as pub:
        measured = slowest_call(pub, 1.5)
        check(pub, measured)


@pytest.mark.parametrize("batch_size", [64, 1])
def test_trade_never_blocks_while_the_sidecar_is_stopped(tmp_path: Path, batch_size: int) -> None:
    sidecar = new_sidecar().start(tmp_path)
    assert sidecar.proc is not None
    pid = sidecar.proc.process.pid
    try:
        with Publisher(
            sidecar.zmq_address,
            source="stopped",
            batch_size=batch_size,
            max_queue_bytes=BUDGET,
            linger_ms=0,
        ) as pub:
            wait_for(lambda: pub.connected, what="connected")
            # Connected and flowing, then frozen mid-stream: the TCP connection stays up,
            # so ZeroMQ's queue and the kernel's buffers fill before anything is held.
            measured = slowest_call(pub, 3.0, at=(0.3, lambda: os.kill(pid, signal.SIGSTOP)))
            check(pub, measured)
            assert pub.connected, "a stopped peer keeps its connection: the queue-full path"
    finally:
        os.kill(pid, signal.SIGCONT)
        sidecar.stop()


@pytest.mark.parametrize("batch_size", [64, 1])
def test_trade_never_blocks_when_the_sidecar_is_killed_mid_stream(
    tmp_path: Path, batch_size: int
) -> None:
    sidecar = new_sidecar().start(tmp_path)
    assert sidecar.proc is not None
    pid = sidecar.proc.process.pid
    try:
        with Publisher(
            sidecar.zmq_address,
            source="killed",
            batch_size=batch_size,
            max_queue_bytes=BUDGET,
            linger_ms=0,
        ) as pub:
            wait_for(lambda: pub.connected, what="connected")
            measured = slowest_call(pub, 2.0, at=(0.3, lambda: os.kill(pid, signal.SIGKILL)))
            check(pub, measured)
            wait_for(lambda: not pub.connected, what="the dead peer noticed")
            measured = slowest_call(pub, 0.5)
            check(pub, measured)
    finally:
        assert sidecar.stop() == -signal.SIGKILL
