"""Load tests: concurrency sweeps against the embedded runtime and the simulator, the sequential
baseline, cost estimates, cold-start timing, and the same sweep against a deployed stack.

`python -m loadtest.sweep` (quick) or `python -m loadtest.sweep --full`; see the README's "Load testing".
"""
