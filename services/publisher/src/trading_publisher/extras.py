"""The optional parts of ``trading-publisher`` and a clear message when one is missing.

The client is the package's core and needs only the contract and pyzmq; the Streamlit
UI (``[ui]``) and the HTTP endpoint (``[http]``) are extras. Their console scripts are
installed either way (a wheel cannot make a script conditional), so each one checks its
extra first and, without it, exits with one line that says what to install instead of
an ``ImportError`` traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import Final

#: What each extra must make importable.
EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "ui": ("streamlit", "prometheus_client"),
    "http": ("starlette", "uvicorn"),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, command: str) -> None:
    """Exit 2 with a one-line hint when ``extra`` is not installed."""
    absent = missing(extra)
    if absent:
        print(
            f"{command} needs the [{extra}] extra ({', '.join(absent)} not installed): "
            f"pip install 'trading-publisher[{extra}]'",
            file=sys.stderr,
        )
        raise SystemExit(2)


def http_main(argv: Sequence[str] | None = None) -> None:
    """``trading-publisher-http``: the HTTP endpoint, once its extra is known to be there."""
    require("http", "trading-publisher-http")
    from trading_publisher.trade_api import main

    main(argv)
