"""Trade-event publisher: a never-blocking client, the Streamlit UI and an HTTP endpoint.

The package's face is the client a trading loop imports: ``from trading_publisher import
Publisher``. Importing it pulls only the contract and pyzmq; the UI and the HTTP
endpoint live in their own modules behind the ``[ui]`` and ``[http]`` extras.
"""

from trading_publisher.client import CurveKeys, Publisher, PublisherStats, TradeLike

__all__ = ["CurveKeys", "Publisher", "PublisherStats", "TradeLike"]
