"""Request-rate limits for Vanta: in one process, or fleet-wide through the DynamoDB state table.

Both promise that no 60 s window holds more than `per_minute` request starts, and both use at least
90 % of that budget while work is waiting (about 98-99 %: the only loss is a small safety margin).
Both take a deadline: a slot later than it raises DeadlineReached at once, without sleeping. Both
take a penalty: after a 429 no request starts before the pause it asks for. The fleet limiter also
adapts to Vanta's real limit when the configured one is too high: a 429 cuts the fleet's rate to
0.8 of itself (once per storm), and minutes without one give it back (see RateAdaptation).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from .errors import DeadlineReached

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter(Protocol):
    """Paces request starts; `await acquire()` right before sending a request, `await penalize()`
    when Vanta answers 429."""

    def now(self) -> float:
        """The limiter's clock, on which `acquire`'s deadline is read."""
        ...

    async def acquire(self, deadline: float | None = None) -> None:
        """Return when one more request may start. Raises DeadlineReached, without waiting, when
        that moment would be later than `deadline` (on `now()`'s clock)."""
        ...

    async def penalize(self, pause_seconds: float, *, guessed: bool = False) -> None:
        """Vanta answered 429: start nothing more for `pause_seconds` (its Retry-After, or a backoff
        the caller `guessed` when it sent none)."""
        ...


class NoRateLimit:
    """No limit at all: for benchmarks and simulators without a limit."""

    def now(self) -> float:
        return time.monotonic()

    async def acquire(self, deadline: float | None = None) -> None:
        return None

    async def penalize(self, pause_seconds: float, *, guessed: bool = False) -> None:
        return None


class LocalRateLimiter:
    """At most `per_minute` request starts in any 60 s window, for the requests of this process.

    Strict sliding window: start k is reserved no earlier than start k - per_minute plus 60 s and a
    `margin` (absorbing latency jitter between here and Vanta's counter). Reservations happen without
    an await, so concurrent callers never share a slot; then each caller sleeps until its slot.
    Proof: starts are non-decreasing and start[k] >= start[k - N] + 60 + margin, so any N + 1
    consecutive starts span more than 60 s. A penalty makes every later slot at least its end; a
    caller whose slot it covers takes a new one (the unused slot stays recorded: that only makes
    the window stricter).
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
        self._paused_until = 0.0

    def now(self) -> float:
        return self._clock()

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait for the next free start slot (immediately while the window has room). Raises
        DeadlineReached, reserving nothing, when that slot is later than `deadline`."""
        while True:
            now = self._clock()
            starts = self._starts
            slot = now if len(starts) < self.per_minute else max(now, starts[0] + self._span)
            slot = max(slot, self._paused_until)
            if deadline is not None and slot > deadline:
                raise DeadlineReached(too_late(slot - now))
            starts.append(slot)
            if slot > now:
                await self._sleep(slot - now)
            if slot >= self._paused_until:
                return

    async def penalize(self, pause_seconds: float, *, guessed: bool = False) -> None:
        """No request starts here for the next `pause_seconds` (callers already asleep included)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, pause_seconds))


def too_late(wait: float) -> str:
    """The DeadlineReached message for a slot `wait` seconds away."""
    return f"the next Vanta request slot is {wait:.1f}s away, past the deadline; hand the rest on"
