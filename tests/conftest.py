"""Fixtures: a real sidecar process per test that asks for one; the two speed tiers.

Tests live in ``tests/unit`` (in-process, the whole tier in seconds: ``make test-unit``)
or ``tests/e2e`` (processes, Prometheus, Chromium, make, images). The folder is the
tier; the ``unit``/``e2e`` markers follow from it so ``-m`` selects either anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Sidecar, ZmqSockets, new_sidecar


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = "e2e" if "e2e" in item.path.parts else "unit"
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    """A running ``trading-sidecar`` subprocess; must exit 0 on SIGTERM at teardown."""
    running = new_sidecar().start(tmp_path)
    yield running
    code = running.stop()
    assert code == 0, (
        f"sidecar exited {code} on SIGTERM:\n{running.proc.log() if running.proc else ''}"
    )


@pytest.fixture
def zmq_sockets() -> Iterator[ZmqSockets]:
    """Sockets with timeouts on one context, terminated (or the test failed) at teardown."""
    sockets = ZmqSockets()
    yield sockets
    sockets.close()
