"""Fixtures of the simulator tests: one aiohttp session per test, and simulators with a token minted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from vanta_vuln_sync.simulator import Simulator

from .helpers import mint

StartSimulator = Callable[..., Awaitable[Simulator]]
SignIn = Callable[..., Awaitable[tuple[Simulator, str]]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def signed_in(simulator: StartSimulator, http: aiohttp.ClientSession) -> SignIn:
    """Factory: `sim, token = await signed_in(vulnerabilities=30)` starts a simulator with these settings
    and mints a token on it, as a Vanta client does before its first request."""

    async def start(**settings: Any) -> tuple[Simulator, str]:
        sim = await simulator(**settings)
        return sim, await mint(http, sim)

    return start
