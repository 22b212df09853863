"""``targets``: the verdict a target gives a measured value."""

from __future__ import annotations

from trading_bench.targets import Target


def test_target_verdicts() -> None:
    assert Target("a", 1.0, 1.5, "<=").met and not Target("a", 2.0, 1.5, "<=").met
    assert Target("b", 3.0, 3.0, ">=").met and not Target("b", 2.9, 3.0, ">=").met
