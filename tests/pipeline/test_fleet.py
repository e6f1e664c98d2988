"""Five worker containers (five event loops) share one token and one rate budget, and use the budget.

Scaled to a short test: the limit is 600/min (10/s) and the run lasts about 10 s, so no 60 s window of
the test can exceed 600 at all. The fleet limiter paces request starts evenly (slots (60 + 1) / limit s
apart fleet-wide, each used at most 0.25 s late), so the same guarantee holds scaled down: no 6 s window
may hold more than a tenth of the limit (60) plus two slots of tolerance. That is what the test checks on
the simulator's own log of accepted requests, together with the simulator's 60 s count and its 429s.
How near the limit the fleet runs is a measure of pace, true only on an idle machine: it is a slow test.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable

import orjson
import pytest

from .conftest import Stack
from .drive import ThreadedDriver

LIMIT = 600  # requests a minute, for the fleet and the simulator alike
SCALED_WINDOW = 6.0  # seconds: a tenth of a minute
REQUEST = orjson.dumps(
    {"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"], "mode": "full", "reason": "t"}
)


async def _sync_with_five_containers(stack: Callable[..., Awaitable[Stack]]) -> tuple[Stack, ThreadedDriver]:
    # 1,000 vulnerabilities in pages of 10 (about 100 data requests, 10 s at the limit: long enough
    # that the ranges' first and last pages, where slots start and end unevenly, do not dominate)
    deployed = await stack(
        sim={"vulnerabilities": 1000, "rate_limit_per_minute": LIMIT, "seed": 8},
        VANTA_RATE_LIMIT_PER_MINUTE=str(LIMIT),
        PAGE_SIZE="10",
        # The fleet's 5 x 10 slots, as planned before the slots sized themselves: at 600/min the rate
        # limit alone needs ~6 ranges, too few to spread over five containers
        RANGE_SLOTS="50",
    )
    deployed.send_request(REQUEST)
    # Batches of 2 (the template's default is 10): with 19 ranges, batches of 10 let two containers take
    # every range on a loaded machine, and the fleet would not be one
    driver = ThreadedDriver(deployed, workers=5, batch_size=2)

    def finished() -> bool:
        runs = deployed.run_ids()
        return bool(runs) and deployed.run_item(runs[0])["status"]["S"] == "succeeded"

    await asyncio.to_thread(driver.run_until, finished, 180)
    return deployed, driver


async def test_five_containers_share_one_token_and_keep_within_the_limit(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    # Given five worker containers syncing one tenant against a simulator that allows LIMIT a minute
    deployed, driver = await _sync_with_five_containers(stack)
    counters = deployed.sim.counters
    accepted = sorted(counters.accepted_at)
    # Then one token served the whole fleet
    assert counters.tokens_minted == 1
    # And the limit held: no 429, no 60 s window over the limit, no scaled window over its share
    assert counters.throttled == 0
    assert counters.max_requests_in_60s <= LIMIT
    busiest = max(bisect.bisect_left(accepted, t + SCALED_WINDOW) - i for i, t in enumerate(accepted))
    assert busiest <= LIMIT * SCALED_WINDOW / 60 + 2, f"{busiest} requests in one {SCALED_WINDOW}s window"
    # And it was a fleet: at least three worker containers took work (each a cold start)
    assert driver.worker_stats().cold_starts >= 3


@pytest.mark.slow  # a measure of pace, true only on an idle machine: `nox -s chaos` runs it
async def test_five_containers_use_at_least_90_percent_of_the_limit_while_ranges_are_queued(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    deployed, _ = await _sync_with_five_containers(stack)
    accepted = sorted(deployed.sim.counters.accepted_at)
    # While ranges were queued (after planning) the budget was used to at least 90 %
    [run_id] = deployed.run_ids()
    planning = int(deployed.run_item(run_id)["requests"]["N"])
    fetching = accepted[planning:]
    used = (len(fetching) - 1) / ((fetching[-1] - fetching[0]) * LIMIT / 60)
    assert len(fetching) >= 60
    assert used >= 0.9, f"only {used:.0%} of the limit used while ranges were queued"
