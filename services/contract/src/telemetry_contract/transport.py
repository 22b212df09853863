"""Transport limits both ends of the PUSH/PULL pipe agree on (ports and addresses: ``ports``).

Pure constants, no ZeroMQ import: the contract package is installed where no socket is
ever opened (the operator image), so the socket helpers live with the services that
open sockets (``trading_publisher.sockets``, ``trading_sidecar.sockets``) and read
their numbers from here.
"""

from __future__ import annotations

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
