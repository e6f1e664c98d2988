"""Helpers for the Vanta client tests: a virtual clock, a client factory, window counting."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp

from vanta_vuln_sync.simulator import Simulator
from vanta_vuln_sync.vanta import InProcessTokenProvider, NoRateLimit, RetryPolicy, VantaClient, token_fetcher

T = TypeVar("T")


def max_in_any_window(times: list[float], window: float = 60.0) -> int:
    """Most events in any half-open window (t - window, t], as Vanta's counter sees them."""
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


class VirtualClock:
    """Virtual time for code that takes `clock` and `sleep`: sleepers wake in deadline order.

    `sleep(d)` parks the caller until the background `drive()` moves time to its deadline, so minutes
    of rate limiting pass in a fraction of a second. Coroutines run through `gather()` are tracked:
    while any of them is not asleep (doing real I/O with moto or the simulator), time stands still,
    so I/O takes no virtual time. Untracked sleepers (or a stall) let time move every `real_step`.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._tracked = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    async def gather(self, *aws: Awaitable[T]) -> list[T]:
        """`asyncio.gather`, with time moving only while every one of these coroutines sleeps."""

        async def tracked(aw: Awaitable[T]) -> T:
            try:
                return await aw
            finally:
                self._tracked -= 1

        self._tracked += len(aws)
        return list(await asyncio.gather(*(tracked(aw) for aw in aws)))

    def _asleep(self) -> int:
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def advance(self) -> bool:
        """Wake the earliest sleeper (and any due at the same instant); False if nobody sleeps."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            return False
        self.now = max(self.now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        return True

    async def drive(self, real_step: float = 0.0005, stall: float = 0.25) -> None:
        """Forever: move virtual time to the next sleeper once the tracked coroutines all sleep
        (or nothing is tracked, or nothing moved for `stall` real seconds)."""
        waited = 0.0
        while True:
            await asyncio.sleep(real_step)
            waited += real_step
            if self._tracked and self._asleep() < self._tracked and waited < stall:
                continue
            if self.advance():
                waited = 0.0


def make_client(
    session: aiohttp.ClientSession, sim: Simulator, **overrides: Any
) -> tuple[VantaClient, InProcessTokenProvider]:
    """A client on `sim` with an in-process token provider, no rate limit and fast retries."""
    tokens = InProcessTokenProvider(
        token_fetcher(session, sim.auth_url, sim.client_id, sim.client_secret), retry_delay=0.05
    )
    options: dict[str, Any] = {
        "tokens": tokens,
        "limiter": NoRateLimit(),
        "retry": RetryPolicy(base=0.01, cap=0.1, attempts=8, total_seconds=30),
        "timeout": 5.0,
    }
    options.update(overrides)
    return VantaClient(session, sim.base_url, **options), tokens
