"""Steps an invocation takes on itself: the continuation of a range it just stepped, and a range it just
split off (run/split.py); and the continuations it hands on through the queue, sent together.

Lambda bills every container by the second it waits, and a sync waits on Vanta's rate limit most of the
time. When each continuation went back through the queue, the event source mapping woke a container
for it, so a run's few ranges ended up waiting in as many containers. Now an invocation with time left
runs such a step itself, at once, and the step's message still goes on the queue, delayed until after
the invocation's end: if the invocation dies, that copy runs the step; if not, the copy finds the step
committed and is dropped (a duplicate delivery, run/step.py). A run's ranges stay together in the
containers that began them, and only hand on through the queue when an invocation's time runs out.

Then they hand on together (`HandOnGate`): a continuation bound for the queue waits until every step
the container runs has ended or come to the gate too, and they go out as one `PageRanges` message, which
one invocation receives and runs as it would their messages. Sent one by one, as each range found its
time up, each woke an invocation of its own (measured on a 300-page sync at 50/min: four containers side
by side after the first invocation's end where one would do); sent as one batch of messages, the event
source mapping still shared them out among two.

A step its invocation's time stopped is not taken on but goes to the gate (run/step.py): taken on, it
stopped again before its first request, committed an empty step, and its continuation went alone to the
queue 30 s later, where a container of its own ran it for the rest of the run (measured at 50/min with
5 s pages: three containers side by side where one would do, 2.6 x the cost floor against 1.5 x).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from vanta_vuln_sync.messages import PageRange

# SQS delays a message by at most 15 minutes (more than any invocation's time left).
MAX_DELAY_SECONDS = 900
# The queue's copy becomes visible this long after the invocation's end.
COPY_MARGIN_SECONDS = 2
# A continuation waits at the gate for the container's other steps until this part of the step's
# hand-off reserve (`Settings.handoff_seconds`, 15 s) is left of the invocation: the send and the mark
# that the step was handed on. Every step of the invocation stops for the same deadline, but not at
# once: one whose rate slot came up just before the deadline reads its page while another stopped a
# page's allowance and a slot's wait earlier (at 5 s pages and 42 ranges sharing 100/min, up to ~40 s
# apart). A gate that waited at most 15 s (5 s before the end) let some go alone, each to a container
# of its own for the rest of the run; in a load test whose reserve is scaled to 1.5 s it waited not at all.
GATE_MARGIN_RESERVES = 1 / 3

SendBatch = Callable[[list[PageRange]], Awaitable[None]]


class FollowUps:
    """The steps one record's invocation took on (see the module doc). `run(p)` runs one of
    them (and takes on what it hands on); `remaining()` is the invocation's time
    left; `slots` the container's ranges in flight; no step is taken on with less than `min_seconds()`
    left; `gate` is the container's HandOnGate, which the steps' continuations bound for the queue pass;
    `reserve` the configured hand-off reserve (`Settings.handoff_seconds`), which times the gate."""

    def __init__(
        self,
        run: Callable[[PageRange], Coroutine[Any, Any, None]],
        *,
        remaining: Callable[[], float],
        slots: asyncio.Semaphore,
        min_seconds: Callable[[], float],
        gate: HandOnGate,
        reserve: float,
    ) -> None:
        self._run = run
        self._remaining = remaining
        self._slots = slots
        self._min_seconds = min_seconds
        self.gate = gate
        self._reserve = reserve
        self._tasks: set[asyncio.Task[None]] = set()

    def take(self, p: PageRange, *, extra_slot: bool) -> int | None:
        """Take step `p` on here, started at once, if the invocation has the time (and, for a new range,
        `extra_slot`, the container a free slot): returns how long its queue copy is to be delayed, or
        None (send it as it is)."""
        left = self._remaining()
        if left < self._min_seconds() or (extra_slot and self._slots.locked()):
            return None
        task = asyncio.create_task(self._run(p))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return min(MAX_DELAY_SECONDS, math.ceil(left) + COPY_MARGIN_SECONDS)

    def room_for_a_range(self) -> bool:
        """Whether a new range (one split off) would be taken on here now: the time for it and a free
        slot. One that would not goes to the queue alone, where the event source mapping wakes another
        container for it, which then runs its ranges for the rest of the run."""
        return self._remaining() >= self._min_seconds() and not self._slots.locked()

    def ending(self) -> bool:
        """Whether the invocation is too near its end to take a step on: a step that read nothing now
        stopped for that end, not because the fleet's rate budget is booked past a whole invocation."""
        return self._remaining() < self._min_seconds()

    async def hand_on(self, p: PageRange, send: SendBatch) -> None:
        """Send continuation `p` with the container's other steps' (see HandOnGate)."""
        within = self._remaining() - GATE_MARGIN_RESERVES * self._reserve
        await self.gate.hand_on(p, send, within=within)

    async def wait(self) -> None:
        """Until every step taken on (and every step those took on) has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks)


@dataclass(slots=True)
class _Batch:
    send: SendBatch
    messages: list[PageRange] = field(default_factory=list)
    sent: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class HandOnGate:
    """One container's continuations bound for the queue, sent together (see the module doc).

    Steps count themselves in while they run (`running`). A continuation waits at the gate (`hand_on`)
    until every running step has come to it too or ended, or for `within` seconds at most; the waiting
    continuations then go out in one call. A failed send fails every step of the batch (each record is
    then delivered again and repeats its hand-on)."""

    def __init__(self) -> None:
        self._running = 0
        self._open: _Batch | None = None

    @property
    def steps(self) -> int:
        """The steps running in the container now."""
        return self._running

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Count a step in while it runs; its end may complete a batch the others wait with."""
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            if self._open is not None and len(self._open.messages) >= self._running:
                await self._flush(self._open, raising=False)

    async def hand_on(self, p: PageRange, send: SendBatch, *, within: float) -> None:
        batch = self._open
        if batch is None:
            batch = self._open = _Batch(send)
        batch.messages.append(p)
        if len(batch.messages) >= self._running:
            await self._flush(batch, raising=True)
            return
        try:
            await asyncio.wait_for(asyncio.shield(batch.sent), timeout=max(0.0, within))
        except TimeoutError:
            if batch is self._open:
                await self._flush(batch, raising=True)
            else:
                await batch.sent

    async def _flush(self, batch: _Batch, *, raising: bool) -> None:
        if batch is not self._open:
            if raising:
                await batch.sent
            return
        self._open = None
        try:
            await batch.send(batch.messages)
        except Exception as exc:
            batch.sent.set_exception(exc)
            batch.sent.exception()  # retrieved here: the waiters raise it, if there are any
            if raising:
                raise
            return
        batch.sent.set_result(None)
