"""Development helpers shared by ``make run``, the tests and the benchmark.

Nothing here is on a trading host's path: the lean client (``trading-publisher``) never
imports it. It exists so that the scripts and tests that start real processes do not lean
on the benchmark package for a process supervisor.
"""
