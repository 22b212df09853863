"""The trade-telemetry wire contract, shared by the publisher and the sidecar.

Everything both ends must agree on lives in this package and nowhere else: the event
types, the byte encoding, the validation reasons, the metric names and the transport
defaults. See docs/contract.md for the prose version.
"""

from telemetry_contract.codec import decode, encode, encode_trade
from telemetry_contract.errors import InvalidMessage, Reason
from telemetry_contract.events import BENCH_MODES, SIDES, BenchmarkResult, Event, TradeEvent

__all__ = [
    "BENCH_MODES",
    "BenchmarkResult",
    "SIDES",
    "Event",
    "InvalidMessage",
    "Reason",
    "TradeEvent",
    "decode",
    "encode",
    "encode_trade",
]
