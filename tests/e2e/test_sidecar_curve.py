"""CURVE on the sidecar's PULL socket, against a real sidecar process, and ``make keys``' CLI.

Senders are raw PUSH sockets with CURVE options (what the publisher's client sets), so
each kind of peer can be built exactly: allowed, unknown client key, wrong server key,
no CURVE at all. A failed handshake is waited for on the sender's own socket monitor, so
"nothing was counted" is asserted after the attempt, not before it could happen.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth
from support import BIN, Sidecar, free_port, new_sidecar, start_process, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.codec import TradeEncoder
from trading_publisher.client import CurveKeys, Publisher
from trading_sidecar.curve import CurveConfigError, load_server_keys
from trading_sidecar.keys import CLIENTS, PUBLISHERS, generate
from zmq.utils.monitor import recv_monitor_message

HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    out = tmp_path / "keys"
    generate(out, ["allowed", "other"])
    # "other" has a valid pair but is not on the sidecar's list.
    (out / CLIENTS / "other.key").unlink()
    return out


@pytest.fixture
def curve_sidecar(keys: Path, tmp_path: Path) -> Iterator[Sidecar]:
    running = new_sidecar(
        TT_SIDECAR_CURVE_SECRET_KEY_FILE=str(keys / "server.key_secret"),
        TT_SIDECAR_CURVE_CLIENTS_DIR=str(keys / CLIENTS),
    ).start(tmp_path)
    yield running
    assert running.stop() == 0


def _push(
    ctx: zmq.Context[zmq.Socket[bytes]],
    address: str,
    *,
    server_public: bytes | None,
    client_secret_file: Path | None,
) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    if server_public is not None and client_secret_file is not None:
        public, secret = zmq.auth.load_certificate(client_secret_file)
        assert secret is not None
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    monitor = sock.get_monitor_socket(
        HANDSHAKE_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_CONNECTED
    )
    sock.connect(address)
    return sock, monitor


def _wait_event(monitor: zmq.Socket[bytes], mask: int, what: str) -> int:
    """The first monitor event in ``mask``; fails after 20 s."""
    poller = zmq.Poller()
    poller.register(monitor, zmq.POLLIN)
    seen: list[int] = []
    for _ in range(200):
        if poller.poll(100):
            event = int(recv_monitor_message(monitor)["event"])
            seen.append(event)
            if event & mask:
                return event
    raise AssertionError(f"{what}: no event in {mask:#x}; saw {seen}")


def _server_public(keys: Path) -> bytes:
    public, _ = zmq.auth.load_certificate(keys / "server.key")
    return public


def test_only_allowed_publishers_are_counted(
    curve_sidecar: Sidecar, keys: Path, tmp_path: Path
) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    address = curve_sidecar.zmq_address
    wrong_server = tmp_path / "wrong"
    generate(wrong_server, [])
    intruders = {
        "unknown client key": _push(
            ctx, address, server_public=_server_public(keys),
            client_secret_file=keys / PUBLISHERS / "other.key_secret",
        ),
        "wrong server key": _push(
            ctx, address, server_public=_server_public(wrong_server),
            client_secret_file=keys / PUBLISHERS / "allowed.key_secret",
        ),
        "no CURVE": _push(ctx, address, server_public=None, client_secret_file=None),
    }  # fmt: skip
    try:
        for name, (sock, monitor) in intruders.items():
            encode = TradeEncoder(name.replace(" ", "-"))
            for seq in range(50):
                # Queued on the socket; a refused handshake never lets them out. On a slow
                # machine the handshake can fail first and take the pipe down: then the
                # send is refused outright (Again), which delivers nothing either.
                try:
                    sock.send(encode("buy", 1.0, 1_700_000_000.0, seq), zmq.NOBLOCK)
                except zmq.Again:
                    break
            _wait_event(monitor, HANDSHAKE_FAILED, name)
        wait_for(
            lambda: value(curve_sidecar.scrape(), names.CURVE_DENIED) >= 1,
            what="the unknown client key counted as denied",
        )

        good, monitor = _push(
            ctx, address, server_public=_server_public(keys),
            client_secret_file=keys / PUBLISHERS / "allowed.key_secret",
        )  # fmt: skip
        intruders["good"] = (good, monitor)
        _wait_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED, "allowed publisher")
        encode = TradeEncoder("good")
        for seq in range(100):
            good.send(encode("sell", 2.0, 1_700_000_000.0, seq))
        wait_for(
            lambda: value(curve_sidecar.scrape(), names.TRADES, side="sell") == 100,
            what="the allowed publisher's 100 trades",
        )
        # Give the intruders' reconnect attempts time to fail again, then check once more.
        for name in ("unknown client key", "wrong server key", "no CURVE"):
            _wait_event(intruders[name][1], HANDSHAKE_FAILED, f"{name} (retry)")
        samples = curve_sidecar.scrape()
        assert value(samples, names.TRADES, side="buy") == 0
        assert value(samples, names.TRADES, side="sell") == 100
        assert value(samples, names.RECEIVED) == 100
        assert sum(v for (n, _), v in samples.items() if n == names.INVALID) == 0
        assert value(samples, names.RECEIVER_HEALTHY) == 1
        assert curve_sidecar.healthy()
        assert curve_sidecar.proc is not None
        assert "CURVE: refused a publisher" in curve_sidecar.proc.log()
    finally:
        for sock, monitor in intruders.values():
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close(linger=0)
        ctx.term()


def test_a_client_key_added_while_running_is_accepted(curve_sidecar: Sidecar, keys: Path) -> None:
    """Rotation without a restart: the allow-list is re-read at each handshake."""
    generate(keys, ["late"])
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()

    def connect_late() -> tuple[zmq.Socket[bytes], zmq.Socket[bytes]]:
        return _push(
            ctx, curve_sidecar.zmq_address, server_public=_server_public(keys),
            client_secret_file=keys / PUBLISHERS / "late.key_secret",
        )  # fmt: skip

    sock, monitor = connect_late()
    try:
        _wait_event(monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED, "a key added after start")
        encode = TradeEncoder("late")
        for seq in range(10):
            sock.send(encode("buy", 1.0, 1_700_000_000.0, seq))
        wait_for(lambda: value(curve_sidecar.scrape(), names.TRADES, side="buy") == 10)
        # ... and removing it refuses the next connection.
        (keys / CLIENTS / "late.key").unlink()
        again, again_monitor = connect_late()
        try:
            _wait_event(again_monitor, zmq.EVENT_HANDSHAKE_FAILED_AUTH, "a removed key")
        finally:
            again.disable_monitor()
            again_monitor.close(linger=0)
            again.close(linger=0)
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()


def test_half_or_broken_curve_settings_refuse_to_start(keys: Path, tmp_path: Path) -> None:
    with pytest.raises(CurveConfigError, match="needs both"):
        load_server_keys(str(keys / "server.key_secret"), "")
    with pytest.raises(CurveConfigError, match="needs both"):
        load_server_keys("", str(keys / CLIENTS))
    with pytest.raises(CurveConfigError, match="no secret key"):
        load_server_keys(str(keys / "server.key"), str(keys / CLIENTS))
    with pytest.raises(CurveConfigError, match="not a directory"):
        load_server_keys(str(keys / "server.key_secret"), str(tmp_path / "absent"))
    with pytest.raises(CurveConfigError, match="SECRET_KEY_FILE"):
        load_server_keys(str(tmp_path / "absent.key_secret"), str(keys / CLIENTS))
    assert load_server_keys("", "") is None
    # The process says why and exits non-zero instead of running the link open.
    proc = start_process(
        [str(BIN / "trading-sidecar"), "--http-port", str(free_port())],
        tmp_path / "sidecar.log",
        {"TT_SIDECAR_CURVE_SECRET_KEY_FILE": str(keys / "server.key_secret"),
         "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{free_port()}", "TT_SIDECAR_PROBE_PORT": "0"},
    )  # fmt: skip
    wait_for(lambda: proc.process.poll() is not None, timeout=30, what="sidecar to refuse")
    assert proc.process.returncode == 2
    assert "CURVE needs both" in proc.log()


def test_keys_cli_writes_the_documented_layout(tmp_path: Path) -> None:
    out = tmp_path / "k"
    run = [str(BIN / "trading-sidecar-keys"), "--out", str(out), "--client", "desk-1"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60, check=True)
    assert "TT_SIDECAR_CURVE_CLIENTS_DIR" in first.stdout
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "clients/desk-1.key", "publishers/desk-1.key_secret", "server.key", "server.key_secret",
    ]  # fmt: skip
    for secret in ("server.key_secret", "publishers/desk-1.key_secret"):
        assert (out / secret).stat().st_mode & 0o077 == 0, secret
    server_before = (out / "server.key_secret").read_bytes()
    again = subprocess.run(run, capture_output=True, text=True, timeout=60, check=True)
    assert "nothing to do" in again.stdout
    assert (out / "server.key_secret").read_bytes() == server_before
    subprocess.run([*run, "--rotate-server"], check=True, capture_output=True, timeout=60)
    assert (out / "server.key_secret").read_bytes() != server_before
    # The sidecar accepts what the CLI wrote.
    keys = load_server_keys(str(out / "server.key_secret"), str(out / CLIENTS))
    assert keys is not None and keys.public == zmq.auth.load_certificate(out / "server.key")[0]
    bad = subprocess.run([*run[:3], "--client", "../x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "client name" in bad.stderr
    shutil.rmtree(out)


def test_through_the_real_publisher(curve_sidecar: Sidecar, keys: Path) -> None:
    """The publisher's own CURVE settings against the sidecar's: allowed counts, others not."""
    server_key = keys / "server.key"
    allowed = CurveKeys.from_files(server_key, keys / PUBLISHERS / "allowed.key_secret")
    other = CurveKeys.from_files(server_key, keys / PUBLISHERS / "other.key_secret")
    address = curve_sidecar.zmq_address
    with (
        Publisher(address, source="curve-other", curve=other) as refused,
        Publisher(address, source="curve-none") as plain,
        Publisher(address, source="curve-good", curve=allowed) as good,
    ):
        for _ in range(40):
            assert refused.trade("buy", 1.0) and plain.trade("buy", 1.0)
        wait_for(
            lambda: value(curve_sidecar.scrape(), names.CURVE_DENIED) >= 1,
            what="the publisher with an unknown key refused",
        )
        for _ in range(300):
            assert good.trade("sell", 3.0)
        good.flush()
        wait_for(
            lambda: value(curve_sidecar.scrape(), names.TRADES, side="sell") == 300,
            what="the allowed publisher's 300 trades",
        )
        assert good.connected and not refused.connected
        samples = curve_sidecar.scrape()
        assert value(samples, names.TRADES, side="buy") == 0
        assert value(samples, names.VOLUME, side="sell") == 900.0
        assert value(samples, names.LOST) == 0
        assert curve_sidecar.healthy()
