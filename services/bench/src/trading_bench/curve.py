"""What CURVE costs: the hot path's send, and a stream through the sidecar's loop.

Kept out of hotpath.py and ingest.py so those modes gain a CURVE variant with one line
each; everything CURVE-specific (keys, a CURVE sidecar, CURVE sockets) is here.

- ``hotpath`` variants ``floor-curve`` and ``client-curve``: the floor's raw ``send`` of
  pre-encoded frames on a socket with CURVE client keys, and ``Publisher.trade`` with its
  ``CurveKeys``, into a real ``trading-sidecar`` started with CURVE on.
  libzmq encrypts in its I/O thread, so the calling thread's cost should barely move;
  what does move is how much CPU the I/O thread takes from everything else.
- ``ingest`` variants ``stream`` and ``stream-curve``: ingest's own rows time a drain of a
  queue filled beforehand, and CURVE decrypts on arrival, during the fill, so they would
  not see it. Here sender and consumer run at once: the consumer (the sidecar's counting
  code, in a child process) is timed from its first frame to the last, so the rate is
  that of the slowest stage, encryption and decryption included. ``stream`` is the same
  without CURVE, in the same run; ``ratio_to_plain`` is the cost.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import zmq
import zmq.auth
from telemetry_contract.codec import BENCH_SOURCE_PREFIX, TradeEncoder
from telemetry_contract.transport import DEFAULT_LINGER_MS, DEFAULT_RCVHWM, DEFAULT_SNDHWM
from trading_devkit.processes import LOOPBACK_ANY_PORT
from trading_publisher.client import CurveKeys, Publisher
from trading_sidecar.curve import CurveAuthenticator, apply_curve_server, load_server_keys
from trading_sidecar.sockets import pull_socket

from trading_bench.common import RunContext
from trading_bench.consumers import (
    ConsumerChild,
    batch_frames,
    consume_sidecar,
    measure_rounds,
    single_frames,
)
from trading_bench.rows import Row
from trading_bench.sidecar import LocalSidecar
from trading_bench.variants import Variant, publisher_variant

HOTPATH_VARIANT = "floor-curve"
CLIENT_VARIANT = "client-curve"
STREAM_VARIANTS = ("stream", "stream-curve", "stream-batch", "stream-batch-curve")
#: Events per ingest stream round; small, since the rate settles within a fraction of it.
DEFAULT_STREAM_EVENTS = 100_000
HANDSHAKE_TIMEOUT_S = 10.0
IDLE_MS = 5_000


@dataclass(frozen=True)
class Keys:
    """A server pair and one allowed client pair, as files and as keys."""

    folder: Path
    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes

    @property
    def server_secret_file(self) -> Path:
        return self.folder / "server.key_secret"

    @property
    def clients_dir(self) -> Path:
        return self.folder / "clients"


def make_keys(folder: Path) -> Keys:
    """zmq.auth certificates in ``folder``, laid out as ``trading-sidecar-keys`` writes them:
    the sidecar's clients folder gets the client's public certificate only."""
    _, server_secret_file = zmq.auth.create_certificates(folder, "server")
    (folder / "publishers").mkdir()
    client_public_file, client_secret_file = zmq.auth.create_certificates(
        folder / "publishers", "bench"
    )
    (folder / "clients").mkdir()
    shutil.copyfile(client_public_file, folder / "clients" / "bench.key")
    server_public, server_secret = zmq.auth.load_certificate(server_secret_file)
    client_public, client_secret = zmq.auth.load_certificate(client_secret_file)
    assert server_secret is not None and client_secret is not None
    return Keys(folder, server_public, server_secret, client_public, client_secret)


def curve_push(
    ctx: zmq.Context[zmq.Socket[bytes]],
    address: str,
    server_public: bytes,
    client_public: bytes,
    client_secret: bytes,
    *,
    sndhwm: int = DEFAULT_SNDHWM,
) -> zmq.Socket[bytes]:
    """A PUSH socket like the client's, CURVE keys set before it connects; waits for the
    handshake so no timing ever includes it."""
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)
    if server_public:
        sock.curve_serverkey = server_public
        sock.curve_publickey = client_public
        sock.curve_secretkey = client_secret
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        sock.connect(address)
        if not monitor.poll(int(HANDSHAKE_TIMEOUT_S * 1000)):
            sock.close(linger=0)
            raise RuntimeError(f"no CURVE handshake with {address} in {HANDSHAKE_TIMEOUT_S} s")
        monitor.recv_multipart()
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
    return sock


def curve_sidecar_env(keys: Keys) -> dict[str, str]:
    return {
        "TT_SIDECAR_CURVE_SECRET_KEY_FILE": str(keys.server_secret_file),
        "TT_SIDECAR_CURVE_CLIENTS_DIR": str(keys.clients_dir),
    }


def hotpath_variants(
    zctx: zmq.Context[zmq.Socket[bytes]], trades: list[tuple[str, float]]
) -> list[Variant]:
    """``floor-curve`` and ``client-curve`` into one CURVE sidecar of their own.

    ``floor-curve`` is the floor's raw send on a CURVE socket; ``client-curve`` is the
    project's ``Publisher.trade`` (batched, the default) with its ``CurveKeys``. Both on
    ``zctx``, the I/O thread the floor and the client share, so each differs from its
    plain twin by CURVE alone.
    """
    folder = Path(tempfile.mkdtemp(prefix="trading-bench-curve-"))
    sidecar: LocalSidecar | None = None
    try:
        keys = make_keys(folder)
        sidecar = LocalSidecar(extra_env=curve_sidecar_env(keys)).start()
        sock = curve_push(
            zctx, sidecar.zmq_address, keys.server_public, keys.client_public, keys.client_secret
        )
        pub = Publisher(
            sidecar.zmq_address,
            source=BENCH_SOURCE_PREFIX + CLIENT_VARIANT,
            context=zctx,
            curve=CurveKeys(keys.server_public, keys.client_public, keys.client_secret),
        )
    except BaseException:
        if sidecar is not None:
            sidecar.stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    encode = TradeEncoder(BENCH_SOURCE_PREFIX + HOTPATH_VARIANT)
    now = time.time()
    frames = [(encode(side, qty, now, seq), zmq.NOBLOCK) for seq, (side, qty) in enumerate(trades)]
    running = sidecar

    def close_client() -> None:  # runs last (build order): the sidecar goes with it
        pub.close(2_000)
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)

    return [
        Variant(HOTPATH_VARIANT, sock.send, frames, close=lambda: sock.close(linger=2_000)),
        publisher_variant(CLIENT_VARIANT, pub, trades, close=close_client),
    ]


def _stream_child(keys: Keys | None, events: int, rcvhwm: int, conn: Connection) -> None:
    """Bind (a CURVE server with the sidecar's own code when ``keys``), report ready, then
    count ``events`` trades with the sidecar's counting code, timed from the first frame."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    auth: CurveAuthenticator | None = None
    server = load_server_keys(str(keys.server_secret_file), str(keys.clients_dir)) if keys else None
    if server is not None:
        auth = CurveAuthenticator(ctx, server)
        auth.start()
    sock = pull_socket(
        ctx,
        LOOPBACK_ANY_PORT,
        rcvhwm=rcvhwm,
        configure=(lambda s: apply_curve_server(s, server)) if server is not None else None,
    )
    sock.setsockopt(zmq.RCVTIMEO, IDLE_MS)
    try:
        conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
        if not sock.poll(60_000, zmq.POLLIN):
            conn.send((0, 0.0))
            return
        t0 = time.perf_counter()
        counted = consume_sidecar(sock, events)
        conn.send((counted, time.perf_counter() - t0))
    finally:
        sock.close(linger=0)
        if auth is not None:
            auth.stop()
        ctx.term()


def _stream_once(frames: list[bytes], keys: Keys | None) -> tuple[int, float]:
    stream = ConsumerChild(
        "CURVE stream consumer", _stream_child, keys, len(frames), DEFAULT_RCVHWM
    )
    with stream as child:
        zctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            address = child.address()
            if keys is None:
                sock = curve_push(zctx, address, b"", b"", b"")
            else:
                sock = curve_push(
                    zctx, address, keys.server_public, keys.client_public, keys.client_secret
                )
            send = sock.send
            for frame in frames:
                send(frame)
            found = child.result()
            sock.close(linger=0)
            return found
        finally:
            zctx.term()


def stream_rows(ctx: RunContext, events: int, rounds: int = 3) -> list[Row]:
    """Each STREAM_VARIANTS entry ``rounds`` times, alternating; medians compared.

    ``stream``/``stream-curve`` carry single-event frames, ``stream-batch``/
    ``stream-batch-curve`` the same events as ingest's batch frames (what the batched
    client sends): CURVE costs per frame, so batches spread it over their events.
    ``ratio_to_plain`` compares each CURVE row with its plain twin.
    """
    # the very frames ingest's rows use, measured the way ingest measures
    single = single_frames(events)
    feeds = {"stream": single, "stream-curve": single}
    feeds["stream-batch"] = feeds["stream-batch-curve"] = batch_frames(single)
    started_at = time.time()
    folder = Path(tempfile.mkdtemp(prefix="trading-bench-curve-"))
    try:
        keys = make_keys(folder)
        found = measure_rounds(
            ctx,
            STREAM_VARIANTS,
            rounds,
            ("ingest curve", "run"),
            lambda r: STREAM_VARIANTS if r % 2 == 0 else STREAM_VARIANTS[::-1],
            lambda v: _stream_once(feeds[v], keys if v.endswith("curve") else None),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for variant in STREAM_VARIANTS:
        ratios = {
            "ratio_to_plain": found.median(variant.removesuffix("-curve")) / found.median(variant)
        }
        rows.append(found.row(ctx, variant, events, len(feeds[variant]), started_at, ratios))
    return rows
