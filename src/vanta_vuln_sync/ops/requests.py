"""Vanta requests as they happen: the fleet rate limiter's item (`store.rate.RateState`), sampled.

Every request start takes a slot from the limiter's item, so its running totals move while
invocations run, long before their steps commit counts: `reserved` (slots granted fleet-wide),
`throttled` (429s seen), `per_minute` (the rate the fleet was cut to, if it was) and `next_slot`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from vanta_vuln_sync.store.rate import RateState
from vanta_vuln_sync.vanta.ratelimit import WINDOW_SECONDS


def started_by(state: RateState, now: float, limit: float) -> RateState:
    """`state` with `reserved` counting only the slots whose time has come by epoch `now`.

    A container reserves slots for all its waiting callers at once, spaced at the rate in force up to
    `next_slot`: those still ahead of `now` are requests not started yet (counting them showed a fleet
    at 50/min as "83/50 per min"). `limit` is the configured rate, used while the item has no cut rate.
    """
    if state.next_slot <= now:
        return state
    ahead = math.ceil((state.next_slot - now) * (state.per_minute or limit) / WINDOW_SECONDS)
    return replace(state, reserved=max(0, state.reserved - ahead))


class RequestMeter:
    """Requests started since a baseline and slots granted in the last 60 s, from samples of the
    limiter's `reserved` (and `throttled`) taken over time. The first sample is the baseline: take it
    when the run starts."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._baseline = RateState()
        self._latest: RateState | None = None

    def sample(self, at: float, state: RateState) -> None:
        """Record the limiter's item as read at monotonic time `at`."""
        if self._latest is None:
            self._baseline = state
        self._latest = state
        self._samples.append((at, state.reserved))
        # Keep one sample at or before the window's start: the count the window is measured from.
        while len(self._samples) > 1 and self._samples[1][0] <= at - self._window:
            self._samples.popleft()

    @property
    def live(self) -> bool:
        """True once the limiter's item has been read (else every figure below is None)."""
        return self._latest is not None

    @property
    def requests(self) -> int | None:
        """Requests started (slots granted) since the baseline."""
        return self._latest.reserved - self._baseline.reserved if self._latest else None

    @property
    def throttled(self) -> int | None:
        """429s seen since the baseline."""
        return self._latest.throttled - self._baseline.throttled if self._latest else None

    @property
    def per_minute(self) -> int | None:
        """Slots granted in the last 60 s (since the baseline while the run is younger than that)."""
        return self._samples[-1][1] - self._samples[0][1] if self._samples else None

    @property
    def limit(self) -> int | None:
        """The rate the fleet was cut to, when it was (else the configured limit applies)."""
        rate = self._latest.per_minute if self._latest else None
        return round(rate) if rate is not None else None
