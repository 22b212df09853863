"""Trade-event publisher: a never-blocking client, the Streamlit UI and an HTTP endpoint.

The package's face is the client a trading loop imports: ``from trading_publisher import
Publisher``. Importing it pulls only the contract and pyzmq; the UI and the HTTP
endpoint live in their own modules behind the ``[ui]`` and ``[http]`` extras. The names
are resolved on first use (PEP 562), so importing a submodule such as
``trading_publisher.settings`` does not load the client and its sockets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trading_publisher.client import CurveKeys, Publisher, PublisherStats, TradeLike

__all__ = ["CurveKeys", "Publisher", "PublisherStats", "TradeLike"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from trading_publisher import client

        return getattr(client, name)
    raise AttributeError(f"module 'trading_publisher' has no attribute {name!r}")
