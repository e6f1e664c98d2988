"""Fixtures for the Vanta client tests: a virtual clock, aiohttp sessions, a client on a simulator, a spent
limiter, a DynamoDB state table."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from vanta_helpers import SimulatedVanta, VirtualClock, make_client

from state_table import STATE_TABLE_SHAPE
from vanta_vuln_sync.simulator import Simulator
from vanta_vuln_sync.vanta import LocalRateLimiter


@pytest.fixture
async def virtual_clock() -> AsyncIterator[VirtualClock]:
    clock = VirtualClock()
    driver = asyncio.create_task(clock.drive())
    yield clock
    driver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await driver


@pytest.fixture
async def spent_limiter(virtual_clock: VirtualClock) -> LocalRateLimiter:
    """A local limiter of 1 request a minute on the virtual clock, whose one start this minute is taken
    (the next slot is 60.5 s on)."""
    limiter = LocalRateLimiter(1, clock=virtual_clock, sleep=virtual_clock.sleep)
    await limiter.acquire()
    return limiter


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def simulated_vanta(
    simulator: Callable[..., Awaitable[Simulator]], http: aiohttp.ClientSession
) -> Callable[..., Awaitable[SimulatedVanta]]:
    """Factory: `sim, client, tokens = await simulated_vanta(vulnerabilities=50)` starts a simulator with
    these settings and makes `make_client`'s client on it; `client_options={...}` override make_client's."""

    async def start(client_options: dict[str, Any] | None = None, **settings: Any) -> SimulatedVanta:
        sim = await simulator(**settings)
        client, tokens = make_client(http, sim, **(client_options or {}))
        return sim, client, tokens

    return start


DdbFactory = Callable[[], Awaitable[Any]]


@pytest.fixture
async def ddb_clients(moto_server: str) -> AsyncIterator[DdbFactory]:
    """Factory of separate aiobotocore DynamoDB clients on moto server (one per simulated container)."""
    async with AsyncExitStack() as stack:
        session = get_session()

        async def make() -> Any:
            return await stack.enter_async_context(
                session.create_client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
            )

        yield make


@pytest.fixture
async def state_table(ddb_clients: DdbFactory) -> str:
    """A fresh state table (pk/sk) on moto server; its name."""
    ddb = await ddb_clients()
    name = f"state-{uuid.uuid4().hex[:12]}"
    await ddb.create_table(TableName=name, **STATE_TABLE_SHAPE)
    return name
