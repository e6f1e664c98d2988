"""Steps an invocation takes on itself: the continuation of a range it just stepped, and a range it just
split off (run/split.py).

Lambda bills every container by the second it waits, and a sync waits on Vanta's rate limit most of the
time. When each continuation went back through the queue, the event source mapping woke a container
for it, so a run's few ranges ended up waiting in as many containers. Now an invocation with time left
runs such a step itself, at once, and the step's message still goes on the queue, delayed until after
the invocation's end: if the invocation dies, that copy runs the step; if not, the copy finds the step
committed and is dropped (a duplicate delivery, run/step.py). A run's ranges stay together in the
containers that began them, and only hand on through the queue when an invocation's time runs out.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Coroutine
from typing import Any

from vanta_vuln_sync.messages import PageRange

# SQS delays a message by at most 15 minutes (more than any invocation's time left).
MAX_DELAY_SECONDS = 900
# The queue's copy becomes visible this long after the invocation's end.
COPY_MARGIN_SECONDS = 2


class FollowUps:
    """The steps one record's invocation took on (see the module doc). `run(p, remaining)` runs one of
    them with its own time left (and takes on what it hands on); `remaining()` is the invocation's time
    left; `slots` the container's ranges in flight; no step is taken on with less than `min_seconds`
    left; each leaves up to `stagger` of the time left at its start unused."""

    def __init__(
        self,
        run: Callable[[PageRange, Callable[[], float]], Coroutine[Any, Any, None]],
        *,
        remaining: Callable[[], float],
        slots: asyncio.Semaphore,
        min_seconds: float,
        stagger: float = 0.0,
    ) -> None:
        self._run = run
        self._remaining = remaining
        self._slots = slots
        self._min_seconds = min_seconds
        self._stagger = stagger
        self._tasks: set[asyncio.Task[None]] = set()

    def take(self, p: PageRange, *, extra_slot: bool) -> int | None:
        """Take step `p` on here, started at once, if the invocation has the time (and, for a new range,
        `extra_slot`, the container a free slot): returns how long its queue copy is to be delayed, or
        None (send it as it is)."""
        left = self._remaining()
        if left < self._min_seconds or (extra_slot and self._slots.locked()):
            return None
        # Each step taken on leaves a share of the time left unused, drawn at random (up to `stagger`):
        # the ranges of one invocation share its end, and handing on all at once, in the same
        # seconds, is what a hand-off's reserve cannot foresee.
        early = random.uniform(0.0, self._stagger) * left
        task = asyncio.create_task(self._run(p, lambda: self._remaining() - early))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return min(MAX_DELAY_SECONDS, math.ceil(left) + COPY_MARGIN_SECONDS)

    async def wait(self) -> None:
        """Until every step taken on (and every step those took on) has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks)
