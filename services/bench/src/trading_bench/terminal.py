"""How wide a report may be, and how a long line folds: one rule for every table.

Both the run's tables (:mod:`trading_bench.report`) and the paced table
(:mod:`trading_bench.paced_report`) print through these, so a verdict line folds the
same way in each, and a CI log never gets a line wider than :data:`MAX_WIDTH`.
"""

from __future__ import annotations

import shutil
import sys
import textwrap

#: Tables are split, and long lines wrapped, so that no line is wider than this when
#: the output is not a terminal (a CI log, a PR); a terminal gets its own width.
MAX_WIDTH = 100


def terminal_width(default: int = MAX_WIDTH) -> int:
    """The terminal's columns when stdout is one, else ``default`` (never below 60)."""
    if not sys.stdout.isatty():
        return default
    return max(60, shutil.get_terminal_size((default, 24)).columns)


def wrap(line: str, width: int, indent: int = 4) -> list[str]:
    """``line`` in lines of at most ``width``, continuations indented under its text."""
    if len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip())
    return textwrap.wrap(
        line, width, initial_indent="", subsequent_indent=" " * (lead + indent),
        break_on_hyphens=False, drop_whitespace=True,
    ) if lead == 0 else textwrap.wrap(
        line.lstrip(), width, initial_indent=" " * lead,
        subsequent_indent=" " * (lead + indent), break_on_hyphens=False,
    )  # fmt: skip
