"""Ranges that split themselves: no survey of a list's length, and no range slot left idle.

A run plans its offset ranges from the last run's record counts; a first run knows none, and plans one
open range a resource, from its start. While the run has fewer ranges open than its range slots
(run/sizing.py), a range walking its part gives the part's far end to a new range, between two pages:

- a range with a planned end gives away the second half of what it has left, if that is at least
  2 x MIN_PAGES_PER_RANGE pages and no range with an end has more left, as the ranges' last commits
  stand (work stealing from the longest, done by the range that owns the work, so nothing it is reading
  can move under it; halving whichever range saw the free slot first cut ranges down to the minimum,
  216 ranges for 2,000 pages at 5 s pages);
- the range at a list's open end, whose length nobody knows, keeps as much again as the list before it
  (its offset, at least MIN_PAGES_PER_RANGE pages) and gives away everything after that: open ranges
  double their way to the list's end as a first run's probes did, but every request reads records. A
  range that starts past the end costs one request (an empty page), once a resource.

The new range is an offset range like a planned one: it begins at a page boundary of the range it came
from (that one's last page ends on its first record) and ends where that one was to end, joined by id
(run/walk.py). The steps, each safe to repeat after a crash:
1. `propose_split` records the split on the range's item (its end and successor become the new range's
   start and name; the new range is kept there, unsettled), only if the step is not committed;
2. `claim_range_slot` counts the new range into the run, only if no other range took the free slot
   meanwhile; the run cannot finish in between, since the splitting range is open;
3. the new range's message is sent and the split marked settled; or, when the slot was taken,
   `settle_split` puts the range's end back.
A delivery of the step that finds an unsettled split (its delivery before died between 1 and 3) settles
it before it walks (`settle`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from vanta_vuln_sync.messages import PageRange
from vanta_vuln_sync.run.planner import MAX_RANGES, MIN_PAGES_PER_RANGE, records_per_page
from vanta_vuln_sync.run.sizing import CONTAINER_CPU, CONTAINER_RANGES
from vanta_vuln_sync.settings import Settings
from vanta_vuln_sync.store.models import RUNNING, RunState
from vanta_vuln_sync.store.state import RunStore
from vanta_vuln_sync.vanta.cursors import cursor_before

Send = Callable[[PageRange], Awaitable[None]]

# A range that found nothing to split (no slot free, or not the range with the most left) asks again
# this many pages later, not at every page: each ask reads the run's item (and the ranges' progress).
# Measured 2026-11-30 on 2,000 pages at 100/min, 10 x scaled: asking every page, 2,862 DynamoDB reads
# and 1.128 x the bound at 2 s pages (22 slots), 1.41 x at 5 s (42 slots); every fourth, 1,342 reads,
# 1.068 x and 1.108 x.
ASK_EVERY_PAGES = 4


def compact(range_slots: int, settings: Settings) -> bool:
    """Whether a run of `range_slots` fits in one container (`max_compact_slots`): only such a run plans
    a first run's lists as open ranges, splits its ranges and takes steps on (run/follow_ups.py), so its
    ranges stay in the container that began them.

    A larger one is planned as one wave from probed lengths and steps through the queue. Measured
    2026-11-30 (loadtest, one run each, real-equivalent time / bound, cost / floor), compact against
    wave: 2,000 pages at 100/min, 10 x scaled, 10 slots at 0.2 s pages 1.058 x / 4.9 x against 1.13 x /
    7.9 x; 22 slots at 2 s 1.068 / 4.8 against 1.076 / 5.3; 42 slots at 5 s 1.108 / 5.8 against 1.112 /
    6.4; unscaled, 301 pages at 100/min and 1 s, 8 slots: 1.08 x with 3 planning requests against 1.13 x
    with 23; 252 pages at 240/min and 1.5 s, 26 slots: 75 s against 85 s (bound 63 s).
    """
    return range_slots <= max_compact_slots(settings)


def max_compact_slots(settings: Settings) -> int:
    """The most range slots a compact run has: CONTAINER_RANGES, or none at a rate limit whose pages
    would take more than CONTAINER_CPU of one container's CPU (`settings.page_cpu_seconds` a page)."""
    pace = settings.vanta.rate_limit_per_minute / 60 * settings.page_cpu_seconds
    return CONTAINER_RANGES if pace <= CONTAINER_CPU else 0


def split_offset(offset: int, end_offset: int | None, page_size: int) -> int | None:
    """Where a range whose next page starts at `offset` (run/walk.py: `next_page_start`) and planned to
    end at `end_offset` (None: the list's open end) splits, on one of its own page boundaries (the first
    record of one of its pages, which its page before ends on: no request is spent on the join); None
    when what it has left is too short to split."""
    per_page = records_per_page(page_size)
    if end_offset is None:
        keep = max(MIN_PAGES_PER_RANGE, offset // per_page)
    else:
        left = (end_offset - offset) // per_page
        if left < 2 * MIN_PAGES_PER_RANGE:
            return None
        keep = (left + 1) // 2
    return offset + keep * per_page


def wants_range(run: RunState | None) -> bool:
    """Whether `run` has a range slot free: it is running with fewer ranges open than its slots."""
    return (
        run is not None
        and run.status == RUNNING
        and run.ranges_total - run.ranges_done < run.range_slots
        and run.ranges_total < MAX_RANGES
    )


def spawn_of(p: PageRange, at: int, *, end_offset: int | None, next_shard: str | None) -> PageRange:
    """The range split off `p` at offset `at`, to end where `p` was to end (`end_offset`, `next_shard`)."""
    return replace(
        p,
        shard=f"x{at:09d}",
        seq=0,
        cursor=cursor_before(at),
        offset=at,
        end_offset=end_offset,
        next_shard=next_shard,
        anchors=(),
        verify_cursor=None,
    )


async def offer(
    store: RunStore,
    p: PageRange,
    seq: int,
    offset: int,
    ends: tuple[int | None, str | None],
    *,
    page_size: int,
    send: Send,
) -> PageRange | None:
    """Split range `p` (walking its step `seq`, its next page starting at `offset`, planned to end at
    `ends`: end offset and successor) if its run has a free range slot and it has enough left. Returns
    the new range, counted and sent (the walk then ends where it begins), or None (nothing changed)."""
    run = await store.get_run(p.run_id)
    if not wants_range(run):
        return None
    assert run is not None
    end_offset, next_shard = ends
    at = split_offset(offset, end_offset, page_size)
    if at is None or (end_offset is not None and not has_most_left(p, await store.ranges_left(p.run_id))):
        return None
    spawn = spawn_of(p, at, end_offset=end_offset, next_shard=next_shard)
    if not await store.propose_split(p, seq, spawn):
        return None
    return spawn if await _settle(store, p, spawn, run, send) else None


def has_most_left(p: PageRange, lefts: dict[str, int | None]) -> bool:
    """Whether `p` has the most records left of the run's ranges with an end, as their last commits
    stand (the lowest name among equals): only that one halves itself for a free slot, so the
    ranges stay as long as the slots allow instead of halving one another down to the minimum."""
    name = p.range_name
    mine = lefts.get(name)
    if mine is None:
        return False
    return not any(
        left is not None and (left > mine or (left == mine and other < name)) for other, left in lefts.items()
    )


async def settle(store: RunStore, p: PageRange, spawn: PageRange, send: Send) -> bool:
    """Settle a split an earlier delivery of `p`'s step left unsettled: count and send its range (True)
    or put the range's end back (False)."""
    run = await store.get_run(p.run_id)
    assert run is not None
    return await _settle(store, p, spawn, run, send)


async def _settle(store: RunStore, p: PageRange, spawn: PageRange, run: RunState, send: Send) -> bool:
    while spawn.range_name not in run.added_ranges:
        if not wants_range(run):
            await store.settle_split(p, spawn, kept=False)
            return False
        if await store.claim_range_slot(p.run_id, spawn.resource, spawn.shard, seen_total=run.ranges_total):
            break
        fresh = await store.get_run(p.run_id)
        assert fresh is not None
        run = fresh
    await send(spawn)
    await store.settle_split(p, spawn, kept=True)
    return True
