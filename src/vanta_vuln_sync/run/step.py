"""One step of a page range: fetch pages, write them to S3, commit progress, hand on the rest.

Order per step, and why each crash point is safe:
1. fetch up to `page_budget` pages, each joined to the one before by id (run/walk.py; stop early
   when the invocation's time runs low);
2. write the new records to an S3 key of this step and this delivery: a crash after this re-runs the
   step, which writes its own object (the crashed delivery's is never committed and is deleted by
   Finalize);
3. commit with one conditional transaction (range `next_seq` = this seq, run counters): a crash after
   this leaves the message to be redelivered, and the redelivery sees the step committed and only
   repeats what follows (re-sending the continuation or Finalize, both harmless twice);
4. enqueue the continuation, or when this step closed the run's last range, a Finalize.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from vanta_vuln_sync.messages import Finalize, PageRange, bundled
from vanta_vuln_sync.run import split
from vanta_vuln_sync.run.deadline import DeadlineSource, deadline_of, handoff_reserve
from vanta_vuln_sync.run.follow_ups import FollowUps, SendBatch
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.run.sizing import step_pages
from vanta_vuln_sync.run.walk import (
    ChainJoin,
    HandedOver,
    PieceStart,
    Successor,
    Walk,
    next_page_start,
    walk_chain,
    walk_offsets,
)
from vanta_vuln_sync.store.checkpoints import Checkpoint, thinned
from vanta_vuln_sync.store.queue import send_message, send_messages
from vanta_vuln_sync.store.state import DONE, FAILED, OPEN, RUNNING, RangeState, StepCommit
from vanta_vuln_sync.store.storage import NdjsonGzipWriter, put_raw, raw_key
from vanta_vuln_sync.vanta import RateLimitedError, RequestRejectedError, VantaClient
from vanta_vuln_sync.vanta.errors import DeadlineReached

# Not a child logger: children made before the handler's logger (import order) are orphaned; Logger
# instances of one service share one handler and one set of context keys anyway.
logger = Logger()
tracer = Tracer()


# How long a range claimed by the range before it waits for that range's last commit, and how long its
# message then waits on the queue before it tries again (the range before died after claiming: its
# redelivery commits).
HANDED_WAIT_SECONDS = 10.0
HANDED_RETRY_DELAY_SECONDS = 30


class HandOverPending(Exception):
    """The range before claimed this one but has not committed its last step yet."""


class FirstPageLater(Exception):
    """A range's first step read no page (no request fitted before the invocation's deadline, or
    Vanta's 429s outlasted the retry budget): the step is sent again later instead of committed, since
    only a first step that reads its first page publishes the range's head (which the range before
    stops at, or claims the range while it is missing)."""


class StepTaken(Exception):
    """Another delivery of this step committed the range's first page first: this delivery stops."""


class UnknownRunError(LookupError):
    """The message names a run the state table does not hold (expired, or never planned)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step did: `committed` is False for a duplicate delivery (nothing fetched or counted);
    `failed` is True when Vanta refused the step and the run was failed."""

    committed: bool
    failed: bool = False
    records: int = 0
    pages: int = 0
    done: bool = False
    continuation: PageRange | None = None


@tracer.capture_method
async def run_step(
    page_range: PageRange,
    *,
    services: Services,
    remaining: Callable[[], float],
    follow: FollowUps | None = None,
    taken_on: bool = False,
) -> StepResult:
    """Run one step of `page_range`; `remaining()` is the invocation's seconds left. With `follow`, the
    invocation takes on the step's continuation and the ranges it splits off while it has time
    (run/follow_ups.py); their messages are then sent delayed past its end. `taken_on`: this invocation
    took the step on itself (it did not come from the queue).

    Raises UnknownRunError for a run the table does not hold. A Vanta 400/403 fails the range and its run
    (returned as `failed`, nothing to retry). 429s that outlast the retry budget end the step like its
    deadline does: what was read is committed and the rest handed on, after a pause. Other Vanta or AWS
    errors propagate: the message is retried, and as nothing was committed the retry repeats the step
    from the same cursor.
    """
    p = page_range
    store = services.store
    run = await store.get_run(p.run_id)
    if run is None:
        raise UnknownRunError(f"run {p.run_id} is not in the state table (expired or never planned)")
    if run.status != RUNNING:
        logger.info("run already ended; dropping step", extra={"status": run.status, "seq": p.seq})
        return StepResult(committed=False)
    compact = split.compact(run.range_slots, services.settings)
    if not compact:
        follow = None  # a larger run steps through the queue and does not split (run/split.py)
    progress = await store.get_range(p.run_id, p.resource, p.shard)
    if progress is not None and progress.next_seq > p.seq:
        await _repeat_hand_on(p, progress, services)
        return StepResult(committed=False)
    if (progress is None and p.seq > 0) or (progress is not None and progress.next_seq < p.seq):
        logger.warning("step arrived ahead of its range's progress; dropping it", extra={"seq": p.seq})
        return StepResult(committed=False)

    if progress is not None and progress.spawn is not None:
        if not progress.spawn_sent:
            # An earlier delivery of this step split the range and died before settling the split.
            await split.settle(store, p, progress.spawn, _sender(services))
            progress = await store.get_range(p.run_id, p.resource, p.shard)
        if progress is not None:
            # The range's end as its item has it: a split by an uncommitted delivery moved it.
            p = replace(p, end_offset=progress.end_offset, next_shard=progress.next_shard)

    started = time.monotonic()
    client = services.vanta()
    try:
        first, commit, walked, out_of_time = await _fetch_and_write(
            p, client, services, remaining, follow, compact, taken_on=taken_on
        )
    except RequestRejectedError as exc:
        await fail_run(
            p.run_id,
            f"{p.resource}/{p.shard} step {p.seq}: Vanta refused ({exc.status}): {exc}",
            services=services,
        )
        return StepResult(committed=False, failed=True)
    except HandOverPending as exc:
        logger.info("waiting for the range before to commit its end", extra={"reason": str(exc)})
        await send_message(
            services.aws.sqs, services.settings.page_queue_url, p, delay_seconds=HANDED_RETRY_DELAY_SECONDS
        )
        return StepResult(committed=False)
    except FirstPageLater:
        logger.info("no page read (deadline or throttling): the first step goes again later")
        if follow is not None and (taken_on or follow.ending()):
            # Its invocation took it on, or its invocation's end stopped it: it goes with the
            # container's other steps, to one invocation, not alone to a container of its own for the
            # rest of the run.
            await follow.hand_on(p, _send_bundle(services))
        else:
            delay = services.settings.idle_step_delay_seconds
            await send_message(services.aws.sqs, services.settings.page_queue_url, p, delay_seconds=delay)
        return StepResult(committed=False)
    except StepTaken:
        progress = await store.get_range(p.run_id, p.resource, p.shard)
        if progress is not None:
            await _repeat_hand_on(p, progress, services)
        logger.info("another delivery committed the range's first page; repeated only its hand-on")
        return StepResult(committed=False)
    committed = commit is None
    if commit is None:
        assert first is not None
        commit = first  # nothing was read after the first page: its commit is the step's
    elif first is not None:
        # The first page was committed with the range's head: the rest of the step is the next step.
        _record_metrics(services, first, 0.0)
        p = replace(p, seq=p.seq + 1)
    if not committed and not await store.commit_step(p, commit):
        progress = await store.get_range(p.run_id, p.resource, p.shard)
        ours = progress is not None and any(o.get("key") == commit.object_key for o in progress.objects)
        if commit.object_key is not None and not ours:
            # Another delivery committed the step: this one's object is not the step's. (When DynamoDB
            # applied this delivery's own write and lost the reply, the object is the committed one.)
            await services.aws.s3.delete_object(Bucket=services.settings.data_bucket, Key=commit.object_key)
        # Committed already: by another delivery, or by this one when DynamoDB applied the write but its
        # reply was lost and the SDK's retry failed the condition. Either way, redo what follows a commit
        # (a second continuation or Finalize is a no-op), so a lost reply cannot stall the range.
        if progress is not None:
            await _repeat_hand_on(p, progress, services)
        logger.info("step was already committed; repeated only its hand-on", extra={"seq": p.seq})
        return StepResult(committed=False)
    _record_metrics(services, commit, time.monotonic() - started)
    continuation = None
    if commit.done:
        await _finalize_if_last_range(p, services)
    else:
        continuation = _next_step(p, commit)
        delay = commit.wait_seconds
        if not delay and follow is not None and not out_of_time:
            # (One its invocation's time stopped goes through the gate with the container's others:
            # taken on, it stopped again before its first request, and went to the queue alone.)
            delay = follow.take(continuation, extra_slot=False) or 0
        await _hand_on(continuation, services, delay_seconds=delay, follow=follow)
    services.handoffs.record(time.monotonic() - walked)
    logger.info(
        "range step committed",
        extra={"seq": p.seq, "records": commit.records, "pages": commit.pages, "done": commit.done},
    )
    return StepResult(
        committed=True,
        records=commit.records,
        pages=commit.pages,
        done=commit.done,
        continuation=continuation,
    )


class Fetched(NamedTuple):
    """What a step's walk read, written: `first`, the first page's commit when the step published the
    range's head and so committed that page already as step `p.seq`; `rest`, what is left to commit, as
    step `p.seq` or, after a first page's commit, `p.seq + 1` (None when nothing was read after the
    first page); `walked`, when the walk stopped (monotonic): the hand-off is timed from there;
    `out_of_time`, whether the invocation's deadline stopped it (not its page budget nor the range's end)."""

    first: StepCommit | None
    rest: StepCommit | None
    walked: float
    out_of_time: bool


async def _fetch_and_write(
    p: PageRange,
    client: VantaClient,
    services: Services,
    remaining: Callable[[], float],
    follow: FollowUps | None,
    compact: bool,
    *,
    taken_on: bool,
) -> Fetched:
    """Walk the step and write what it read. Raises StepTaken when another delivery committed the
    first page first."""
    settings = services.settings
    reserve = handoff_reserve(settings.handoff_seconds, services.handoffs)
    walk = Walk(
        offset=p.offset,
        cursor=p.cursor,
        anchors=p.anchors,
        verify_cursor=p.verify_cursor,
        end_offset=p.end_offset,
        next_shard=p.next_shard,
        page_index=p.page_index,
        end_page=p.end_page,
        stop_ids=p.stop_ids,
    )

    out_of_time = False

    def keep_going() -> bool:
        # Hand on while there is time left for a page (as slow as the client has seen them lately), the
        # S3 write, the commit and the enqueue; commit once the step has read its share of what the
        # container may hold in memory (run/sizing.py), when more steps than RangesInFlight share it.
        nonlocal out_of_time
        if walk.requests == 0:
            return True
        out_of_time = remaining() < client.attempt_allowance() + reserve
        return not out_of_time and walk.requests < step_pages(p.page_budget, services.hand_ons.steps)

    first: StepCommit | None = None

    async def publish_head(head: list[str]) -> bool:
        # The head and the page it heads are committed at once (step `p.seq`): whatever happens to
        # this delivery afterwards, the records from the head on are the range's, as the range before
        # it will take them to be once it stops at the head.
        nonlocal first
        commit = replace(
            await _write_and_describe(p, client, walk, services, since=None), publishes_head=True
        )
        store = services.store
        committed = await store.commit_step(p, commit)
        progress = None if committed else await store.get_range(p.run_id, p.resource, p.shard)
        if progress is not None and any(o.get("key") == commit.object_key for o in progress.objects):
            committed = True  # DynamoDB applied this delivery's write and its reply was lost
        if committed:
            first = commit
            walk.records.clear()
            walk.checkpoints.clear()
            walk.warnings.clear()
            walk.began = False
            return True
        if commit.object_key is not None:
            await services.aws.s3.delete_object(Bucket=settings.data_bucket, Key=commit.object_key)
        if progress is not None and progress.next_seq > p.seq:
            raise StepTaken(f"step {p.seq} of {p.shard} was committed by another delivery")
        return False  # handed over by the range before

    async def join(shard: str) -> list[str] | None:
        store = services.store
        progress = await store.get_range(p.run_id, p.resource, shard)
        if (progress is None or progress.head is None) and not (progress and progress.handed_over):
            progress = await store.hand_over(p.run_id, p.resource, shard, by=p.shard)
        if progress is None or progress.handed_over:
            logger.info("the next range, not begun, starts where this one ends", extra={"next": shard})
            return None
        return progress.head

    async def join_chain(shard: str, claim: bool) -> Successor | None:
        store = services.store
        progress = await store.get_range(p.run_id, p.resource, shard)
        if progress is not None and progress.void:
            return Successor(
                void=True,
                next_shard=progress.void_next,
                stop_ids=progress.void_stop_ids,
                end_page=progress.void_end_page,
            )
        if progress is not None and progress.handed_over:
            return None  # claimed already (by an earlier delivery of this range)
        if (progress is None or progress.head is None) and claim:
            progress = await store.hand_over(p.run_id, p.resource, shard, by=p.shard)
            if progress is None:
                logger.info("the next piece, not begun, starts where this one ends", extra={"next": shard})
                return None
            if progress.void or progress.handed_over:
                return await join_chain(shard, claim)
        return Successor(head=None if progress is None else progress.head)

    quiet = 0  # pages left before the range asks for a split again

    async def split_off() -> bool:
        # Between two pages of an offset range whose head is committed: give the range's far end to
        # a new range while the run has a range slot free (run/split.py).
        nonlocal quiet
        if (
            not compact
            or (first is None and p.seq == 0)
            or remaining() < 2 * (client.attempt_allowance() + reserve)
            or (follow is not None and not follow.room_for_a_range())
        ):
            # A split's few writes must not push the step's hand-off past the invocation's end, and the
            # new range must stay in this container: sent alone, it would begin a second one.
            return False
        if quiet:
            quiet -= 1
            return False
        assert walk.offset is not None
        # The split is on a page boundary of the range as it reads on: its next page starts at the last
        # record read (pages overlap by one), so that its last page ends on the new range's first record.
        spawn = await split.offer(
            services.store,
            p,
            p.seq + 1 if first is not None else p.seq,
            next_page_start(walk),
            (walk.end_offset, walk.next_shard),
            page_size=settings.page_size,
            send=_sender(services, follow),
        )
        if spawn is None:
            quiet = split.ASK_EVERY_PAGES - 1
            return False
        logger.info("range split: a new range reads its far end", extra={"new": spawn.shard})
        services.count("RangesSplit", 1)
        walk.end_offset, walk.next_shard = spawn.offset, spawn.shard
        return True

    source = DeadlineSource(client, deadline_of(remaining, services.clock, reserve))
    pause = 0
    try:
        await _walk(p, source, walk, services, keep_going, join, join_chain, publish_head, split_off)
    except DeadlineReached:
        # The next request's rate slot or end falls past the invocation's safe end: commit what was
        # read (every page so far is whole) and hand the rest on.
        logger.info("stopping the step before the invocation's deadline", extra={"seq": p.seq})
        out_of_time = True
    except RateLimitedError as exc:
        # Vanta kept answering 429 for the whole retry budget (its limit is below the fleet's, whose
        # limiter has paused and lowered its rate): commit what was read and hand the rest on after a
        # pause. Failing the message would bring it back only after the queue's visibility timeout
        # (six times the function's), to read these pages again. VantaThrottled alarms if it persists.
        logger.warning("Vanta kept throttling: the rest goes on after a pause", extra={"reason": str(exc)})
        pause = settings.idle_step_delay_seconds
    walked = time.monotonic()
    if first is not None:
        if walk.requests == first.pages and not walk.done and not walk.records and not walk.warnings:
            return Fetched(replace(first, wait_seconds=pause), None, walked, out_of_time)
        rest = replace(p, seq=p.seq + 1)
        commit = await _write_and_describe(rest, client, walk, services, since=first)
        return Fetched(first, replace(commit, wait_seconds=pause), walked, out_of_time)
    if walk.requests == 0 and not walk.done and p.seq == 0 and walk.head is None:
        # Committing this empty step would leave the range without a head for good (later steps never
        # publish one), and the range before would stop short of its start, claiming it.
        raise FirstPageLater(f"step 0 of {p.shard}: no page read before the deadline or the retry budget")
    commit = await _write_and_describe(p, client, walk, services, since=None)
    if walk.requests == 0 and not commit.done and not (follow is not None and (taken_on or follow.ending())):
        # Not one request fitted although the step came from the queue to an invocation with the time:
        # the fleet's rate budget is booked past it. The next step waits on the queue a while instead of
        # spinning through empty invocations. (One its invocation took on, or one its invocation's end
        # stopped, goes with the container's other steps: alone and delayed, it began a container of its
        # own for the rest of the run.)
        pause = settings.idle_step_delay_seconds
    return Fetched(None, replace(commit, wait_seconds=pause), walked, out_of_time)


async def _walk(
    p: PageRange,
    source: DeadlineSource,
    walk: Walk,
    services: Services,
    keep_going: Callable[[], bool],
    join: Callable[[str], Awaitable[list[str] | None]],
    join_chain: ChainJoin,
    publish_head: Callable[[list[str]], Awaitable[bool]],
    split_off: Callable[[], Awaitable[bool]],
) -> None:
    settings = services.settings
    if p.offset is not None:
        if p.seq == 0:
            # Handed over by the range before: go on from where it ended (no head to publish).
            await _start_handed_over(
                p, walk, await services.store.get_range(p.run_id, p.resource, p.shard), services, source
            )
        try:
            await _walk_offsets(p, source, walk, services, keep_going, join, publish_head, split_off)
        except HandedOver:
            # The range before stopped short of this one's start while this step read its first page.
            walk.records.clear()
            progress = await services.store.get_range(p.run_id, p.resource, p.shard)
            handed = await _start_handed_over(p, walk, progress, services, source)
            assert handed
            await _walk_offsets(p, source, walk, services, keep_going, join, publish_head, split_off)
    else:
        piece_start = None
        beginning = p.seq == 0
        if p.start_ids:
            # A piece starting at a checkpoint, until it has read its first page (a step stopped by the
            # deadline before it may not have): unless the piece before handed over to it, it checks
            # where its cursor lands, publishes its head, or steps aside (run/walk.py).
            progress = await services.store.get_range(p.run_id, p.resource, p.shard)
            if progress is not None and progress.void:
                walk.void = walk.done = True  # stepped aside in an earlier delivery of this step
                return
            beginning = p.seq == 0 or progress is None or progress.head is None
            if beginning and not await _start_handed_over(p, walk, progress, services, source):
                piece_start = PieceStart(
                    start_ids=p.start_ids,
                    publish_head=publish_head,
                    step_aside=lambda: services.store.step_aside(p),
                )

        async def chain(piece: PieceStart | None) -> None:
            await walk_chain(
                source,
                p.resource,
                p.filters,
                walk,
                first_step=beginning,
                page_budget=p.page_budget,
                page_size=settings.page_size,
                keep_going=keep_going,
                join=join_chain if walk.next_shard is not None else None,
                piece_start=piece,
            )

        try:
            await chain(piece_start)
        except HandedOver:
            walk.records.clear()
            walk.checkpoints.clear()
            progress = await services.store.get_range(p.run_id, p.resource, p.shard)
            handed = await _start_handed_over(p, walk, progress, services, source)
            assert handed
            await chain(None)


async def _start_handed_over(
    p: PageRange, walk: Walk, progress: RangeState | None, services: Services, source: DeadlineSource
) -> bool:
    """Set `walk` to start where the range that claimed this one ends, if one did (True): its
    committed progress, once it has committed its last step (up to HANDED_WAIT_SECONDS). A handed-over
    range publishes no head (the range before ended at its start). Raises HandOverPending when the
    range before has not committed its last step yet."""
    if progress is None or progress.handed_by is None:
        return False
    # Never past the step's safe end (a step taken on may start with little of its invocation left).
    waited_until = services.clock() + HANDED_WAIT_SECONDS
    if source.deadline is not None:
        waited_until = min(waited_until, source.deadline)
    while True:
        before = await services.store.get_range(p.run_id, p.resource, progress.handed_by)
        if before is not None and before.status == DONE:
            break
        if services.clock() >= waited_until:
            raise HandOverPending(f"{progress.handed_by} claimed {p.shard} but has not committed its end yet")
        await asyncio.sleep(0.2)
    if p.offset is not None:
        walk.offset = before.next_offset if before.next_offset is not None else p.offset
    else:
        walk.cursor, walk.verify_cursor, walk.page_index = (
            before.next_cursor,
            before.next_verify,
            before.next_page_index,
        )
    walk.anchors, walk.head = before.next_anchors, []
    walk.began = True  # its (empty) head is committed: later steps go on from their own progress
    return True


async def _write_and_describe(
    p: PageRange, client: VantaClient, walk: Walk, services: Services, *, since: StepCommit | None
) -> StepCommit:
    """Write the walk's records to this step's object and describe step `p.seq` for its commit; the
    counts are those since `since` (the first page's commit of this delivery, if any)."""
    settings = services.settings
    for warning in walk.warnings:
        logger.warning("run is not exact", extra={"warning": warning, "seq": p.seq})
        await services.store.add_warning(p.run_id, f"{p.shard}: {warning}")
    key = None
    if walk.records:
        writer = NdjsonGzipWriter()
        writer.write(walk.records)
        key = raw_key(p.resource, p.run_id, p.shard, p.seq, secrets.token_hex(4))
        await put_raw(services.aws.s3, settings.data_bucket, key, writer.finish())
    counters = client.counters
    checkpoints = None
    if p.offset is None and (walk.checkpoints or p.seq > 0):
        committed: list[Checkpoint] = []
        if p.seq > 0:
            progress = await services.store.get_range(p.run_id, p.resource, p.shard)
            committed = progress.checkpoints if progress is not None else []
        checkpoints = thinned([*committed, *walk.checkpoints])
    return StepCommit(
        seq=p.seq,
        records=len(walk.records),
        pages=walk.requests - (since.pages if since else 0),
        object_key=key,
        done=walk.done,
        # Kept when the range is done too: a range it claimed starts where it ends.
        next_cursor=walk.cursor,
        next_offset=walk.offset,
        requests=counters.requests - (since.requests if since else 0),
        retries=counters.retries - (since.retries if since else 0),
        throttled=counters.throttled - (since.throttled if since else 0),
        next_anchors=walk.anchors,
        next_verify=walk.verify_cursor,
        head=walk.head if p.seq == 0 or walk.began else None,
        end_offset=walk.end_offset,
        next_shard=walk.next_shard,
        next_page_index=walk.page_index,
        next_stop_ids=walk.stop_ids,
        next_end_page=walk.end_page,
        checkpoints=checkpoints,
    )


async def _walk_offsets(
    p: PageRange,
    client: DeadlineSource,
    walk: Walk,
    services: Services,
    keep_going: Callable[[], bool],
    join: Callable[[str], Awaitable[list[str] | None]],
    publish_head: Callable[[list[str]], Awaitable[bool]],
    split_off: Callable[[], Awaitable[bool]],
) -> None:
    await walk_offsets(
        client,
        p.resource,
        p.filters,
        walk,
        first_step=p.seq == 0 and walk.head is None,
        page_budget=p.page_budget,
        page_size=services.settings.page_size,
        keep_going=keep_going,
        join=join,
        publish_head=publish_head,
        split=split_off,
    )


async def _repeat_hand_on(p: PageRange, progress: RangeState, services: Services) -> None:
    """A step already committed is delivered again: redo only what may not have happened after its
    commit (a crash between commit and enqueue). Later steps' messages are left alone.

    A first step's delivery may have committed two steps, its first page with the range's head as
    `p.seq` and the rest as `p.seq + 1` (run_step): when the range stands at `p.seq + 2` and nothing
    was ever enqueued after `p`, that second step was this delivery's own, and its continuation is
    enqueued here (else the range would stand still for good, with no message left to move it)."""
    if progress.next_seq == p.seq + 2 and progress.handed_on < p.seq:
        p = replace(p, seq=p.seq + 1)
    if progress.next_seq != p.seq + 1:
        return
    if progress.status == OPEN and progress.handed_on < p.seq:
        await _hand_on(_next_step(p, progress), services)
    elif progress.status == DONE:
        await _finalize_if_last_range(p, services)


def _next_step(p: PageRange, where: StepCommit | RangeState) -> PageRange:
    """The continuation of step `p` from where its commit (or the committed progress) left the range."""
    return replace(
        p,
        seq=p.seq + 1,
        cursor=where.next_cursor,
        offset=where.next_offset,
        anchors=where.next_anchors,
        verify_cursor=where.next_verify,
        end_offset=where.end_offset,
        next_shard=where.next_shard,
        page_index=where.next_page_index,
        end_page=where.next_end_page,
        stop_ids=where.next_stop_ids,
    )


async def _finalize_if_last_range(p: PageRange, services: Services) -> None:
    """Count the range done (once) and enqueue Finalize when it was the run's last.

    `count_range_done` is None when the range was counted already, by an earlier delivery or by this
    call when DynamoDB's reply was lost after the write; the run item then says whether all are done.
    """
    store = services.store
    run = await store.count_range_done(p.run_id, p.resource, p.shard) or await store.get_run(p.run_id)
    if run is not None and run.status == RUNNING and run.all_ranges_done and not run.finalize_sent:
        await _send_finalize(p.run_id, services)


def _sender(services: Services, follow: FollowUps | None = None) -> Callable[[PageRange], Awaitable[None]]:
    """How a range split off is sent: taken on by this invocation when it can (`follow`), its message
    then delayed past the invocation's end; else as it is."""

    async def send(page_range: PageRange) -> None:
        delay = follow.take(page_range, extra_slot=True) if follow is not None else None
        await send_message(
            services.aws.sqs, services.settings.page_queue_url, page_range, delay_seconds=delay or 0
        )

    return send


async def _hand_on(
    continuation: PageRange, services: Services, *, delay_seconds: int = 0, follow: FollowUps | None = None
) -> None:
    """Send the continuation (delayed, or with the container's others through `follow`'s gate) and
    mark the step handed on."""
    c = continuation
    if follow is not None and not delay_seconds:
        await follow.hand_on(c, _send_bundle(services))
    else:
        await send_message(services.aws.sqs, services.settings.page_queue_url, c, delay_seconds=delay_seconds)
    await services.store.mark_handed_on(c.run_id, c.resource, c.shard, c.seq - 1)


def _send_bundle(services: Services) -> SendBatch:
    """How the hand-on gate sends a container's steps: as few PageRanges messages as hold them."""
    queue = services.settings.page_queue_url
    return lambda batch: send_messages(services.aws.sqs, queue, bundled(batch))


async def _send_finalize(run_id: str, services: Services) -> None:
    settings = services.settings
    await send_message(
        services.aws.sqs, settings.finalize_queue_url or settings.page_queue_url, Finalize(run_id)
    )
    await services.store.mark_finalize_sent(run_id)
    logger.info("last range committed; Finalize enqueued", extra={"run_id": run_id})


async def fail_run(run_id: str, reason: str, *, services: Services) -> None:
    """Mark the run failed with `reason` (once) and free its scope for the next request."""
    store = services.store
    if await store.finish_run_once(run_id, FAILED, failure=reason, finisher=uuid.uuid4().hex):
        services.count("RunsFailed", 1)
        logger.error("run failed", extra={"failure": reason})
    run = await store.get_run(run_id)
    if run is not None:
        await store.release_scope(run.scope, run_id, None, started_at=run.started_at)


def _record_metrics(services: Services, commit: StepCommit, seconds: float) -> None:
    services.count("PagesFetched", commit.pages)
    services.count("RecordsWritten", commit.records)
    services.count("Retries", commit.retries)
    services.count("Throttled", commit.throttled)
    services.count("RangeSeconds", seconds, MetricUnit.Seconds)
