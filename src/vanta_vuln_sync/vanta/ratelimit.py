"""Request-rate limits for Vanta: in one process, or fleet-wide through the DynamoDB state table.

Both promise that no 60 s window holds more than `per_minute` request starts, and both use at least
90 % of that budget while work is waiting (about 98-99 %: the only loss is a small safety margin).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError as BotoClientError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
RATE_KEY = {"pk": {"S": "rate#vanta"}, "sk": {"S": "rate"}}

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter(Protocol):
    """Paces request starts; `await acquire()` right before sending a request."""

    async def acquire(self) -> None:
        """Return when one more request may start."""
        ...


class NoRateLimit:
    """No limit at all: for benchmarks and simulators without a limit."""

    async def acquire(self) -> None:
        return None


class LocalRateLimiter:
    """At most `per_minute` request starts in any 60 s window, for the requests of this process.

    Strict sliding window: start k is reserved no earlier than start k - per_minute plus 60 s and a
    `margin` (absorbing latency jitter between here and Vanta's counter). Reservations happen without
    an await, so concurrent callers never share a slot; then each caller sleeps until its slot.
    Proof: starts are non-decreasing and start[k] >= start[k - N] + 60 + margin, so any N + 1
    consecutive starts span more than 60 s.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        margin: float = 0.5,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.per_minute = per_minute
        self._span = WINDOW_SECONDS + margin
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque(maxlen=per_minute)

    async def acquire(self) -> None:
        """Wait for the next free start slot (immediately while the window has room)."""
        now = self._clock()
        starts = self._starts
        slot = now if len(starts) < self.per_minute else max(now, starts[0] + self._span)
        starts.append(slot)
        if slot > now:
            await self._sleep(slot - now)


class FleetRateLimiter:
    """At most `per_minute` request starts in any 60 s window across every process sharing `table`.

    The item `pk="rate#vanta"` holds `next_slot`, the earliest epoch second the next start may take.
    A reservation of n slots moves it, by an optimistic conditional update, from `s` to
    `max(now, s) + n * interval`, where `interval = (60 + margin) / per_minute`; the n slots are
    `interval` apart. Reservations are totally ordered by DynamoDB, so all slots fleet-wide are at
    least `interval` apart and any per_minute + 1 of them span 60 + margin seconds. A caller starts
    no earlier than its slot by its own clock and uses it only if not later than `late_tolerance`
    after it (a late slot is dropped, never bunched onto later ones); so clocks may disagree by up to
    `margin - late_tolerance` seconds and no 60 s window of real time still exceeds the limit.

    Reserves as many slots per DynamoDB call as callers are waiting here (up to `max_batch`).
    """

    def __init__(
        self,
        ddb: DynamoDBClient,
        table: str,
        per_minute: int,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        margin: float = 1.0,
        late_tolerance: float = 0.25,
        max_batch: int = 5,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        if not 0 <= late_tolerance < margin:
            raise ValueError("late_tolerance must be below the margin (the rest absorbs clock skew)")
        self.per_minute = per_minute
        self.interval = (WINDOW_SECONDS + margin) / per_minute
        self._ddb = ddb
        self._table = table
        self._clock = clock
        self._sleep = sleep
        self._late = late_tolerance
        self._max_batch = max(1, max_batch)
        self._slots: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._seen: str | None = None  # next_slot as DynamoDB last showed it (exact number text)
        self.reservations = 0
        self.dropped = 0

    async def acquire(self) -> None:
        """Wait for a fleet-wide start slot. Raises botocore's ClientError if DynamoDB fails."""
        while True:
            slot = await self._take_slot()
            now = self._clock()
            if slot > now:
                await self._sleep(slot - now)
                now = self._clock()
            if now <= slot + self._late:
                return
            self.dropped += 1  # woke too late: starting now could bunch with the slots after it

    async def _take_slot(self) -> float:
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    now = self._clock()
                    while self._slots and self._slots[0] + self._late < now:
                        self._slots.popleft()
                        self.dropped += 1
                    if self._slots:
                        return self._slots.popleft()
                    self._slots.extend(await self._reserve(min(self._waiting, self._max_batch)))
        finally:
            self._waiting -= 1

    async def _reserve(self, count: int) -> list[float]:
        while True:
            now = self._clock()
            seen = float(self._seen) if self._seen is not None else 0.0
            first = max(now, seen)
            new_next = f"{first + count * self.interval:.6f}"
            if self._seen is None:
                condition = "attribute_not_exists(next_slot)"
                values = {":new": {"N": new_next}}
            else:
                condition = "attribute_not_exists(next_slot) OR next_slot = :seen"
                values = {":new": {"N": new_next}, ":seen": {"N": self._seen}}
            try:
                await self._ddb.update_item(
                    TableName=self._table,
                    Key=RATE_KEY,
                    UpdateExpression="SET next_slot = :new",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except BotoClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                self._seen = await self._current_next_slot(exc)
                continue
            self._seen = new_next
            self.reservations += 1
            return [first + i * self.interval for i in range(count)]

    async def _current_next_slot(self, exc: BotoClientError) -> str | None:
        item: Any = exc.response.get("Item")
        if item is None:
            response = await self._ddb.get_item(TableName=self._table, Key=RATE_KEY, ConsistentRead=True)
            item = response.get("Item")
        if not item or "next_slot" not in item:
            return None
        return str(item["next_slot"]["N"])
