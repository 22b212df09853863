"""Exit 0 on SIGTERM/SIGINT, for every console script the images and ``make run`` start.

uvicorn (and Streamlit) handle SIGTERM themselves, shut down gracefully, and then
re-raise the signal to the handler that was installed before them. Left at the default,
that re-raise kills the process by signal, which Kubernetes and ``make run`` read as a
crash. Installed before the server starts, this handler turns it into a clean exit 0.
It lives here because it is the one package every service image contains.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _exit_zero(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def exit_zero_on_signals(*signums: signal.Signals) -> None:
    for signum in signums or (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_zero)
