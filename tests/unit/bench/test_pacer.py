"""``pacer``: a paced sender's schedule."""

from __future__ import annotations

import pytest
from trading_bench.pacer import Pacer


def test_pacer_deadlines_come_from_the_start_not_the_previous_send() -> None:
    pacer = Pacer(10_000.0, start_ns=0)
    assert [pacer.due_ns(i) for i in (0, 1, 10, 10_000)] == [0, 100_000, 1_000_000, 10**9]
    late = Pacer(1_000_000.0)
    due = late.wait(0)
    assert late.wait(5) == due + 5_000  # never shifted by how late the previous one was
    with pytest.raises(ValueError):
        Pacer(0)
