"""The real handlers, timed: the load test points the deployed functions' `Handler` here.

Each call runs the real handler unchanged and records how long it took: Lambda bills that run, rounded
up to 1 ms. A cold start's init phase is not in these numbers (see coldstart.py for its size).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

# Imported here, when the poller resolves the shim in the main thread, as it would the real handlers:
# two container threads importing them at once race in Powertools' Logger set-up (a Logger of the same
# service half-initialised in another thread has no formatter yet: "'NoneType' ... 'append_keys'").
from vanta_vuln_sync.handlers import finalize as finalize_module
from vanta_vuln_sync.handlers import scheduler as scheduler_module
from vanta_vuln_sync.handlers import worker as worker_module

_lock = threading.Lock()
_durations: defaultdict[str, list[float]] = defaultdict(list)
_spans: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
# Worker invocations whose batch held a Finalize (CPU-bound statistics, not Vanta-bound), in seconds.
_finalize_seconds: list[float] = []


def _carries_finalize(event: dict[str, Any]) -> bool:
    return any('"Finalize"' in str(record.get("body", "")) for record in event.get("Records", []))


def _timed(name: str, event: dict[str, Any], context: Any) -> Any:
    real = {"worker": worker_module, "scheduler": scheduler_module, "finalize": finalize_module}[name].handler
    started, began = time.perf_counter(), time.monotonic()
    try:
        return real(event, context)
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        with _lock:
            _durations[name].append(elapsed_ms)
            _spans[name].append((began, time.monotonic()))
            if name == "worker" and _carries_finalize(event):
                _finalize_seconds.append(elapsed_ms / 1000.0)


def worker(event: dict[str, Any], context: Any) -> Any:
    """The worker handler, timed."""
    return _timed("worker", event, context)


def scheduler(event: dict[str, Any], context: Any) -> Any:
    """The scheduler handler, timed."""
    return _timed("scheduler", event, context)


def finalize(event: dict[str, Any], context: Any) -> Any:
    """The Finalize handler, timed."""
    return _timed("finalize", event, context)


def take_durations() -> dict[str, list[float]]:
    """Every duration recorded since the last call, in ms, by function; clears them."""
    with _lock:
        taken = {name: list(values) for name, values in _durations.items()}
        _durations.clear()
    return taken


def take_spans() -> dict[str, list[tuple[float, float]]]:
    """(start, end) on `time.monotonic` of every invocation since the last call, by function; clears them."""
    with _lock:
        taken = {name: list(values) for name, values in _spans.items()}
        _spans.clear()
    return taken


def take_finalize_seconds() -> list[float]:
    """How long each worker invocation that held a Finalize ran (until its handler returned, past a
    timeout too), in seconds, since the last call; clears them."""
    with _lock:
        taken = list(_finalize_seconds)
        _finalize_seconds.clear()
    return taken
