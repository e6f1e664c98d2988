"""The fleet-wide rate budget on a real DynamoDB API (moto server), in virtual time."""

from __future__ import annotations

from typing import Any

import pytest
from vanta_helpers import VirtualClock, max_in_any_window

from vanta_vuln_sync.vanta import FleetRateLimiter


@pytest.mark.parametrize("skew", [0.0, 0.7], ids=["same-clocks", "clocks-0.7s-apart"])
async def test_fleet_limiter_never_exceeds_the_limit_in_any_60s_window_across_instances(
    virtual_clock: VirtualClock, ddb_clients: Any, state_table: str, skew: float
) -> None:
    # Given four containers (own DynamoDB client each, clocks up to `skew` apart), three coroutines
    # each, sharing 30 requests/min
    per_minute = 30
    limiters = [
        FleetRateLimiter(
            await ddb_clients(),
            state_table,
            per_minute,
            clock=lambda offset=n * skew / 3: virtual_clock() + offset,
            sleep=virtual_clock.sleep,
        )
        for n in range(4)
    ]
    starts: list[float] = []

    async def worker(limiter: FleetRateLimiter) -> None:
        while len(starts) < 4 * per_minute:
            await limiter.acquire()
            starts.append(virtual_clock())

    # When they all keep asking for four minutes' worth of requests
    await virtual_clock.gather(*(worker(limiter) for limiter in limiters for _ in range(3)))
    # Then no 60 s window of true time holds more than 30 starts, and the budget is used to at least 90 %
    assert max_in_any_window(starts) <= per_minute
    span = max(starts) - min(starts)
    assert (len(starts) - 1) / span * 60 >= 0.9 * per_minute
    assert all(limiter.reservations > 0 for limiter in limiters)
