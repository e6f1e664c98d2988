"""The usual approach, measured on the same simulator: one Lambda fetching every page in sequence.

As such a sync is usually written: it pauses 0.5 s between pages whatever the limit (it does not know
the limit; at 50/min and a fast API that is over it, and Vanta answers 429), and sleeps 60 s on a 429
before asking again. Both times shrink by the point's time scale, as everything else does, and so
does its simulator's rate window (limit R per 60 / scale s), so it is refused when Vanta would refuse
it. It runs to its end and says whether that fits in one 15-minute Lambda invocation; with
`sample_pages` it stops after that many pages, says "sampled", and the rest is projected from its
measured time per page.
Its cost is Lambda time at MEMORY_MB, the size such a function would be given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from loadtest.points import PAGE_SIZE, RESOURCES, Point
from loadtest.pricing import LAMBDA_PER_REQUEST, S3_PER_PUT, SECRETS_PER_CALL, lambda_compute

if TYPE_CHECKING:
    from vanta_vuln_sync.simulator import SimulatorConfig

LAMBDA_BUDGET_S = 900.0  # Lambda's maximum timeout
PAUSE_S = 0.5  # between pages, whatever the limit
THROTTLE_SLEEP_S = 60.0
# One process holding a resource's records until it writes them: 512 MB, the size such a function would
# be given. The results also price it at the worker's memory (`baseline_cost`), to compare at equal size.
MEMORY_MB = 512


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """What the sequential fetcher did on `point`'s simulator (seconds at the simulated scale)."""

    point: Point
    status: str  # "finished" (read every page), or "sampled" (stopped after `sample_pages`)
    wall_s: float
    pages: int
    requests: int
    throttled: int

    @property
    def per_page_s(self) -> float:
        return self.wall_s / self.pages if self.pages else 0.0

    @property
    def projected_wall_s(self) -> float:
        """Its time for the whole dataset: measured when it finished, else pages x time per page."""
        return self.wall_s if self.status == "finished" else self.per_page_s * self.point.minimum_pages

    @property
    def max_pages_in_budget(self) -> int:
        """The most pages it reads inside one 15-minute invocation, from its measured time per page."""
        real_per_page = self.per_page_s * self.point.time_scale
        return int(LAMBDA_BUDGET_S / real_per_page) if real_per_page else 0

    @property
    def max_vulnerabilities_in_budget(self) -> int:
        """The dataset size (vulnerabilities, with half as many remediations and a tenth as many
        assets, as generated) at which it no longer finishes in 15 minutes: 1.6 pages per 100."""
        return int(self.max_pages_in_budget / 1.6 * PAGE_SIZE)

    @property
    def finishes_in_budget(self) -> bool:
        return self.projected_wall_s * self.point.time_scale <= LAMBDA_BUDGET_S

    @property
    def cost_usd(self) -> float:
        """Real-time equivalent cost of the whole dataset at MEMORY_MB (`baseline_cost`)."""
        return baseline_cost(self.projected_wall_s * self.point.time_scale)


def baseline_cost(seconds: float, memory_mb: int = MEMORY_MB) -> float:
    """The baseline's cost for a sync of `seconds` (real time) at `memory_mb`: its Lambda time, one
    invocation, one secret read, one S3 PUT per resource. Not capped at 15 minutes."""
    requests = LAMBDA_PER_REQUEST + SECRETS_PER_CALL + len(RESOURCES) * S3_PER_PUT
    return lambda_compute(seconds, memory_mb) + requests


async def fetch_sequentially(
    base_url: str,
    auth_url: str,
    client_id: str,
    client_secret: str,
    point: Point,
    *,
    sample_pages: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> BaselineResult:
    """Read every resource page by page as the usual single-Lambda sync does (see the module doc):
    to the end, or `sample_pages` pages. `clock` and `sleep` time it (a fake pair in tests)."""
    pause = PAUSE_S / point.time_scale
    throttle_sleep = THROTTLE_SLEEP_S / point.time_scale
    pages = requests = throttled = 0
    started = clock()
    status = "finished"
    async with aiohttp.ClientSession() as session:
        token_reply = await session.post(
            auth_url,
            json={
                "client_id": client_id,
                "client_secret": client_secret,
                "scope": "vanta-api.all:read",
                "grant_type": "client_credentials",
            },
        )
        token = (await token_reply.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for resource in RESOURCES:
            cursor: str | None = None
            while status == "finished":
                if sample_pages is not None and pages >= sample_pages:
                    status = "sampled"
                    break
                params = {"pageSize": str(PAGE_SIZE)}
                if resource == "vulnerabilities":
                    params["includeVulnerabilitiesWithoutSlas"] = "true"
                if cursor:
                    params["pageCursor"] = cursor
                requests += 1
                async with session.get(f"{base_url}/{resource}", params=params, headers=headers) as reply:
                    if reply.status == 429:
                        throttled += 1
                        await sleep(throttle_sleep)
                        continue
                    reply.raise_for_status()
                    body = await reply.json()
                pages += 1
                info = body["results"]["pageInfo"]
                if not info["hasNextPage"]:
                    break
                cursor = info["endCursor"]
                await sleep(pause)
    return BaselineResult(
        point=point,
        status=status,
        wall_s=clock() - started,
        pages=pages,
        requests=requests,
        throttled=throttled,
    )


def simulator_config(point: Point) -> SimulatorConfig:
    """The baseline's simulator for `point`: its data, latency / scale, and Vanta's limit over a window
    shortened by the scale (limit R per 60 / scale s): the same rate as the fleet's simulator allows, and
    a burst refused as soon as Vanta would refuse it (the baseline does not pace itself; the fleet does)."""
    from vanta_vuln_sync.simulator import SimulatorConfig

    return SimulatorConfig(
        seed=point.seed,
        vulnerabilities=point.vulnerabilities,
        cursor_style=point.cursor_style,
        rate_limit_per_minute=point.rate_limit,
        rate_window_seconds=60.0 / point.time_scale,
        latency_seconds=point.simulated_latency,
        latency_jitter=point.simulated_latency / 4,
    )


def run_baseline(point: Point, *, sample_pages: int | None = None) -> BaselineResult:
    """Start `point`'s simulator (`simulator_config`) and run the sequential fetcher against it."""
    from vanta_vuln_sync.simulator import Simulator

    async def main() -> BaselineResult:
        async with Simulator(simulator_config(point)) as sim:
            return await fetch_sequentially(
                sim.base_url, sim.auth_url, sim.client_id, sim.client_secret, point, sample_pages=sample_pages
            )

    return asyncio.run(main())
