"""The sequential baseline against the real simulator over loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from loadtest.baseline import fetch_sequentially
from loadtest.points import Point

from vanta_vuln_sync.simulator import Simulator

StartSimulator = Callable[..., Awaitable[Simulator]]


async def test_baseline_reads_every_page_once_in_sequence_when_it_has_time(simulator: StartSimulator) -> None:
    point = Point(concurrency=1, latency_s=0.0, rate_limit=100, vulnerabilities=400, time_scale=10.0)
    sim = await simulator(vulnerabilities=400, rate_limit_per_minute=point.simulated_rate)

    result = await fetch_sequentially(sim.base_url, sim.auth_url, sim.client_id, sim.client_secret, point)

    assert result.status == "finished"
    assert result.pages == point.minimum_pages == 7
    assert result.requests == result.pages
    assert result.throttled == 0
    # A pause of 60 / 1,000 s between pages of a resource: 3 + 1 + 0 for 4, 2 and 1 pages.
    assert result.wall_s >= 4 * 0.06


async def test_baseline_stops_after_its_sample_and_projects_the_rest(simulator: StartSimulator) -> None:
    point = Point(concurrency=1, latency_s=0.0, rate_limit=100, vulnerabilities=400, time_scale=10.0)
    sim = await simulator(vulnerabilities=400)

    result = await fetch_sequentially(
        sim.base_url, sim.auth_url, sim.client_id, sim.client_secret, point, sample_pages=3
    )

    assert (result.status, result.pages) == ("sampled", 3)
    assert result.projected_wall_s == result.per_page_s * 7
