"""The sequential baseline against the real simulator over loopback (on a fake clock where time matters)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from loadtest.baseline import fetch_sequentially, simulator_config
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
    # A pause of 0.5 s / 10 between pages of a resource: 3 + 1 + 0 for 4, 2 and 1 pages.
    assert result.wall_s >= 4 * 0.05


async def test_baseline_stops_after_its_sample_and_projects_the_rest(simulator: StartSimulator) -> None:
    point = Point(concurrency=1, latency_s=0.0, rate_limit=100, vulnerabilities=400, time_scale=10.0)
    sim = await simulator(vulnerabilities=400)

    result = await fetch_sequentially(
        sim.base_url, sim.auth_url, sim.client_id, sim.client_secret, point, sample_pages=3
    )

    assert (result.status, result.pages) == ("sampled", 3)
    assert result.projected_wall_s == result.per_page_s * 7


class FakeClock:
    """Monotonic time that moves only when the baseline sleeps; the simulator's rate window reads it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.mark.integration  # the simulator over loopback
@pytest.mark.parametrize(("time_scale", "pause", "throttle_sleep"), [(1.0, 0.5, 60.0), (10.0, 0.05, 6.0)])
async def test_baseline_pauses_half_a_second_whatever_the_limit_and_sleeps_a_minute_on_a_429(
    time_scale: float, pause: float, throttle_sleep: float
) -> None:
    # Given a point at 50/min on a 7-page tenant (4 + 2 + 1 pages), its simulator as the sweep makes it
    # (the rate window scaled too) but allowing 3 requests a window so that 429s come soon
    point = Point(concurrency=1, latency_s=0.0, rate_limit=50, vulnerabilities=400, time_scale=time_scale)
    config = simulator_config(point)
    assert (config.rate_limit_per_minute, config.rate_window_seconds) == (50, 60.0 / time_scale)
    config = dataclasses.replace(config, rate_limit_per_minute=3)
    clock = FakeClock()
    async with Simulator(config, clock=clock) as sim:
        # When the baseline reads it
        result = await fetch_sequentially(
            sim.base_url,
            sim.auth_url,
            sim.client_id,
            sim.client_secret,
            point,
            clock=clock,
            sleep=clock.sleep,
        )

    # Then it paused 0.5 s (scaled) after every page with a next one, not 60 / limit, and slept 60 s
    # (scaled) on every 429 before asking again; it read every page
    assert (result.status, result.pages) == ("finished", 7)
    assert result.requests == result.pages + result.throttled
    assert sorted(set(clock.sleeps)) == sorted({pause, throttle_sleep})
    assert clock.sleeps.count(pause) == 3 + 1  # between the 4 and the 2 pages of the first two resources
    assert clock.sleeps.count(throttle_sleep) == result.throttled
    # 3 requests at 0, 0.5 and 1.0 s (scaled); the 4th is refused until a window has passed, twice:
    # the scaled run is the real one divided by the scale.
    assert result.throttled == 2
    assert (
        result.wall_s == pytest.approx(sum(clock.sleeps)) == pytest.approx((4 * 0.5 + 2 * 60.0) / time_scale)
    )
