"""Vanta requests as they happen: the fleet rate limiter's item in the state table, read and sampled.

Every request start takes a slot from the limiter's item (`pk="rate#vanta"`, `sk="rate"`), so its
running totals move while invocations run, long before their steps commit counts. The item carries
`reserved` (slots granted fleet-wide: requests started), `throttled` (429s seen), `per_minute` (the
effective limit), `next_slot` and `last_throttled` (epoch seconds). A limiter that predates those
totals writes only `next_slot`: then they read as None and the callers fall back to committed counts.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

RATE_KEY = {"pk": {"S": "rate#vanta"}, "sk": {"S": "rate"}}
WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RateState:
    """The limiter's item as read; None where the item lacks the attribute. No item at all (nothing
    reserved yet) reads as `reserved=0, throttled=0`. Same fields as
    `vanta.ratelimit.read_rate_state`'s, which may replace `read_rate_item`."""

    next_slot: float | None = None
    per_minute: int | None = None
    reserved: int | None = None
    throttled: int | None = None
    last_throttled: float | None = None


async def read_rate_item(ddb: DynamoDBClient, table: str) -> RateState:
    """The limiter's item, strongly consistent; missing attributes are None (see RateState)."""
    reply = await ddb.get_item(TableName=table, Key=RATE_KEY, ConsistentRead=True)
    item: dict[str, Any] | None = reply.get("Item")
    if item is None:
        return RateState(reserved=0, throttled=0)

    def number(name: str) -> float | None:
        value = item.get(name, {}).get("N")
        return float(value) if value is not None else None

    def count(name: str) -> int | None:
        value = number(name)
        return int(value) if value is not None else None

    return RateState(
        next_slot=number("next_slot"),
        per_minute=count("per_minute"),
        reserved=count("reserved"),
        throttled=count("throttled"),
        last_throttled=number("last_throttled"),
    )


def started_by(state: RateState, now: float, limit: float) -> RateState:
    """`state` with `reserved` counting only the slots whose time has come by epoch `now`.

    A container reserves slots for all its waiting callers at once, spaced at the rate in force up to
    `next_slot`: those still ahead of `now` are requests not started yet (counting them showed a fleet
    at 50/min as "83/50 per min"). `limit` is the configured rate, used while the item has no cut rate.
    """
    if state.reserved is None or state.next_slot is None or state.next_slot <= now:
        return state
    ahead = math.ceil((state.next_slot - now) * (state.per_minute or limit) / WINDOW_SECONDS)
    return replace(state, reserved=max(0, state.reserved - ahead))


class RequestMeter:
    """Requests started since a baseline and slots granted in the last 60 s, from samples of the
    limiter's `reserved` (and `throttled`) taken over time. The first sample is the baseline: take it
    when the run starts. A total the baseline lacks but a later sample has started after the baseline,
    from 0 (a limiter that began keeping totals meanwhile)."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._baseline: RateState | None = None
        self._baseline_at = 0.0
        self._latest: RateState | None = None

    def sample(self, at: float, state: RateState) -> None:
        """Record the limiter's item as read at monotonic time `at`."""
        if self._baseline is None:
            self._baseline, self._baseline_at = state, at
        self._latest = state
        if state.reserved is None:
            return
        if not self._samples and at > self._baseline_at:
            self._samples.append((self._baseline_at, self._base("reserved")))
        self._samples.append((at, state.reserved))
        # Keep one sample at or before the window's start: the count the window is measured from.
        while len(self._samples) > 1 and self._samples[1][0] <= at - self._window:
            self._samples.popleft()

    def _base(self, total: str) -> int:
        value = getattr(self._baseline, total, None) if self._baseline is not None else None
        return int(value) if value is not None else 0

    @property
    def live(self) -> bool:
        """True when the limiter keeps totals (else every figure below is None)."""
        return bool(self._samples)

    @property
    def requests(self) -> int | None:
        """Requests started (slots granted) since the baseline."""
        if not self.live or self._latest is None or self._latest.reserved is None:
            return None
        return self._latest.reserved - self._base("reserved")

    @property
    def throttled(self) -> int | None:
        """429s seen since the baseline."""
        latest = self._latest.throttled if self._latest else None
        return latest - self._base("throttled") if latest is not None else None

    @property
    def per_minute(self) -> int | None:
        """Slots granted in the last 60 s (since the baseline while the run is younger than that)."""
        if not self.live:
            return None
        return self._samples[-1][1] - self._samples[0][1]

    @property
    def limit(self) -> int | None:
        """The limit the limiter applies, when its item says."""
        return self._latest.per_minute if self._latest else None
