"""``streams``: one PUSH socket per endpoint, each its own seq stream, and loss accounting.

The promises the sidecar's loss count rests on (docs/contract.md, "The publisher's
side"): a random 53-bit stream id per socket, seq from 0, an epoch that counts the
socket's TCP connections after the first, round-robin over sockets, and events given
up consuming seqs of the next stream in turn. Real sockets on loopback, no sidecar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import zmq
from client_wire import Wire, wait_until, writable
from support import free_port
from telemetry_contract.transport import Heartbeat
from trading_publisher import streams as streams_module
from trading_publisher import zmq_direct
from trading_publisher.streams import Streams

#: Each test takes well under a second; a client that hangs (a wait that never ends)
#: fails here instead of at the suite's 300 s ceiling.
pytestmark = pytest.mark.timeout(30)

Make = Callable[..., Streams]


@pytest.fixture
def wire() -> Iterator[Wire]:
    w = Wire()
    yield w
    w.close()


@pytest.fixture(params=["direct", "pyzmq"])
def make(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """Streams on their own context, closed at teardown; both send/monitor paths: the
    GIL-holding libzmq calls, and pyzmq's own (where ctypes cannot reach libzmq)."""
    if request.param == "pyzmq":
        monkeypatch.setattr(zmq_direct, "load", lambda: None)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    made: list[Streams] = []

    def new(addresses: list[str], **options: object) -> Streams:
        kwargs: dict[str, object] = {"sndhwm": 1000, "linger_ms": 0, "curve": None}
        kwargs.update(options)
        s = Streams(ctx, addresses, **kwargs)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield new
    for s in made:
        if not s.all[0].socket.closed:
            s.close(0)
    ctx.term()


def test_each_socket_is_a_53_bit_stream_from_seq_0_epoch_0(make: Make) -> None:
    addresses = [f"tcp://127.0.0.1:{free_port()}" for _ in range(16)]
    streams = make(addresses)
    described = streams.describe()
    assert [(a, e, q) for a, _, e, q in described] == [(a, 0, 0) for a in addresses]
    ids = [stream for _, stream, _, _ in described]
    # JSON's safe integers (the contract's SafeInt): 16 draws all below 2**53.
    assert all(0 <= i < 2**53 for i in ids)
    assert len(set(ids)) == 16
    assert streams.rr == 0 and streams.next_rr == [*range(1, 16), 0]


def test_socket_options_are_the_ones_given(make: Make) -> None:
    heartbeat = Heartbeat(250, 750, 2_000)
    streams = make(
        [f"tcp://127.0.0.1:{free_port()}"], sndhwm=123, linger_ms=45, heartbeat=heartbeat
    )
    sock = streams.all[0].socket
    assert sock.getsockopt(zmq.SNDHWM) == 123
    assert sock.getsockopt(zmq.LINGER) == 45
    assert sock.getsockopt(zmq.IMMEDIATE) == 1
    assert sock.getsockopt(zmq.HEARTBEAT_IVL) == 250
    assert sock.getsockopt(zmq.HEARTBEAT_TIMEOUT) == 750
    assert sock.getsockopt(zmq.HEARTBEAT_TTL) == 2_000
    assert (streams.sndhwm, streams.linger_ms, streams.heartbeat) == (123, 45, heartbeat)
    off = make([f"tcp://127.0.0.1:{free_port()}"])
    assert off.heartbeat is None and off.all[0].socket.getsockopt(zmq.HEARTBEAT_IVL) == 0


def test_round_robin_and_consumed_seqs(make: Make) -> None:
    streams = make([f"tcp://127.0.0.1:{free_port()}" for _ in range(3)])
    order = []
    for _ in range(4):
        order.append(streams.rr)
        streams.advance()
    assert order == [0, 1, 2, 0]
    assert streams.rr == 1
    # Events given up take the current stream's next seqs; the next loss goes to the next.
    streams.consume(5)
    streams.consume(2)
    assert [seq for *_, seq in streams.describe()] == [0, 5, 2]
    assert streams.rr == 0
    streams.consume(0)  # nothing given up: no seq taken, no turn taken
    assert [seq for *_, seq in streams.describe()] == [0, 5, 2] and streams.rr == 0


def test_connections_disconnections_and_epochs(make: Make, wire: Wire) -> None:
    port = free_port()
    streams = make([f"tcp://127.0.0.1:{port}"])
    s = streams.all[0]
    assert streams.connected is False and not s.peers
    pull, _ = wire.pull(port)
    wait_until(lambda: streams.connected, "connected")
    # The first connection is epoch 0.
    assert (s.epoch, s.seen, len(s.peers)) == (0, 1, 1)
    pull.close(linger=0)
    wait_until(lambda: not streams.connected, "disconnect noticed")
    assert s.peers == set() and s.epoch == 0
    again, _ = wire.pull(port)
    wait_until(lambda: streams.connected, "reconnected")
    assert (s.epoch, s.seen, len(s.peers)) == (1, 2, 1)
    assert streams.describe()[0][2] == 1
    again.close(linger=0)  # and once more: each new connection is the next epoch
    wait_until(lambda: not streams.connected, "second disconnect noticed")
    wire.pull(port)
    wait_until(lambda: streams.connected, "reconnected again")
    assert (s.epoch, s.seen, len(s.peers)) == (2, 3, 1)


def test_next_live_skips_sockets_without_a_connection(make: Make, wire: Wire) -> None:
    pull, live = wire.pull()
    dead = f"tcp://127.0.0.1:{free_port()}"
    streams = make([dead, live, dead])
    wait_until(lambda: streams.connected, "connected")
    found = streams.next_live()
    assert found is streams.all[1] and streams.rr == 1
    streams.advance()  # rr 2: the dead one after it, then round to 0 (dead), then 1
    assert streams.next_live() is streams.all[1] and streams.rr == 1
    nobody = make([dead, dead])
    nobody.rr = 1
    assert nobody.next_live() is None
    assert nobody.rr == 1  # a full turn: where it started


def test_send_says_whether_the_frame_went(make: Make, wire: Wire) -> None:
    pull, live = wire.pull()
    streams = make([live, f"tcp://127.0.0.1:{free_port()}", wire.silent()])
    wait_until(lambda: writable([streams.all[0].socket]), "handshake done")
    assert streams.send(streams.all[0], b"one") is True
    assert Wire.recv(pull) == b"one"
    assert streams.send(streams.all[1], b"two") is False  # no connection (IMMEDIATE)
    silent = streams.all[2]
    wait_until(lambda: streams.connected and silent.peers, "silent peer connected")
    # TCP is up, the ZeroMQ handshake never completes: the socket has nowhere to queue.
    assert streams.send(silent, b"three") is False
    assert Wire.recv(pull, 0.05) is None


def test_close_releases_every_socket(make: Make) -> None:
    streams = make([f"tcp://127.0.0.1:{free_port()}" for _ in range(2)])
    for s in streams.all:
        s.peers.add(7)
    streams.close(0)
    assert all(s.socket.closed and s.monitor.closed and not s.peers for s in streams.all)


def test_the_cython_send_is_pyzmqs_own() -> None:
    """``socket_send`` (batch_size=1's fast path) is pyzmq's send, whichever backend."""
    assert streams_module.socket_send in (zmq.Socket.send, *_cython_send())
    assert streams_module.DONTWAIT == zmq.DONTWAIT


def _cython_send() -> tuple[object, ...]:
    try:
        from zmq.backend.cython._zmq import Socket
    except ImportError:  # pragma: no cover - another backend
        return ()
    return (Socket.send,)
