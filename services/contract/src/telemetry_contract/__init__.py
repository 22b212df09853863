"""The trade-telemetry wire contract, shared by the publisher and the sidecar.

Everything both ends must agree on lives in this package and nowhere else: the event
types, the byte encoding, the validation reasons, the metric names and the transport
defaults. See docs/contract.md for the prose version.
"""

from telemetry_contract.codec import (
    Decoded,
    decode,
    decode_into,
    encode,
    encode_batch,
    encode_trade,
)
from telemetry_contract.errors import InvalidMessage, Reason
from telemetry_contract.events import (
    BENCH_MODES,
    BENCH_VARIANTS,
    SIDES,
    BenchmarkResult,
    Event,
    Trade,
)

__all__ = [
    "BENCH_MODES",
    "BENCH_VARIANTS",
    "BenchmarkResult",
    "Decoded",
    "Event",
    "InvalidMessage",
    "Reason",
    "SIDES",
    "Trade",
    "decode",
    "decode_into",
    "encode",
    "encode_batch",
    "encode_trade",
]
