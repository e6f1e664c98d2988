"""How many ranges a run keeps in flight: enough to use Vanta's rate limit, and no more.

A sync is bound by the rate limit. A range walks its pages one request at a time, so by Little's law the
fleet uses a limit of L requests a minute with L / 60 x cycle ranges in flight, where `cycle` is what a
range spends on a page besides waiting for its rate slot: Vanta's round trip and the worker's own work.
Ranges beyond that only wait for slots, in containers Lambda bills by the GB-second: at the template's
defaults (50/min, 5 workers x 10 ranges in flight) the fixed 50 ranges cost 7.5 x the floor, one
256 MB container waiting out the bound (loadtest/results/production/summary.md).
"""

from __future__ import annotations

import math

# The survey's pages hold one record; a range's hold 100 (a hundred times the JSON to build, send and
# parse), so a range's round trip is taken as twice the survey's. Overstating it costs containers that
# wait; understating it leaves rate slots unused, which costs the sync's time.
FULL_PAGE_FACTOR = 2.0
# The worker's own seconds a page besides the request: ~0.1 s of CPU at 256 MB (decode, join by id, gzip:
# README, "Function memory"), the fleet limiter's DynamoDB reservation, and the step's S3 write and
# commit spread over its pages; rounded up. A fixed term: where the limit is so high that the fleet's own
# work is the bound (a test's 60,000/min), every configured slot is used, as before.
PAGE_WORK_SECONDS = 0.25
# Twice the ranges Little's law asks for, so that half of them may be paused at once and the rest still
# take every slot: a hand-off (the S3 write, the commit, the enqueue and the next receive; ~9 s more when
# a cold 256 MB container takes the continuation), a retry's backoff (up to 20 s), a range that ended.
HEADROOM = 2.0
# Never fewer than 4: a full sync reads three resources, each by one range at least, and a fourth splits
# the longest list, so a range stalled in a cold start or a backoff leaves three to take its slots. At the
# template's defaults (50/min, answers in about a second) the formula itself asks for 4.
MIN_RANGE_SLOTS = 4


# The most ranges one container runs at once, and so the most range slots a compact run has (all of its
# ranges in one container: run/split.py). Ranges wait on the rate limit, so a container's cost is the
# waiting, not the ranges: its memory is held to HELD_PAGES whatever their count, and its CPU to
# CONTAINER_CPU by the limit (Settings.page_cpu_seconds). 50 is the template's default cap on the slots
# (5 workers x 10 ranges in flight): every run at the defaults fits, 100/min at 5 s pages planning 35.
CONTAINER_RANGES = 50
# The share of a container's CPU a compact run's pages may take (Settings.page_cpu_seconds): at 0.09 s a
# page, limits up to 400 a minute; the rest is its hand-offs, S3 writes and headroom.
CONTAINER_CPU = 0.6
# Pages a container's steps hold in memory at most between their commits: RangesInFlight's 10 ranges x
# the template's PageBudget of 50, the load tests' worst case (<= 90 MB a worker). With more ranges in a
# container than that, each step commits after its share (at least MIN_STEP_PAGES) and goes on.
HELD_PAGES = 500
MIN_STEP_PAGES = 5


def container_ranges(ranges_in_flight: int) -> int:
    """The ranges a container runs at once: a batch's `ranges_in_flight` (RangesInFlight), or a compact
    run's CONTAINER_RANGES, whose steps take each other on in the container that began them."""
    return max(ranges_in_flight, CONTAINER_RANGES)


def step_pages(page_budget: int, steps_running: int) -> int:
    """Pages a step reads before it commits: its `page_budget`, or its share of HELD_PAGES when
    `steps_running` steps share the container."""
    return min(page_budget, max(MIN_STEP_PAGES, HELD_PAGES // max(1, steps_running)))


def range_slots(per_minute: int, round_trip: float | None, cap: int) -> int:
    """The run's range slots: ranges enough to use `per_minute` requests a minute when Vanta answers the
    survey in `round_trip` seconds, with the margins above; at least MIN_RANGE_SLOTS, never more than
    `cap` (workers x ranges in flight), and `cap` when no answer was timed (`round_trip` None)."""
    if round_trip is None:
        return cap
    cycle = FULL_PAGE_FACTOR * round_trip + PAGE_WORK_SECONDS
    wanted = math.ceil(per_minute / 60 * cycle * HEADROOM)
    return max(1, min(cap, max(MIN_RANGE_SLOTS, wanted)))
