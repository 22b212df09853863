"""How the publisher package is cut: no import circle, no module over 500 lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trading_publisher

PACKAGE = Path(trading_publisher.__file__).parent


def test_settings_do_not_import_the_client() -> None:
    # client -> settings -> options is a line, not a circle (issue 21).
    code = (
        "import sys, trading_publisher.settings; "
        "assert 'trading_publisher.client' not in sys.modules, 'settings imports the client'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_no_client_module_is_over_500_lines() -> None:
    for name in ("client.py", "flush.py", "streams.py", "options.py", "settings.py"):
        lines = (PACKAGE / name).read_text().count("\n")
        assert lines <= 500, f"{name}: {lines} lines"
