"""Fixtures for the Vanta client tests: a virtual clock, aiohttp sessions, a DynamoDB state table."""

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
from vanta_helpers import VirtualClock

from state_table import STATE_TABLE_SHAPE
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
