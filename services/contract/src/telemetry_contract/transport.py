"""Transport limits both ends of the PUSH/PULL pipe agree on (ports and addresses: ``ports``).

Pure constants, no ZeroMQ import: the contract package is installed where no socket is
ever opened (the operator image), so the socket helpers live with the services that
open sockets (``trading_publisher.sockets``, ``trading_sidecar.sockets``) and read
their numbers from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Most trades in one batch frame (a JSON array of trade objects).
MAX_BATCH_ITEMS: Final = 1024

#: Frames above this are refused as ``oversize``. Sized so a full batch always fits:
#: the longest valid trade (src of 64 characters that all need escaping, 17-digit
#: numbers, stream, epoch and seq at 2**53) is about 330 bytes, times 1,024 items is
#: ~340 KB; a typical item is ~130 bytes (~130 KB per full batch). 64 KiB was not
#: enough for a full batch of typical items.
MAX_FRAME_BYTES: Final = 512 * 1024

#: Deepest nesting of arrays/objects a frame may have (the frame's own object or array is
#: level 1; a trade is 1 deep, a batch 2). Checked by the decoder itself before any JSON
#: parser recurses, so a frame decodes the same from a script, a deep call stack or the
#: sidecar's receive thread (parsers that recurse stop at the interpreter's stack depth).
#: Deeper frames are ``malformed_json``.
MAX_NESTING_DEPTH: Final = 32

#: Deep enough that a 1,000,000-event burst into a live sidecar queues instead of
#: dropping: ZMQ's default of 1,000 lost more than half of a 1,000-event burst.
DEFAULT_SNDHWM: Final = 2_000_000
DEFAULT_RCVHWM: Final = 1_000_000

#: Hard cap handed to libzmq as MAXMSGSIZE. Frames between MAX_FRAME_BYTES and this are
#: received and counted as ``oversize``; above it libzmq drops the sender's connection
#: (and whatever it had in flight) before allocating the frame, so memory stays bounded.
ZMQ_MAX_MSG_BYTES: Final = 8 * MAX_FRAME_BYTES

#: How long close() may wait to flush queued events before giving up, in ms.
DEFAULT_LINGER_MS: Final = 1_000

#: ZeroMQ heartbeats (ZMTP PING/PONG), both ends. Without them a link to a node that died
#: stays "connected" (no FIN ever comes) and ZMQ_IMMEDIATE keeps routing frames into it
#: until the kernel gives up, many minutes later. A PING every interval; no traffic back
#: within the timeout drops the connection; the TTL asks the peer to drop it when it hears
#: nothing for that long. The timeout is generous because a peer whose receive queue is
#: full stops reading its socket and so cannot answer: a stall longer than it drops a
#: healthy link (what was in flight is then counted as lost, exactly).
DEFAULT_HEARTBEAT_IVL_MS: Final = 1_000
DEFAULT_HEARTBEAT_TIMEOUT_MS: Final = 5_000
DEFAULT_HEARTBEAT_TTL_MS: Final = 10_000
#: libzmq sends the TTL in tenths of a second in 16 bits: this is its ceiling.
MAX_HEARTBEAT_TTL_MS: Final = 6_553_500


@dataclass(frozen=True)
class Heartbeat:
    """The three ZMQ_HEARTBEAT_* options of one socket, in ms; ``interval_ms=0`` is off."""

    interval_ms: int = DEFAULT_HEARTBEAT_IVL_MS
    timeout_ms: int = DEFAULT_HEARTBEAT_TIMEOUT_MS
    ttl_ms: int = DEFAULT_HEARTBEAT_TTL_MS

    def __post_init__(self) -> None:
        if self.interval_ms < 0 or self.timeout_ms < 0:
            raise ValueError("heartbeat interval and timeout must be >= 0 ms")
        if not 0 <= self.ttl_ms <= MAX_HEARTBEAT_TTL_MS:
            raise ValueError(f"heartbeat TTL must be 0..{MAX_HEARTBEAT_TTL_MS} ms")

    def socket_options(self) -> tuple[tuple[str, int], ...]:
        """(pyzmq option name, value) to set before connect/bind; none when off (a zero
        interval: libzmq's default, a dead peer noticed only when TCP gives up). Names,
        not numbers, so this module stays free of pyzmq; each service's ``sockets``
        module applies them with ``getattr(zmq, name)``."""
        if not self.interval_ms:
            return ()
        return (
            ("HEARTBEAT_IVL", self.interval_ms),
            ("HEARTBEAT_TIMEOUT", self.timeout_ms),
            ("HEARTBEAT_TTL", self.ttl_ms),
        )

    @property
    def detect_ms(self) -> int:
        """The longest a dead link goes unnoticed: one interval, then the timeout."""
        return self.interval_ms + (self.timeout_ms or self.interval_ms)
