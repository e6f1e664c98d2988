"""Helpers for the Vanta client tests: a virtual clock, a client factory, window counting."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
from botocore.exceptions import ClientError as BotoClientError

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

    def client_options(self) -> dict[str, Any]:
        """A VantaClient's `clock`, `wall_clock` and `sleep`, all on this virtual time."""
        return {"clock": self, "wall_clock": self, "sleep": self.sleep}

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
            # Let the woken coroutines run on to their next sleep; once every tracked one sleeps, time
            # moves without waiting real time (only I/O, or nothing tracked, waits `real_step`).
            for _ in range(5):
                await asyncio.sleep(0)
                if self._tracked and self._asleep() >= self._tracked:
                    break
            else:
                await asyncio.sleep(real_step)
                waited += real_step
            if self._tracked and self._asleep() < self._tracked and waited < stall:
                continue
            if self.advance():
                waited = 0.0


SimulatedVanta = tuple[Simulator, VantaClient, InProcessTokenProvider]


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


class MemoryDynamoDB:
    """An in-memory stand-in for the few DynamoDB calls the rate limiter makes, for dynamics runs of
    thousands of requests that moto server would take minutes to serve (its semantics are checked
    against moto server by the same tests at a smaller scale).

    Understands `SET a = :x, b = :y ADD c :n` updates, conditions of `attribute_not_exists(a)` and
    `a = :x` terms joined by AND (one level of `(... OR ...)`), ReturnValues ALL_NEW and
    ReturnValuesOnConditionCheckFailure ALL_OLD. Counts the calls it served.
    """

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls = 0

    async def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.calls += 1
        item = self.items.get(_key(TableName, Key))
        return {"Item": dict(item)} if item is not None else {}

    async def update_item(
        self,
        *,
        TableName: str,
        Key: dict[str, Any],
        UpdateExpression: str,
        ExpressionAttributeValues: dict[str, Any],
        ConditionExpression: str | None = None,
        ReturnValues: str = "NONE",
        ReturnValuesOnConditionCheckFailure: str = "NONE",
    ) -> dict[str, Any]:
        self.calls += 1
        key = _key(TableName, Key)
        old = self.items.get(key)
        values = ExpressionAttributeValues
        if ConditionExpression and not _holds(ConditionExpression, old or {}, values):
            response: dict[str, Any] = {
                "Error": {"Code": "ConditionalCheckFailedException", "Message": "condition failed"}
            }
            if ReturnValuesOnConditionCheckFailure == "ALL_OLD" and old is not None:
                response["Item"] = dict(old)
            raise BotoClientError(response, "UpdateItem")
        new = dict(old or Key)
        sets, _, adds = UpdateExpression.removeprefix("SET ").partition(" ADD ")
        for assignment in sets.split(","):
            name, _, value = assignment.partition("=")
            new[name.strip()] = values[value.strip()]
        if adds:
            name, value = adds.split()
            total = Decimal(new.get(name, {"N": "0"})["N"]) + Decimal(values[value]["N"])
            new[name] = {"N": str(total)}
        self.items[key] = new
        return {"Attributes": dict(new)} if ReturnValues == "ALL_NEW" else {}


def _key(table: str, key: dict[str, Any]) -> tuple[str, str, str]:
    return table, key["pk"]["S"], key["sk"]["S"]


def _holds(condition: str, item: dict[str, Any], values: dict[str, Any]) -> bool:
    def term(text: str) -> bool:
        text = text.strip()
        if text.startswith("(") and text.endswith(")"):
            return any(term(part) for part in text[1:-1].split(" OR "))
        if " OR " in text:
            return any(term(part) for part in text.split(" OR "))
        if text.startswith("attribute_not_exists("):
            return text[len("attribute_not_exists(") : -1] not in item
        name, _, value = text.partition("=")
        name = name.strip()
        return name in item and Decimal(item[name]["N"]) == Decimal(values[value.strip()]["N"])

    return all(term(part) for part in condition.split(" AND "))
