"""CURVE on the PULL socket: encryption plus a list of publishers allowed to connect.

Off unless both ``TT_SIDECAR_CURVE_SECRET_KEY_FILE`` (the server's ``*.key_secret``
certificate) and ``TT_SIDECAR_CURVE_CLIENTS_DIR`` (a folder of allowed clients' public
``*.key`` certificates) are set; the files are zmq.auth's own format, as
``trading-sidecar-keys`` (``make keys``) writes them and a Kubernetes Secret mounts them.

Who gets in is decided by libzmq's handshake and the ZAP handler below, before any
frame reaches the receive loop, so a refused peer is counted nowhere as a trade and
cannot disturb the loop. The allowed keys are re-read from the folder on every
handshake (handshakes happen once per connection, so this costs nothing that matters):
adding or removing a client certificate, or Kubernetes updating the mounted Secret,
takes effect for the next connection without a restart.

Refused handshakes that reach the ZAP handler (right server key, client key not
allowed) are counted in :attr:`CurveAuthenticator.denied` and logged, throttled. A peer
that speaks no CURVE, or encrypts to the wrong server key, fails earlier, inside
libzmq's handshake, and is not counted here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)

#: ZAP domain the sidecar's PULL socket uses (any value works; this one reads well in logs).
ZAP_DOMAIN = "trading-telemetry"
#: At most one "denied" log line per this many seconds; the counter counts every one.
DENIED_LOG_INTERVAL_S = 10.0


class CurveConfigError(ValueError):
    """The CURVE settings cannot work; the sidecar refuses to start rather than run open."""


@dataclass(frozen=True)
class CurveServerKeys:
    """The server's key pair and where the allowed clients' public keys live."""

    public: bytes
    secret: bytes
    clients_dir: Path


def load_server_keys(secret_key_file: str, clients_dir: str) -> CurveServerKeys | None:
    """Keys from the settings; ``None`` when CURVE is off (both unset).

    One of the two set without the other is a mistake that would otherwise run the
    link unauthenticated, so it is an error, as is a file without a secret key.
    """
    if not secret_key_file and not clients_dir:
        return None
    if not secret_key_file or not clients_dir:
        raise CurveConfigError(
            "CURVE needs both TT_SIDECAR_CURVE_SECRET_KEY_FILE and TT_SIDECAR_CURVE_CLIENTS_DIR"
        )
    if not zmq.has("curve"):  # pragma: no cover - every pyzmq wheel has it
        raise CurveConfigError("this libzmq was built without CURVE")
    folder = Path(clients_dir)
    if not folder.is_dir():
        raise CurveConfigError(f"TT_SIDECAR_CURVE_CLIENTS_DIR={clients_dir}: not a directory")
    try:
        public, secret = zmq.auth.load_certificate(secret_key_file)
    except (OSError, ValueError) as exc:
        raise CurveConfigError(
            f"TT_SIDECAR_CURVE_SECRET_KEY_FILE={secret_key_file}: {exc}"
        ) from exc
    if not secret:
        raise CurveConfigError(
            f"TT_SIDECAR_CURVE_SECRET_KEY_FILE={secret_key_file} holds no secret key "
            "(give the server's *.key_secret file, not its public *.key)"
        )
    if not _allowed_keys(folder):
        log.warning(
            "CURVE: no client certificates (*.key) in %s; every publisher is refused", folder
        )
    return CurveServerKeys(public, secret, folder)


def curve_server_options(keys: CurveServerKeys) -> dict[int, bytes | int | str]:
    """Socket options that make a socket a CURVE server; set them before ``bind``."""
    return {
        zmq.CURVE_SERVER: 1,
        zmq.CURVE_PUBLICKEY: keys.public,
        zmq.CURVE_SECRETKEY: keys.secret,
        zmq.ZAP_DOMAIN: ZAP_DOMAIN,
    }


def apply_curve_server(sock: zmq.Socket[bytes], keys: CurveServerKeys) -> None:
    for option, value in curve_server_options(keys).items():
        if isinstance(value, str):
            sock.setsockopt_string(option, value)
        else:
            sock.setsockopt(option, value)


def _allowed_keys(folder: Path) -> set[bytes]:
    """Z85 public keys of every ``*.key`` certificate in ``folder``; unreadable → none."""
    try:
        return set(zmq.auth.load_certificates(folder))
    except (OSError, ValueError) as exc:
        log.error("CURVE: cannot read client certificates in %s: %s", folder, exc)
        return set()


class CurveAuthenticator:
    """The ZAP handler (pyzmq's ThreadAuthenticator) on the receiver's context."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], keys: CurveServerKeys) -> None:
        self._keys = keys
        self._auth = ThreadAuthenticator(context, log=logging.getLogger("zmq.auth"))
        self._lock = threading.Lock()
        self._last_log = 0.0
        self.denied = 0
        self.allowed = 0

    def start(self) -> None:
        """Start answering ZAP requests; must run before the socket binds."""
        self._auth.start()
        self._auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self)

    def stop(self) -> None:
        self._auth.stop()

    def callback(self, domain: str, key: bytes) -> bool:
        """zmq.auth's credentials-provider hook: is this Z85 client key allowed now?"""
        allowed = key in _allowed_keys(self._keys.clients_dir)
        with self._lock:
            if allowed:
                self.allowed += 1
                return True
            self.denied += 1
            now = time.monotonic()
            if now - self._last_log < DENIED_LOG_INTERVAL_S:
                return False
            self._last_log = now
            denied = self.denied
        log.warning(
            "CURVE: refused a publisher whose key is not in %s (key %s; %d refused so far)",
            self._keys.clients_dir,
            key.decode("ascii", "replace"),
            denied,
        )
        return False
