"""The fleet-wide rate budget on a real DynamoDB API (moto server), in virtual time: the window, the
deadline, the fleet-wide pause after a 429 and the adaptive rate."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from vanta_helpers import MemoryDynamoDB, VirtualClock, max_in_any_window

from vanta_vuln_sync.simulator.counters import SlidingWindow
from vanta_vuln_sync.store.rate import FleetRateLimiter, read_rate_state
from vanta_vuln_sync.vanta import DeadlineReached


@pytest.mark.parametrize("skew", [0.0, 0.7], ids=["same-clocks", "clocks-0.7s-apart"])
async def test_fleet_limiter_never_exceeds_the_limit_in_any_60s_window_across_instances(
    virtual_clock: VirtualClock, ddb_clients: Any, state_table: str, skew: float
) -> None:
    # Given four containers (own DynamoDB client each, clocks up to `skew` apart), three coroutines
    # each, sharing 30 requests/min
    per_minute = 30
    limiters = [
        FleetRateLimiter(
            await ddb_clients(),
            state_table,
            per_minute,
            clock=lambda offset=n * skew / 3: virtual_clock() + offset,
            sleep=virtual_clock.sleep,
        )
        for n in range(4)
    ]
    starts: list[float] = []

    async def worker(limiter: FleetRateLimiter) -> None:
        while len(starts) < 4 * per_minute:
            await limiter.acquire()
            starts.append(virtual_clock())

    # When they all keep asking for four minutes' worth of requests
    await virtual_clock.gather(*(worker(limiter) for limiter in limiters for _ in range(3)))
    # Then no 60 s window of true time holds more than 30 starts, and the budget is used to at least 90 %
    assert max_in_any_window(starts) <= per_minute
    span = max(starts) - min(starts)
    assert (len(starts) - 1) / span * 60 >= 0.9 * per_minute
    assert all(limiter.reservations > 0 for limiter in limiters)


@pytest.fixture(params=["moto", "memory"])
async def rate_table(
    request: pytest.FixtureRequest, ddb_clients: Any, state_table: str
) -> tuple[Callable[[], Any], str]:
    """(factory of per-container DynamoDB clients, table name): on moto server, and on the in-memory
    stand-in the long dynamics run uses, so both are held to the same behaviour."""
    if request.param == "moto":
        return ddb_clients, state_table
    memory = MemoryDynamoDB()

    async def same() -> Any:
        return memory

    return same, "state"


async def test_a_429_storm_seen_by_one_container_slows_every_container(
    virtual_clock: VirtualClock, rate_table: tuple[Callable[[], Any], str]
) -> None:
    # Given two containers sharing 60 requests/min, both of which have started requests
    clients, table = rate_table
    ddb_a, ddb_b = await clients(), await clients()
    a = FleetRateLimiter(ddb_a, table, 60, clock=virtual_clock, sleep=virtual_clock.sleep)
    b = FleetRateLimiter(ddb_b, table, 60, clock=virtual_clock, sleep=virtual_clock.sleep)
    await virtual_clock.gather(a.acquire(), b.acquire())
    # When Vanta answers container A with 429 and Retry-After: 30
    throttled_at = virtual_clock()
    await virtual_clock.gather(a.penalize(30.0))
    # Then container B's next request waits past the pause, though B never saw a 429
    await virtual_clock.gather(b.acquire())
    assert virtual_clock() >= throttled_at + 30.0
    # And the fleet's rate is cut to 0.8 of itself, for B too, and the item counts what happened
    assert b.effective_per_minute == pytest.approx(48.0)
    state = await read_rate_state(ddb_a, table)
    assert (state.reserved, state.throttled) == (3, 1)
    assert state.per_minute == pytest.approx(48.0)
    assert state.last_throttled == pytest.approx(throttled_at)


async def test_a_second_429_of_the_same_storm_pauses_but_cuts_the_rate_no_further(
    virtual_clock: VirtualClock, rate_table: tuple[Callable[[], Any], str]
) -> None:
    clients, table = rate_table
    limiter = FleetRateLimiter(await clients(), table, 50, clock=virtual_clock, sleep=virtual_clock.sleep)
    await virtual_clock.gather(limiter.acquire(), limiter.penalize(2.0), limiter.penalize(2.0))
    state = await read_rate_state(await clients(), table)
    assert state.throttled == 2
    assert state.per_minute == pytest.approx(40.0)


async def test_fleet_slot_past_the_deadline_raises_without_sleeping_and_serves_the_next_caller(
    virtual_clock: VirtualClock, ddb_clients: Any, state_table: str
) -> None:
    # Given 2 requests/min fleet-wide (slots 30.5 s apart) and three callers at once: the first takes
    # the slot now, the other two share one reservation of the slots at 30.5 s and 61 s
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await virtual_clock.sleep(seconds)

    limiter = FleetRateLimiter(await ddb_clients(), state_table, 2, clock=virtual_clock, sleep=sleep)
    start = virtual_clock()
    # When the third must have started within 40 s
    outcomes = await virtual_clock.gather(
        _caught(limiter.acquire()), _caught(limiter.acquire()), _caught(limiter.acquire(deadline=start + 40))
    )
    # Then it is told so at once, without sleeping, and the others start in their slots
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], DeadlineReached)
    assert slept == [pytest.approx(30.5)]
    assert limiter.reservations == 2
    # And the slot it could not use serves the next caller here, with no new reservation
    await virtual_clock.gather(limiter.acquire())
    assert virtual_clock() == pytest.approx(start + 61.0)
    assert limiter.reservations == 2
    # And a deadline that the fleet's known next slot already passes costs no DynamoDB write
    with pytest.raises(DeadlineReached):
        await limiter.acquire(deadline=virtual_clock() + 1.0)
    assert limiter.reservations == 2


async def _caught(aw: Awaitable[None]) -> BaseException | None:
    try:
        await aw
    except DeadlineReached as exc:
        return exc
    return None


async def test_fleet_told_twice_vantas_limit_converges_just_under_it(virtual_clock: VirtualClock) -> None:
    # Given three containers of ten callers each, configured for 100/min against a Vanta that
    # allows 50/min (a sliding window, Retry-After when it refuses), on a fake clock
    ddb = MemoryDynamoDB()
    vanta = SlidingWindow(50)
    limiters = [
        FleetRateLimiter(ddb, "state", 100, clock=virtual_clock, sleep=virtual_clock.sleep) for _ in range(3)
    ]
    rng = random.Random(3)
    answers: list[tuple[float, bool]] = []

    async def caller(limiter: FleetRateLimiter) -> None:
        while len(answers) < 2000:
            await limiter.acquire()
            wait = vanta.try_acquire(virtual_clock())
            answers.append((virtual_clock(), wait is None))
            await virtual_clock.sleep(rng.uniform(0.0, 0.3))  # the request's own latency
            if wait is not None:
                await limiter.penalize(max(1, math.ceil(wait)))

    # When they make 2,000 requests
    await virtual_clock.gather(*(caller(limiter) for limiter in limiters for _ in range(10)))
    # Then under 2 % were refused, and the last 500 accepted ran within 10 % of Vanta's 50/min
    refused = sum(1 for _, accepted in answers if not accepted)
    assert refused / len(answers) < 0.02
    tail = [moment for moment, accepted in answers if accepted][-500:]
    assert 45.0 <= (len(tail) - 1) / (tail[-1] - tail[0]) * 60 <= 55.0
    assert ddb.items[("state", "rate#vanta", "rate")]["throttled"] == {"N": str(refused)}


async def test_a_container_reserves_a_round_for_all_its_callers_while_slots_are_scarce(
    virtual_clock: VirtualClock, rate_table: tuple[Callable[[], Any], str]
) -> None:
    # Given one container whose four ranges each ask for a slot, wait 1 s for Vanta's answer and ask
    # again, at 50/min (slots 1.22 s apart: the ranges wait on the rate, not the rate on them)
    clients, table = rate_table
    limiter = FleetRateLimiter(await clients(), table, 50, clock=virtual_clock, sleep=virtual_clock.sleep)
    starts: list[float] = []

    async def caller() -> None:
        while len(starts) < 200:
            await limiter.acquire()
            starts.append(virtual_clock())
            await virtual_clock.sleep(1.0)

    # When they make 200 requests
    await virtual_clock.gather(*(caller() for _ in range(4)))
    # Then one DynamoDB write reserved the next slot of every range (a quarter of a write a request,
    # where one per request was the rule), no slot was wasted, and the limit held at full use
    assert limiter.reservations <= len(starts) / 3
    assert limiter.dropped == 0
    assert max_in_any_window(starts) <= 50
    assert (len(starts) - 1) / (max(starts) - min(starts)) * 60 >= 0.95 * 50


async def test_callers_slower_than_the_rate_get_no_slot_reserved_ahead(
    virtual_clock: VirtualClock, rate_table: tuple[Callable[[], Any], str]
) -> None:
    # Given two ranges whose pages take 5 s against a 50/min budget they cannot fill
    clients, table = rate_table
    limiter = FleetRateLimiter(await clients(), table, 50, clock=virtual_clock, sleep=virtual_clock.sleep)
    starts: dict[int, list[float]] = {0: [], 1: []}

    async def caller(n: int) -> None:
        await virtual_clock.sleep(n * 2.3)
        for _ in range(30):
            await limiter.acquire()
            starts[n].append(virtual_clock())
            await virtual_clock.sleep(5.0)

    # When each makes 30 requests
    await virtual_clock.gather(caller(0), caller(1))
    # Then no slot went unused and no range waited for a slot reserved ahead of it: each asked and
    # started at once (a slot reserved ahead for a range still waiting on its page would hold it back)
    assert limiter.dropped == 0
    for moments in starts.values():
        gaps = [b - a for a, b in itertools.pairwise(moments)]
        assert max(gaps) <= 5.0 + 60.0 / 50 + 1e-6


async def test_an_invocations_ranges_reserve_no_slot_past_their_deadline(
    virtual_clock: VirtualClock, rate_table: tuple[Callable[[], Any], str]
) -> None:
    """A compact run's ranges all stop for their invocation's deadline, and its continuation's first
    request takes the fleet's next slot: slots reserved ahead past the deadline went unused, up to a
    batch of them (5 intervals, 6 s at 50/min) at every hand-off."""
    # Given one container's twenty ranges at 50/min, each asking again a second after its slot
    clients, table = rate_table
    limiter = FleetRateLimiter(await clients(), table, 50, clock=virtual_clock, sleep=virtual_clock.sleep)
    deadline = virtual_clock() + 100.0
    starts: list[float] = []

    async def caller() -> None:
        while True:
            try:
                await limiter.acquire(deadline=deadline)
            except DeadlineReached:
                return
            starts.append(virtual_clock())
            await virtual_clock.sleep(1.0)

    # When they stop for their deadline
    await virtual_clock.gather(*(caller() for _ in range(20)))
    # Then the fleet's next slot is the one after their last start, with the rate used to the deadline
    # and a write reserving several slots at a time
    state = await read_rate_state(await clients(), table)
    assert state.next_slot - max(starts) == pytest.approx(limiter.interval, abs=0.01)
    assert max(starts) > deadline - limiter.interval
    assert limiter.reservations <= len(starts) / 4
