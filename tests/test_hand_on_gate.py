"""The container's continuations bound for the queue go out together (run/follow_ups.py, HandOnGate):
one batch once every running step has come to the gate or ended, never a wait past `within`, and a
failed send fails every step of the batch (each record is delivered again)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from vanta_vuln_sync.messages import MAX_BUNDLED, MAX_MESSAGE_BYTES, PageRange, PageRanges, bundled
from vanta_vuln_sync.run.follow_ups import FollowUps, HandOnGate

RANGE = PageRange(run_id="r", resource="vulnerabilities", shard="o00000", seq=1, filters={}, page_budget=5)


def step(n: int) -> PageRange:
    return replace(RANGE, shard=f"x{n:09d}")


class Queue:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def send(self, batch: list[PageRange]) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("SQS is down")
        self.batches.append([p.shard for p in batch])


async def test_continuations_of_steps_that_stop_apart_go_out_in_one_batch_when_the_last_arrives() -> None:
    gate, queue = HandOnGate(), Queue()

    async def stepping(n: int, stops_after: float) -> None:
        async with gate.running():
            await asyncio.sleep(stops_after)
            await gate.hand_on(step(n), queue.send, within=5.0)

    # Given three steps whose time runs out 0.05 s apart; When each hands its continuation on
    await asyncio.gather(stepping(1, 0.0), stepping(2, 0.05), stepping(3, 0.1))
    # Then one send carried all three
    assert queue.batches == [[step(1).shard, step(2).shard, step(3).shard]]


async def test_a_step_that_ends_without_handing_on_completes_the_batch() -> None:
    gate, queue = HandOnGate(), Queue()

    async def handing_on(n: int) -> None:
        async with gate.running():
            await asyncio.sleep(0.01)  # the others are running too
            await gate.hand_on(step(n), queue.send, within=5.0)

    async def range_done() -> None:
        async with gate.running():
            await asyncio.sleep(0.05)  # its range ends: no continuation

    # Given two steps handing on while a third is still reading its range's last page
    started = asyncio.get_running_loop().time()
    await asyncio.gather(handing_on(1), handing_on(2), range_done())
    # Then the two went out together as the third ended, without waiting out `within`
    assert queue.batches == [[step(1).shard, step(2).shard]]
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_step_held_up_is_not_waited_for_past_within() -> None:
    gate, queue = HandOnGate(), Queue()
    release = asyncio.Event()

    async def handing_on(n: int) -> None:
        async with gate.running():
            await asyncio.sleep(0.01)
            await gate.hand_on(step(n), queue.send, within=0.1)

    async def held_up() -> None:
        async with gate.running():
            await release.wait()
            await gate.hand_on(step(9), queue.send, within=0.1)

    held = asyncio.create_task(held_up())
    await asyncio.sleep(0)
    # When two hand on while the third waits out a back-off
    await asyncio.wait_for(asyncio.gather(handing_on(1), handing_on(2)), timeout=2.0)
    # Then they went out after `within`, and the third goes alone when it comes
    assert queue.batches == [[step(1).shard, step(2).shard]]
    release.set()
    await held
    assert queue.batches[1:] == [[step(9).shard]]


async def test_a_failed_send_fails_every_step_of_the_batch() -> None:
    gate, queue = HandOnGate(), Queue(fail=True)

    async def handing_on(n: int) -> None:
        async with gate.running():
            await asyncio.sleep(0.01)
            await gate.hand_on(step(n), queue.send, within=5.0)

    outcomes = await asyncio.gather(handing_on(1), handing_on(2), return_exceptions=True)
    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError]
    # And the gate is open for the redeliveries
    queue.fail = False
    await handing_on(3)
    assert queue.batches == [[step(3).shard]]


@pytest.mark.parametrize("within", [0.0, -1.0])
async def test_no_time_left_sends_at_once(within: float) -> None:
    gate, queue = HandOnGate(), Queue()
    async with gate.running(), gate.running():  # another step runs on
        await gate.hand_on(step(1), queue.send, within=within)
    assert queue.batches == [[step(1).shard]]


def test_a_containers_continuations_go_out_as_one_message_that_one_invocation_receives() -> None:
    """A compact run's ranges (up to one container's 50) hand on to one invocation: sent as several
    messages, the event source mapping shared them out among as many containers, each billed."""
    steps = [replace(step(n), anchors=("a" * 24, "b" * 24)) for n in range(MAX_BUNDLED)]
    (message,) = bundled(steps)
    assert isinstance(message, PageRanges)
    assert message.ranges == tuple(steps)
    assert bundled(steps[:1]) == steps[:1]


def test_steps_too_large_for_one_message_go_out_in_as_few_as_fit_sqs() -> None:
    ids = tuple(f"vuln-{n:030d}" for n in range(100))
    steps = [replace(step(n), anchors=ids, stop_ids=ids, start_ids=ids) for n in range(MAX_BUNDLED + 1)]
    messages = bundled(steps)
    sizes = [len(m.to_json()) for m in messages]
    assert max(sizes) <= MAX_MESSAGE_BYTES
    per_message = MAX_MESSAGE_BYTES // len(steps[0].to_json())
    assert len(messages) == -(-len(steps) // per_message)  # as few as fit
    carried = [p for m in messages for p in (m.ranges if isinstance(m, PageRanges) else (m,))]
    assert carried == steps  # every step once, in order


async def test_the_gate_is_timed_by_the_hand_off_reserve_so_a_scaled_one_still_gathers_the_batch() -> None:
    """A load test divides the reserve by its time scale (1.5 s at 10 x): a gate fixed at 15 s with a
    5 s margin waited no time at all there, and every continuation went out alone."""
    gate, queue = HandOnGate(), Queue()

    async def never(p: PageRange) -> None:
        raise AssertionError("nothing is taken on here")

    follow = FollowUps(
        never,
        remaining=lambda: 3.0,  # what a step stopping at a 1.5 s reserve leaves, and its last page's time
        slots=asyncio.Semaphore(50),
        min_seconds=lambda: 4.5,
        gate=gate,
        reserve=1.5,
    )

    async def stepping(n: int, stops_after: float) -> None:
        async with gate.running():
            await asyncio.sleep(stops_after)
            await follow.hand_on(step(n), queue.send)

    await asyncio.gather(stepping(1, 0.0), stepping(2, 0.2), stepping(3, 0.4))
    assert queue.batches == [[step(n).shard for n in (1, 2, 3)]]


async def test_a_range_is_split_off_only_where_this_invocation_can_take_it_on() -> None:
    """A range split off that the invocation cannot take on goes to the queue alone and begins a second
    container for the rest of the run (2,000 pages at 0.2 s pages: 3.9 x the floor, 1.6 x without)."""

    async def never(p: PageRange) -> None:
        raise AssertionError("nothing is taken on here")

    left = [60.0]
    slots = asyncio.Semaphore(1)
    follow = FollowUps(
        never, remaining=lambda: left[0], slots=slots, min_seconds=lambda: 45.0, gate=HandOnGate(), reserve=15
    )
    assert follow.room_for_a_range()
    left[0] = 44.0  # too little time left to take a step on
    assert not follow.room_for_a_range()
    assert follow.take(step(1), extra_slot=True) is None
    left[0] = 60.0
    async with slots:  # every slot of the container taken
        assert not follow.room_for_a_range()
