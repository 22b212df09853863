"""``trading-ui``: serve the Streamlit trading UI with the project's settings.

Streamlit's own CLI (``streamlit.web.cli``, the click group behind the ``streamlit``
command) is called in this process rather than exec'ing ``python -m streamlit run``:
the flags go through the same parser and config machinery as ``streamlit run`` (so
any extra ``--section.option value`` given to ``trading-ui`` works too), there is no
second interpreter start-up, and no dependency on a ``streamlit`` script being on
PATH. The process that receives SIGTERM is the server itself, whose handler stops it
gracefully; click then exits 0.

Fixed flags, and why: headless (no browser to open on a server, and no e-mail prompt),
no usage statistics (nothing leaves the host), no file watcher and no run-on-save (the
code in a deployed image never changes; the watcher would only cost inotify handles),
a minimal toolbar (traders get no "Deploy"/rerun developer menu).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from telemetry_contract.graceful_exit import exit_zero_on_signals

from trading_publisher import settings as settings_mod
from trading_publisher.extras import require

UI_SCRIPT = Path(__file__).with_name("ui.py")


def streamlit_args(
    settings: settings_mod.PublisherSettings, extra: Sequence[str] = ()
) -> list[str]:
    """Arguments for ``streamlit``; ``extra`` come last, so they override the defaults."""
    return [
        "run",
        str(UI_SCRIPT),
        "--server.address",
        settings.ui_host,
        "--server.port",
        str(settings.ui_port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "minimal",
        *extra,
    ]


def main(argv: Sequence[str] | None = None) -> None:
    extra = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in extra):
        print(
            "usage: trading-ui [--section.option value ...]\n\n"
            f"Serves the trading UI on {settings_mod.PREFIX}UI_HOST:{settings_mod.PREFIX}UI_PORT"
            f" (also read from .env). Extra arguments are Streamlit config flags, passed on"
            " to `streamlit run`."
        )
        return
    require("ui", "trading-ui")
    settings = settings_mod.load()
    # Until Streamlit installs its own handler (once the server is up), a SIGTERM
    # during start-up should still be a clean stop, not a kill by signal.
    exit_zero_on_signals(signal.SIGTERM)

    from streamlit.web import cli  # heavy import: after argument handling

    cli.main(args=streamlit_args(settings, extra), prog_name="streamlit", standalone_mode=True)


if __name__ == "__main__":
    main()
