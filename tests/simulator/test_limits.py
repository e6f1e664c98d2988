"""The API rate limit (sliding 60 s window, 429 with or without Retry-After) and the counters."""

from __future__ import annotations

import asyncio
import email.utils
from datetime import UTC, datetime

import aiohttp
import pytest

from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

from .helpers import FakeClock, get, mint

pytestmark = pytest.mark.integration  # each test starts its own simulator, most on a fake clock


async def test_requests_over_the_limit_get_429_with_retry_after_until_the_window_slides(
    http: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with Simulator(SimulatorConfig(vulnerabilities=30, rate_limit_per_minute=5), clock=clock) as sim:
        token = await mint(http, sim)
        for _ in range(5):
            assert (await get(http, sim, "vulnerabilities", token))[0] == 200
            clock.advance(2)
        status, _payload, headers = await get(http, sim, "vulnerabilities", token)
        assert status == 429
        assert (
            headers["Retry-After"] == "50"
        )  # the first request (at t=0) leaves the window at t=60; now t=10
        clock.advance(49.5)
        status, _, headers = await get(http, sim, "vulnerabilities", token)
        assert status == 429
        assert headers["Retry-After"] == "1"  # 0.5 s, rounded up
        clock.advance(0.5)
        assert (await get(http, sim, "vulnerabilities", token))[0] == 200
        counters = sim.counters
        assert counters.requests == 8
        assert counters.throttled == 2
        assert counters.by_status == {200: 6, 429: 2}
        assert counters.max_requests_in_60s == 5


async def test_a_shorter_rate_window_refuses_a_burst_and_frees_its_slots_sooner(
    http: aiohttp.ClientSession,
) -> None:
    # A load test at 10x: 5 requests per 6 s is 5 a minute with every time divided by 10.
    clock = FakeClock()
    config = SimulatorConfig(vulnerabilities=30, rate_limit_per_minute=5, rate_window_seconds=6.0)
    async with Simulator(config, clock=clock) as sim:
        token = await mint(http, sim)
        for _ in range(5):
            assert (await get(http, sim, "vulnerabilities", token))[0] == 200
            clock.advance(0.2)
        status, _, _ = await get(http, sim, "vulnerabilities", token)
        assert status == 429  # t = 1.0: the first request (t = 0) is in the window until t = 6
        clock.advance(5.0)
        assert (await get(http, sim, "vulnerabilities", token))[0] == 200


async def test_429_carries_no_retry_after_when_disabled(http: aiohttp.ClientSession) -> None:
    async with Simulator(
        SimulatorConfig(vulnerabilities=30, rate_limit_per_minute=2, retry_after=False)
    ) as sim:
        token = await mint(http, sim)
        statuses = [(await get(http, sim, "vulnerabilities", token))[0] for _ in range(3)]
        _, _, headers = await get(http, sim, "vulnerabilities", token)
    assert statuses == [200, 200, 429]
    assert "Retry-After" not in headers


async def test_token_endpoint_does_not_use_the_api_budget(http: aiohttp.ClientSession) -> None:
    async with Simulator(SimulatorConfig(vulnerabilities=30, rate_limit_per_minute=1)) as sim:
        for _ in range(3):
            token = await mint(http, sim)
        assert (await get(http, sim, "vulnerabilities", token))[0] == 200
        assert sim.counters.requests == 1


async def test_rejected_requests_do_not_use_up_the_budget(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with Simulator(SimulatorConfig(vulnerabilities=30, rate_limit_per_minute=2), clock=clock) as sim:
        token = await mint(http, sim)
        await get(http, sim, "vulnerabilities", token)
        await get(http, sim, "vulnerabilities", token)
        clock.advance(30)
        for _ in range(10):  # a client hammering while throttled
            assert (await get(http, sim, "vulnerabilities", token))[0] == 429
        clock.advance(30)
        assert (await get(http, sim, "vulnerabilities", token))[0] == 200


async def test_max_requests_in_60s_is_the_busiest_sliding_window(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with Simulator(SimulatorConfig(vulnerabilities=30), clock=clock) as sim:
        token = await mint(http, sim)
        start = clock()
        for burst, gap in ((5, 30), (3, 31), (4, 0)):  # at t=0, t=30, t=61
            for _ in range(burst):
                await get(http, sim, "vulnerabilities", token)
            clock.advance(gap)
        counters = sim.counters
        assert counters.max_requests_in_60s == 8  # window (0, 60] holds 5 + 3; (1, 61] holds 3 + 4
        assert counters.requests_in_window(start, start + 31) == 8
        assert counters.requests_in_window(start + 30, start + 62) == 7
        async with http.get(f"{sim.origin}/_sim/counters") as response:
            served = await response.json()
        assert served["max_requests_in_60s"] == 8
        assert served["requests"] == 12
        assert served["by_status"] == {"200": 12}


async def test_concurrent_clients_never_exceed_the_limit(http: aiohttp.ClientSession) -> None:
    async with Simulator(SimulatorConfig(vulnerabilities=30, rate_limit_per_minute=20)) as sim:
        token = await mint(http, sim)
        statuses = await asyncio.gather(*(get(http, sim, "vulnerabilities", token) for _ in range(50)))
    assert sorted(s[0] for s in statuses).count(200) == 20
    assert sim.counters.throttled == 30
    assert sim.counters.max_requests_in_60s == 20


async def test_retry_after_can_be_an_http_date(http: aiohttp.ClientSession) -> None:
    config = SimulatorConfig(vulnerabilities=30, rate_limit_per_minute=1, retry_after_format="http-date")
    async with Simulator(config) as sim:
        token = await mint(http, sim)
        await get(http, sim, "vulnerabilities", token)
        status, _, headers = await get(http, sim, "vulnerabilities", token)
    assert status == 429
    wait = (email.utils.parsedate_to_datetime(headers["Retry-After"]) - datetime.now(UTC)).total_seconds()
    assert 55 <= wait <= 62
