"""The reliability suite (issue 18): fuzzing, upstream faults, a soak, store outages and the
two-instance cluster, each a scenario that starts its own servers on 127.0.0.1, drives load,
checks what a client and the analytics store saw, and reports its figures.

`scripts/reliability` runs it in full (`python -m reliability.run`); the `test_*.py` modules here
run the short form under pytest (CI). docs/reliability.md reports a full run's figures.
"""
