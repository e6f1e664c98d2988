"""The container's continuations bound for the queue go out together (run/follow_ups.py, HandOnGate):
one batch once every running step has come to the gate or ended, never a wait past `within`, and a
failed send fails every step of the batch (each record is delivered again)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from vanta_vuln_sync.messages import PageRange
from vanta_vuln_sync.run.follow_ups import HandOnGate

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
