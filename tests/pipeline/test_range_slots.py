"""The scheduler sizes a run's range slots from the rate limit and how fast Vanta answered its survey: a
slower Vanta gets more ranges in flight, a fast one fewer. A first run plans one open range and its ranges
split themselves up to the slots (run/split.py, tests/pipeline/test_split.py); a later run is planned
from the last run's counts to fill them, and either plan covers every record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from vanta_vuln_sync.messages import PageRange
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.vanta import InProcessTokenProvider, NoRateLimit, VantaClient, token_fetcher

from .conftest import Stack
from .drive import deliver_requests

REQUEST = orjson.dumps(
    {"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"], "mode": "full", "reason": "slots"}
)
PAGE_SIZE = 10  # 2,000 vulnerabilities are 223 pages: room for 44 ranges of at least 5 pages


async def planned(
    stack: Callable[..., Awaitable[Stack]],
    open_services: Callable[..., Awaitable[Services]],
    latency: float,
    **settings: str,
) -> tuple[Stack, int, list[PageRange]]:
    """A tenant of 2,000 vulnerabilities behind a Vanta answering in `latency` s, its sync planned by the
    scheduler at 600 requests a minute for a fleet of 5 workers x 10 ranges in flight, as a later run
    (the scope's last success counted every record): the run's range slots and its plan."""
    deployed = await stack(
        sim={"vulnerabilities": 2000, "seed": 31, "latency_seconds": latency},
        VANTA_RATE_LIMIT_PER_MINUTE="600",
        WORKER_MAX_CONCURRENCY="5",
        RANGES_IN_FLIGHT="10",
        PAGE_SIZE=str(PAGE_SIZE),
        **settings,
    )
    services = await open_services()
    count = len(deployed.sim.dataset.records("vulnerabilities"))
    earlier = datetime(2026, 11, 1, tzinfo=UTC)
    counted = {"vulnerabilities": count}
    await services.store.release_scope("vulnerabilities", "earlier", counted, started_at=earlier)
    deployed.send_request(REQUEST)
    assert await deliver_requests(deployed, services) == ["started"]
    [run_id] = deployed.run_ids()
    slots = int(deployed.run_item(run_id)["range_slots"]["N"])
    return deployed, slots, await services.store.get_plan(run_id)


async def read_plan(sim: Any, plan: list[PageRange]) -> list[str]:
    """Every range read as a worker reads it, from its cursor to its end offset (or the list's end), in
    the plan's order: the ids the plan covers."""
    ids: list[str] = []
    async with aiohttp.ClientSession() as session:
        fetch = token_fetcher(session, sim.auth_url, sim.client_id, sim.client_secret)
        client = VantaClient(
            session, sim.base_url, tokens=InProcessTokenProvider(fetch), limiter=NoRateLimit()
        )
        for p in plan:
            cursor, offset = p.cursor, p.offset or 0
            while p.end_offset is None or offset < p.end_offset:
                size = PAGE_SIZE if p.end_offset is None else min(PAGE_SIZE, p.end_offset - offset)
                page = await client.fetch_page(p.resource, p.filters, cursor=cursor, page_size=size)
                ids += [str(r["id"]) for r in page.records]
                offset += len(page.records)
                if not page.has_next_page:
                    break
                cursor = page.end_cursor
    return ids


async def test_a_slower_vanta_gets_more_ranges_and_either_plan_covers_every_record(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given the same tenant behind a Vanta that answers at once and behind one that takes 0.3 s
    fast, fast_slots, fast_plan = await planned(stack, open_services, latency=0.0)
    slow, slow_slots, slow_plan = await planned(stack, open_services, latency=0.3)
    # Then the slow one is given more range slots than the fast one (600/min: 10 requests a second, so
    # ~0.3 s answers need ~3 in flight, 17 with the margins; instant ones need the page work's 5 or 6),
    # neither more than the fleet's 50, and each plan fills its slots
    assert fast_slots < slow_slots <= 50
    assert 4 <= fast_slots <= 10
    assert 15 <= slow_slots <= 30
    assert (len(fast_plan), len(slow_plan)) == (fast_slots, slow_slots)
    # And each plan tiles the list: ranges back to back from offset 0, the last one open
    for plan in (fast_plan, slow_plan):
        assert plan[0].offset == 0
        assert [p.end_offset for p in plan[:-1]] == [p.offset for p in plan[1:]]
        assert plan[-1].end_offset is None
    # And read range after range, each plan gives every record of the list once, in order
    for deployed, plan in ((fast, fast_plan), (slow, slow_plan)):
        deployed.sim.configure(latency_seconds=0.0)
        assert await read_plan(deployed.sim, plan) == [
            str(r["id"]) for r in deployed.sim.dataset.records("vulnerabilities")
        ]


async def test_a_fixed_range_slots_setting_plans_as_before_whatever_the_latency(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given RANGE_SLOTS set to the fleet's 5 x 10 slots, and a Vanta that answers at once
    _, slots, plan = await planned(stack, open_services, latency=0.0, RANGE_SLOTS="50")
    # Then the run is planned as every run was before the slots sized themselves: as many ranges as
    # 223 pages allow at 5 pages or more a range (38 of 6 pages), not the handful the rate limit needs
    assert slots == 50
    assert len(plan) == 38
