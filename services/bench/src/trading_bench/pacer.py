"""A pacer that does not drift: event i is due at ``start + i / rate``, always.

The seed slept a fixed interval after each send, so every send's own cost and every
oversleep added up (163 of a 200/s target). Here each deadline is computed from the
start, so a late event makes the next ones due sooner instead of pushing them all
back; and the wait sleeps while the deadline is more than a few tens of microseconds
away (with the timer slack tightened, see below) and spins only for the last stretch.
"""

from __future__ import annotations

import ctypes
import sys
import time

#: Below this much time to go, spin instead of sleeping.
SPIN_NS = 30_000
#: What to leave for the spin when sleeping, covering typical wake-up latency.
SLEEP_MARGIN_NS = 20_000
_PR_SET_TIMERSLACK = 29


def tighten_timer_slack(nanoseconds: int = 1_000) -> bool:
    """Ask Linux to wake sleeps within ``nanoseconds`` instead of the default 50 µs.

    With the default slack a short sleep overshoots by ~50 µs, so a pacer at 10k/s
    would have to spin the whole interval; spinning holds a core the sidecar and the
    ZeroMQ I/O threads need on a small machine, which shows up as end-to-end latency.
    Best effort: elsewhere (or if refused) the pacer simply spins more.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class Pacer:
    def __init__(self, rate: float, start_ns: int | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.interval_ns = 1e9 / rate
        self.start_ns = time.perf_counter_ns() if start_ns is None else start_ns
        #: The latest any event was sent after its deadline, in ns.
        self.max_lag_ns = 0
        tighten_timer_slack()

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
