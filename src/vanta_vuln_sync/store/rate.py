"""The fleet-wide Vanta rate limit: one item in the state table (see `store.keys.RATE_KEY`) that every
container reserves its request slots from, paused by any container's 429 and adapted to Vanta's real
limit. The limiter protocol and the in-process limiter are in `vanta.ratelimit`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError as BotoClientError

from vanta_vuln_sync.aws import condition_failed
from vanta_vuln_sync.store.keys import RATE_KEY
from vanta_vuln_sync.vanta.errors import DeadlineReached
from vanta_vuln_sync.vanta.ratelimit import WINDOW_SECONDS, Clock, Sleep, too_late

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateAdaptation:
    """How the fleet's rate follows Vanta's real limit.

    A 429 cuts the rate to `decrease` of itself, once per storm: a 429 for a slot reserved before the
    cut (up to `settle_seconds` after the last such slot, for its answer to arrive) cuts no further.
    Then, once those slots are used, each full minute without a cut gives back `rebound_per_minute`
    until the rate is `rebound` of the one that was cut (just below where Vanta refused), and
    `recovery_per_minute` from there on, up to the configured limit: a fleet told too high a limit
    settles just under the real one and probes above it only slowly. (A plain +1/min recovery
    measured ~45/min against a 50/min Vanta when told 100/min: the x0.8 sawtooth; this holds 46-48.)
    """

    decrease: float = 0.8
    rebound: float = 0.97
    rebound_per_minute: float = 5.0
    recovery_per_minute: float = 0.25
    settle_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.decrease <= 1 or not 0 < self.rebound <= 1:
            raise ValueError(f"decrease and rebound must be in (0, 1], got {self!r}")
        if self.rebound_per_minute <= 0 or self.recovery_per_minute < 0 or self.settle_seconds < 0:
            raise ValueError(f"invalid rate adaptation {self!r}")

    def after(self, cut_to: float, minutes: int) -> float:
        """The rate `minutes` full minutes after a cut to `cut_to`."""
        knee = max(cut_to, self.rebound * cut_to / self.decrease)
        past_knee = max(0.0, minutes - (knee - cut_to) / self.rebound_per_minute)
        return min(cut_to + self.rebound_per_minute * minutes, knee + self.recovery_per_minute * past_knee)


ADAPTATION = RateAdaptation()
# A task that took a slot this many of the fleet's slot intervals ago still asks in turn, and a slot gone
# stale unused keeps a container from reserving ahead for as long. Counted in intervals, not seconds: a
# range asks once a round of the container's ranges, up to 50 of them (run/sizing.py, CONTAINER_RANGES),
# so 50 intervals cover a round at any limit (30.5 s at 100/min, 61 s at 50/min), and a load test that
# runs the limit 10 x faster keeps the same rule (a fixed 30 s was ten rounds there, the look-ahead off
# for a whole scaled invocation after each stale slot).
STREAM_INTERVALS = 50


@dataclass(frozen=True, slots=True)
class RateState:
    """The fleet's rate item (`pk="rate#vanta"`) as DynamoDB last showed it.

    `next_slot`: the epoch second the next start may take. `per_minute`: the rate the fleet was cut
    to at its last 429 (None while it never had one: the configured limit applies); see
    `effective_per_minute` for the rate in force. `reserved`: start slots granted fleet-wide, ever.
    `throttled`: 429 answers seen fleet-wide, ever. `last_throttled`: epoch second of the last cut.
    `paused_until`: no start before it (the last 429's pause). `cut_until`: a 429 before it came from a
    slot reserved before the last cut, and cuts no further. `last_pause`: the seconds the pause that
    ends at `paused_until` lasts.
    """

    next_slot: float = 0.0
    per_minute: float | None = None
    reserved: int = 0
    throttled: int = 0
    last_throttled: float | None = None
    paused_until: float = 0.0
    cut_until: float = 0.0
    last_pause: float = 0.0

    def effective_per_minute(
        self, configured: float, now: float, adaptation: RateAdaptation = ADAPTATION
    ) -> float:
        """The rate in force at epoch `now` for a container configured with `configured`: the cut rate
        recovered by the full minutes since the cut took effect (`cut_until`), never above
        `configured` nor below 1."""
        if self.per_minute is None or self.last_throttled is None:
            return max(1.0, configured)
        minutes = max(0, math.floor((now - max(self.last_throttled, self.cut_until)) / WINDOW_SECONDS))
        return max(1.0, min(configured, adaptation.after(self.per_minute, minutes)))


async def read_rate_state(ddb: DynamoDBClient, table: str) -> RateState:
    """The fleet's rate item now (a consistent read); all zeros and None before the first request.
    Raises botocore's ClientError if DynamoDB fails."""
    response = await ddb.get_item(TableName=table, Key=RATE_KEY, ConsistentRead=True)
    return _rate_state(response.get("Item"))


class FleetRateLimiter:
    """At most `per_minute` request starts in any 60 s window across every process sharing `table`.

    The item `pk="rate#vanta"` (see RateState) holds `next_slot`, the earliest epoch second the next
    start may take. A reservation of n slots moves it, by an optimistic conditional update, from `s`
    to `max(now, s) + n * interval`, where `interval = (60 + margin) / rate` and `rate` is the
    effective rate (at most `per_minute`); the n slots are `interval` apart. Reservations are totally
    ordered by DynamoDB, so all slots fleet-wide are at least `(60 + margin) / per_minute` apart and any
    per_minute + 1 of them span 60 + margin seconds. A caller starts no earlier than its slot by its own
    clock and uses it only if not later than `late_tolerance` after it (a late slot is dropped, never
    bunched onto later ones); so clocks may disagree by up to `margin - late_tolerance` seconds and no
    60 s window of real time still exceeds the limit.

    `penalize` (a 429) pushes `next_slot` and `paused_until` to at least now + pause for every
    container, and cuts the rate as `adaptation` says (x0.8 once per storm, then back up minute by
    minute). Every container reads the rate and the pause from the item its reservations return; one
    that learns of a pause drops the slots inside it, its sleeping callers' too.

    Reserves as many slots per DynamoDB call as callers are waiting here (up to `max_batch`), and while
    the fleet's slots are scarce (its next slot is later than now) as many as this container has callers
    asking in turn (`streams`: the tasks that took a slot in the last `STREAM_INTERVALS` intervals): each
    of them comes back for a slot, so one write serves the next round of them all. A slot that goes
    stale here unused turns that look-ahead off for as long. None is reserved past the deadline of the
    caller that reserves (a container's callers share their invocation's): at an invocation's end the
    fleet's next slot is the first after its last request, not a batch of slots nobody here will use.
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
        max_batch: int = 10,
        adaptation: RateAdaptation = ADAPTATION,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        if not 0 <= late_tolerance < margin:
            raise ValueError("late_tolerance must be below the margin (the rest absorbs clock skew)")
        self.per_minute = per_minute
        self._span = WINDOW_SECONDS + margin
        self._ddb = ddb
        self._table = table
        self._clock = clock
        self._sleep = sleep
        self._late = late_tolerance
        self._max_batch = max(1, max_batch)
        self._adaptation = adaptation
        self._slots: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._streams: dict[asyncio.Task[Any], float] = {}  # caller task -> when it last took a slot
        self._stale_at = -math.inf  # when a slot here last went stale unused
        self._item: Mapping[str, Any] | None = None  # the rate item as DynamoDB last showed it
        self._state = RateState()
        self._paused_until = 0.0
        self.reservations = 0
        self.dropped = 0
        self.penalties = 0

    def now(self) -> float:
        return self._clock()

    @property
    def effective_per_minute(self) -> float:
        """The fleet's rate in force now, as this container last saw it."""
        return self._state.effective_per_minute(self.per_minute, self._clock(), self._adaptation)

    @property
    def interval(self) -> float:
        """Seconds between fleet-wide start slots at the rate in force now."""
        return self._span / self.effective_per_minute

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait for a fleet-wide start slot. Raises DeadlineReached, without sleeping, when the slot
        would be later than `deadline` (epoch seconds on this limiter's clock), and botocore's
        ClientError if DynamoDB fails."""
        while True:
            slot = await self._take_slot(deadline)
            now = self._clock()
            if slot > now:
                await self._sleep(slot - now)
                now = self._clock()
            if slot < self._paused_until:
                self.dropped += 1  # a 429 paused the fleet while this caller slept
                continue
            if now <= slot + self._late:
                return
            self.dropped += 1  # woke too late: starting now could bunch with the slots after it

    async def penalize(self, pause_seconds: float, *, guessed: bool = False) -> None:
        """Vanta answered 429: no start anywhere in the fleet before now + `pause_seconds`, and the
        rate cut (once per storm). A `guessed` pause (no Retry-After came) doubles the storm's last
        one when that is over and Vanta still refuses, up to a minute. One
        conditional update (repeated only if another container wrote the item meanwhile). Raises
        botocore's ClientError if DynamoDB fails."""
        self.penalties += 1
        self._pause_here(self._clock() + max(0.0, pause_seconds))
        while True:
            now = self._clock()
            state = self._state
            cut = now >= state.cut_until
            pause = max(0.0, pause_seconds)
            if guessed and not cut and now >= state.paused_until:
                # The storm's last pause is over and Vanta still refuses: its window is still full,
                # so wait twice as long (2 s at least), up to a window (after which any sliding
                # window has turned over). A 429 during a pause says nothing new: its request
                # started before the pause.
                pause = max(pause, min(WINDOW_SECONDS, 2.0 * max(1.0, state.last_pause)))
            until = now + pause
            self._pause_here(until)
            next_slot = max(state.next_slot, until)
            values: dict[str, Any] = {
                ":next": _number(next_slot),
                ":paused": _number(max(state.paused_until, until)),
                ":one": {"N": "1"},
            }
            sets = ["next_slot = :next", "paused_until = :paused"]
            if until >= state.paused_until:
                values[":pause"] = {"N": f"{pause:.3f}"}
                sets.append("last_pause = :pause")
            if cut:
                rate = state.effective_per_minute(self.per_minute, now, self._adaptation)
                values[":rate"] = {"N": f"{max(1.0, rate * self._adaptation.decrease):.3f}"}
                values[":now"] = _number(now)
                values[":cut"] = _number(next_slot + self._adaptation.settle_seconds)
                sets += ["per_minute = :rate", "last_throttled = :now", "cut_until = :cut"]
            condition = _unchanged(self._item, ("next_slot", "last_throttled", "paused_until"), values)
            if not await self._write(f"SET {', '.join(sets)} ADD throttled :one", condition, values):
                continue
            if cut:
                log.warning(
                    "Vanta answered 429: fleet paused %.1fs, rate cut to %.1f/min",
                    pause,
                    self._state.per_minute or self.per_minute,
                )
            return

    def _pause_here(self, until: float) -> None:
        """No slot of this container before `until`: cached ones are dropped now, sleeping callers'
        on waking."""
        if until <= self._paused_until:
            return
        self._paused_until = until
        slots = self._slots
        while slots and slots[0] < until:
            slots.popleft()
            self.dropped += 1

    async def _take_slot(self, deadline: float | None) -> float:
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    now = self._clock()
                    slots = self._slots
                    while slots and slots[0] + self._late < now:
                        slots.popleft()
                        self.dropped += 1
                        self._stale_at = now
                    if slots:
                        if deadline is not None and slots[0] > deadline:
                            # Left in the pool for the next caller here, whose deadline may allow it
                            # (else dropped once stale). Handing it back to the fleet would take a
                            # conditional write that succeeds only if nobody reserved since: rare
                            # under load, and an unused slot costs the fleet one interval at most.
                            raise DeadlineReached(too_late(slots[0] - now))
                        self._note_stream(now)
                        return slots.popleft()
                    known_next = max(now, self._state.next_slot)
                    if deadline is not None and known_next > deadline:
                        raise DeadlineReached(too_late(known_next - now))  # next_slot only grows: no write
                    wanted = self._waiting
                    if self._state.next_slot > now and now - self._stale_at > self._stream_seconds():
                        wanted = max(wanted, self.streams(now))
                    slots.extend(await self._reserve(min(wanted, self._max_batch), deadline))
        finally:
            self._waiting -= 1

    def streams(self, now: float) -> int:
        """Callers of this container that ask in turn: running tasks that took a slot in the last
        `STREAM_INTERVALS` intervals (each range step is one task that asks before every page)."""
        window = self._stream_seconds()
        for task in [t for t, at in self._streams.items() if t.done() or now - at > window]:
            del self._streams[task]
        return len(self._streams)

    def _stream_seconds(self) -> float:
        return STREAM_INTERVALS * self.interval

    def _note_stream(self, now: float) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._streams[task] = now

    async def _reserve(self, count: int, deadline: float | None) -> list[float]:
        """Up to `count` slots, none past `deadline`: none at all (and no write) when the fleet's next
        slot is past it."""
        while True:
            now = self._clock()
            state = self._state
            interval = self._span / state.effective_per_minute(self.per_minute, now, self._adaptation)
            first = max(now, state.next_slot)
            if deadline is not None:
                if first > deadline:
                    return []
                count = min(count, math.floor((deadline - first) / interval) + 1)
            values: dict[str, Any] = {":new": _number(first + count * interval), ":n": {"N": str(count)}}
            # Conditioned on the cut too: a container must not reserve at a rate the fleet has cut.
            condition = _unchanged(self._item, ("next_slot", "last_throttled"), values)
            if not await self._write("SET next_slot = :new ADD reserved :n", condition, values):
                continue
            self.reservations += 1
            return [first + i * interval for i in range(count)]

    async def _write(self, update: str, condition: str, values: dict[str, Any]) -> bool:
        """One conditional update of the rate item, learning the item as it is after it either way.

        False when another container changed the item first (the caller recomputes and tries again).
        """
        try:
            response = await self._ddb.update_item(
                TableName=self._table,
                Key=RATE_KEY,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except BotoClientError as exc:
            if not condition_failed(exc):
                raise
            self._learn(await self._current_item(exc))
            return False
        self._learn(response.get("Attributes"))
        return True

    def _learn(self, item: Mapping[str, Any] | None) -> None:
        self._item = item
        self._state = _rate_state(item)
        self._pause_here(self._state.paused_until)

    async def _current_item(self, exc: BotoClientError) -> Mapping[str, Any] | None:
        item: Any = exc.response.get("Item")
        if item is None:
            response = await self._ddb.get_item(TableName=self._table, Key=RATE_KEY, ConsistentRead=True)
            item = response.get("Item")
        return item or None


def _number(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


def _unchanged(item: Mapping[str, Any] | None, names: tuple[str, ...], values: dict[str, Any]) -> str:
    """A condition that the named attributes are still as in `item` (their exact number text)."""
    parts = []
    for name in names:
        if item is not None and name in item:
            values[f":seen_{name}"] = item[name]
            parts.append(f"{name} = :seen_{name}")
        else:
            parts.append(f"attribute_not_exists({name})")
    return " AND ".join(parts)


def _rate_state(item: Mapping[str, Any] | None) -> RateState:
    """Validates the rate item where it enters; absent attributes read as their defaults."""
    if not item:
        return RateState()

    def number(name: str) -> float | None:
        attribute = item.get(name)
        return float(attribute["N"]) if attribute is not None else None

    return RateState(
        next_slot=number("next_slot") or 0.0,
        per_minute=number("per_minute"),
        reserved=int(number("reserved") or 0),
        throttled=int(number("throttled") or 0),
        last_throttled=number("last_throttled"),
        paused_until=number("paused_until") or 0.0,
        cut_until=number("cut_until") or 0.0,
        last_pause=number("last_pause") or 0.0,
    )
