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

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from telemetry_contract.cli import argument_type, load_or_exit, new_parser, overlay
from telemetry_contract.graceful_exit import exit_zero_on_signals
from telemetry_contract.listeners import ListenError, listen
from telemetry_contract.settings_source import port

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


PROG = "trading-ui"


def build_parser(defaults: settings_mod.PublisherSettings) -> argparse.ArgumentParser:
    """The command line over the loaded settings; every option's dest is a field name
    (other ``--section.option`` arguments are Streamlit's and pass through)."""
    parser = new_parser(
        PROG,
        "Serve the Streamlit trading UI: Buy/Sell buttons and what the sidecar counted.\n"
        f"Every option also reads from {settings_mod.PREFIX}<NAME> and .env; totals come from\n"
        f"{settings_mod.PREFIX}SIDECAR_URL (comma-separated replicas are summed) or\n"
        f"{settings_mod.PREFIX}PROMETHEUS_URL when set.",
        "trading-publisher",
        epilog="Any other --section.option value arguments are Streamlit config flags, "
        "passed on to `streamlit run`.",
    )
    parser.add_argument("--ui-host", default=defaults.ui_host, help="HTTP listen host")
    parser.add_argument(
        "--ui-port", type=argument_type(port), default=defaults.ui_port, help="HTTP port"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    defaults = load_or_exit(settings_mod.load, PROG)
    args, extra = build_parser(defaults).parse_known_args(sys.argv[1:] if argv is None else argv)
    settings = overlay(defaults, args)
    require("ui", PROG)
    try:
        # Tried and released before Streamlit binds it: its own message names no setting.
        listen(settings.ui_host, settings.ui_port, f"{settings_mod.PREFIX}UI_PORT").close()
    except ListenError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    # Until Streamlit installs its own handler (once the server is up), a SIGTERM
    # during start-up should still be a clean stop, not a kill by signal.
    exit_zero_on_signals(signal.SIGTERM)

    from streamlit.web import cli  # heavy import: after argument handling

    cli.main(args=streamlit_args(settings, extra), prog_name="streamlit", standalone_mode=True)


if __name__ == "__main__":
    main()
