"""Fixtures: a real sidecar process per test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Sidecar, new_sidecar


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    """A running ``trading-sidecar`` subprocess; must exit 0 on SIGTERM at teardown."""
    running = new_sidecar().start(tmp_path)
    yield running
    code = running.stop()
    assert code == 0, (
        f"sidecar exited {code} on SIGTERM:\n{running.proc.log() if running.proc else ''}"
    )
