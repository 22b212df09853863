"""ZeroMQ heartbeats notice a frozen link, and loss accounting stays exact across it.

A node that dies sends no FIN: its TCP connections stay "established" and, with
``ZMQ_IMMEDIATE``, the publisher keeps routing frames into them until the kernel gives
up. The test reproduces that on loopback with a TCP proxy between publisher and a real
sidecar process: ``freeze()`` stops forwarding on the connections open at that moment
without closing them (their bytes go nowhere, as to a dead node), while new connections
are forwarded as before (the sidecar pod rescheduled under the same name).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Sidecar, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.transport import Heartbeat
from trading_publisher.client import Publisher

#: Short heartbeats so the test is quick; the defaults are in telemetry_contract.transport.
FAST = Heartbeat(interval_ms=200, timeout_ms=1_000, ttl_ms=2_000)


class _Link:
    """One proxied connection: two sockets and a flag that freezes both directions."""

    def __init__(self, down: socket.socket, up: socket.socket) -> None:
        self.down = down
        self.up = up
        self.frozen = threading.Event()
        self.closed = threading.Event()

    def pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.05)
        try:
            while not self.closed.is_set():
                if self.frozen.is_set():  # hold the connection open, move nothing
                    self.closed.wait(0.05)
                    continue
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data or self.frozen.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not self.frozen.is_set():
                self.close()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.down, self.up):
            try:
                sock.close()
            except OSError:
                pass


class FreezableProxy:
    """A loopback TCP forwarder to ``target`` whose open connections can be frozen."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.links: list[_Link] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                down, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            up = socket.create_connection(self.target)
            link = _Link(down, up)
            self.links.append(link)
            self.accepted += 1
            self._spawn(link.pump, down, up)
            self._spawn(link.pump, up, down)

    def freeze(self) -> int:
        """Freeze every open connection; returns how many were frozen."""
        live = [link for link in self.links if not link.closed.is_set()]
        for link in live:
            link.frozen.set()
        return len(live)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for link in self.links:
            link.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def fast_sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    sidecar = Sidecar(
        extra_env={
            "TT_SIDECAR_HEARTBEAT_IVL_MS": str(FAST.interval_ms),
            "TT_SIDECAR_HEARTBEAT_TIMEOUT_MS": str(FAST.timeout_ms),
            "TT_SIDECAR_HEARTBEAT_TTL_MS": str(FAST.ttl_ms),
        }
    ).start(tmp_path)
    yield sidecar
    sidecar.stop()


@pytest.fixture
def proxy(fast_sidecar: Sidecar) -> Iterator[FreezableProxy]:
    p = FreezableProxy(("127.0.0.1", fast_sidecar.zmq_port))
    yield p
    p.close()


def _counted(sidecar: Sidecar) -> tuple[float, float]:
    samples = sidecar.scrape()
    return value(samples, names.TRADES, side="buy"), value(samples, names.LOST)


def test_a_frozen_link_is_dropped_within_the_heartbeat_timeout_and_loss_stays_exact(
    fast_sidecar: Sidecar, proxy: FreezableProxy
) -> None:
    with Publisher(proxy.address, source="frozen-link", heartbeat=FAST) as pub:
        wait_for(lambda: pub.connected, what="connected through the proxy")
        before = 500
        for _ in range(before):
            pub.trade("buy", 1.0)
        wait_for(lambda: _counted(fast_sidecar)[0] == before, what="first events counted")
        epoch = pub.streams[0][2]

        assert proxy.freeze() == 1
        frozen_at = time.monotonic()
        during = 300  # handed to a link that looks alive: these go nowhere
        for _ in range(during):
            pub.trade("buy", 1.0)
        # Polled often, so the moment it flips is seen, not the next reconnect.
        wait_for(
            lambda: not pub.connected,
            timeout=FAST.detect_ms / 1000 + 10,
            interval=0.02,
            what="the frozen link noticed",
        )
        noticed_s = time.monotonic() - frozen_at
        # Generous slack for a loaded machine; without heartbeats it never happens at all
        # (the kernel keeps the idle half-open connection for good).
        assert noticed_s < FAST.detect_ms / 1000 + 5, noticed_s

        # The reconnect goes through the proxy to the same sidecar: one new epoch.
        wait_for(lambda: pub.connected, timeout=30, what="reconnected")
        after = 200
        for _ in range(after):
            pub.trade("buy", 1.0)
        pub.flush()
        wait_for(lambda: pub.queued == 0, what="all handed over")
        assert pub.streams[0][2] == epoch + 1
        total = before + during + after
        assert pub.sent + pub.dropped == total

    # Exact: everything the publisher accepted is either counted or counted as lost.
    wait_for(
        lambda: sum(_counted(fast_sidecar)) == total,
        timeout=30,
        interval=0.2,
        what=f"received + lost == {total}",
    )
    received, lost = _counted(fast_sidecar)
    assert received >= before + after
    assert lost <= during
    assert proxy.accepted == 2


def test_settings_put_the_heartbeat_options_on_every_socket() -> None:
    import zmq
    from trading_publisher import settings as publisher_settings
    from trading_sidecar import settings as sidecar_settings
    from trading_sidecar.metrics import TradeMetrics
    from trading_sidecar.receiver import Receiver

    env = {"IVL_MS": "300", "TIMEOUT_MS": "1500", "TTL_MS": "4000"}
    pub_cfg = publisher_settings.load(
        {f"TT_PUBLISHER_HEARTBEAT_{k}": v for k, v in env.items()}
        | {"TT_PUBLISHER_ZMQ_CONNECT": "tcp://127.0.0.1:1,tcp://127.0.0.1:2"},
        dotenv=None,
    )
    side_cfg = sidecar_settings.load(
        {f"TT_SIDECAR_HEARTBEAT_{k}": v for k, v in env.items()}, dotenv=None
    )
    assert pub_cfg.heartbeat == side_cfg.heartbeat == Heartbeat(300, 1500, 4000)

    options = (zmq.HEARTBEAT_IVL, zmq.HEARTBEAT_TIMEOUT, zmq.HEARTBEAT_TTL)
    with Publisher.from_settings(pub_cfg, linger_ms=0) as pub:
        for s in pub._streams.all:
            assert [s.socket.getsockopt(o) for o in options] == [300, 1500, 4000]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    receiver = Receiver(
        "tcp://127.0.0.1:*", TradeMetrics(), context=ctx, heartbeat=side_cfg.heartbeat
    )
    receiver.start()
    try:
        assert receiver._socket is not None
        assert [receiver._socket.getsockopt(o) for o in options] == [300, 1500, 4000]
    finally:
        receiver.stop()
        ctx.term()


def test_defaults_are_on_and_bad_values_are_refused() -> None:
    from trading_publisher.settings import PublisherSettings
    from trading_sidecar.settings import SidecarSettings

    assert PublisherSettings().heartbeat == SidecarSettings().heartbeat == Heartbeat()
    assert Heartbeat().interval_ms > 0 and Heartbeat().timeout_ms >= Heartbeat().interval_ms
    with pytest.raises(ValueError, match="TTL"):
        Heartbeat(ttl_ms=6_553_600)
    with pytest.raises(ValueError, match=">= 0"):
        Heartbeat(interval_ms=-1)
