"""A pacer that does not drift: event i is due at ``start + i / rate``, always.

The seed slept a fixed interval after each send, so every send's own cost and every
oversleep added up (163 of a 200/s target). Here each deadline is computed from the
start, so a late event makes the next ones due sooner instead of pushing them all
back; and the wait sleeps only while the deadline is far (the OS oversleeps by tens of
microseconds) and spins for the last stretch.
"""

from __future__ import annotations

import time

#: Below this much time to go, spin instead of sleeping.
SPIN_NS = 200_000
#: What to leave for the spin when sleeping, covering typical oversleep.
SLEEP_MARGIN_NS = 120_000


class Pacer:
    def __init__(self, rate: float, start_ns: int | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.interval_ns = 1e9 / rate
        self.start_ns = time.perf_counter_ns() if start_ns is None else start_ns
        #: The latest any event was sent after its deadline, in ns.
        self.max_lag_ns = 0

    def due_ns(self, index: int) -> int:
        return self.start_ns + int(index * self.interval_ns)

    def wait(self, index: int) -> int:
        """Block until event ``index`` is due; returns the deadline (ns, perf_counter)."""
        due = self.due_ns(index)
        clock = time.perf_counter_ns
        now = clock()
        remaining = due - now
        if remaining > SPIN_NS:
            time.sleep((remaining - SLEEP_MARGIN_NS) / 1e9)
            now = clock()
        while now < due:
            now = clock()
        lag = now - due
        if lag > self.max_lag_ns:
            self.max_lag_ns = lag
        return due
