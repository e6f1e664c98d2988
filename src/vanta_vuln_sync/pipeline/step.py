"""One step of a page range: fetch pages, write them to S3, commit progress, hand on the rest.

Order per step, and why each crash point is safe:
1. fetch up to `page_budget` pages (stop early when the invocation's time runs low);
2. write them to the step's deterministic S3 key: a crash after this re-runs the step, which
   overwrites the same key;
3. commit with one conditional transaction (range `next_seq` = this seq, run counters): a crash after
   this leaves the message to be redelivered, and the redelivery sees the step committed and only
   repeats what follows (re-sending the continuation or Finalize, both harmless twice);
4. enqueue the continuation, or when this step closed the run's last range, a Finalize.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from vanta_vuln_sync.messages import Finalize, PageRange
from vanta_vuln_sync.pipeline.queue import send_message
from vanta_vuln_sync.pipeline.services import Services
from vanta_vuln_sync.pipeline.state import DONE, FAILED, OPEN, RUNNING, RangeState, StepCommit
from vanta_vuln_sync.pipeline.storage import NdjsonGzipWriter, put_raw, raw_key
from vanta_vuln_sync.vanta import ClientError, VantaClient
from vanta_vuln_sync.vanta.cursors import decode_offset

# Not a child logger: children made before the handler's logger (import order) are orphaned; Logger
# instances of one service share one handler and one set of context keys anyway.
logger = Logger()
tracer = Tracer()


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
    page_range: PageRange, *, services: Services, remaining: Callable[[], float]
) -> StepResult:
    """Run one step of `page_range`; `remaining()` is the invocation's seconds left.

    Raises UnknownRunError for a run the table does not hold. A Vanta 400/403 fails the range and its run
    (returned as `failed`, nothing to retry). Other Vanta or AWS errors propagate: the message is
    retried, and as nothing was committed the retry repeats the step from the same cursor.
    """
    p = page_range
    store = services.store
    run = await store.get_run(p.run_id)
    if run is None:
        raise UnknownRunError(f"run {p.run_id} is not in the state table (expired or never planned)")
    if run.status != RUNNING:
        logger.info("run already ended; dropping step", extra={"status": run.status, "seq": p.seq})
        return StepResult(committed=False)
    progress = await store.get_range(p.run_id, p.resource, p.shard)
    if progress is not None and progress.next_seq > p.seq:
        await _repeat_hand_on(p, progress, services)
        return StepResult(committed=False)
    if (progress is None and p.seq > 0) or (progress is not None and progress.next_seq < p.seq):
        logger.warning("step arrived ahead of its range's progress; dropping it", extra={"seq": p.seq})
        return StepResult(committed=False)

    started = time.monotonic()
    client = services.vanta()
    try:
        commit = await _fetch_and_write(p, client, services, remaining)
    except ClientError as exc:
        await fail_run(
            p.run_id,
            f"{p.resource}/{p.shard} step {p.seq}: Vanta refused ({exc.status}): {exc}",
            services=services,
        )
        return StepResult(committed=False, failed=True)
    if not await store.commit_step(p, commit):
        # Committed already: by another delivery, or by this one when DynamoDB applied the write but its
        # reply was lost and the SDK's retry failed the condition. Either way, redo what follows a commit
        # (a second continuation or Finalize is a no-op), so a lost reply cannot stall the range.
        progress = await store.get_range(p.run_id, p.resource, p.shard)
        if progress is not None:
            await _repeat_hand_on(p, progress, services)
        logger.info("step was already committed; repeated only its hand-on", extra={"seq": p.seq})
        return StepResult(committed=False)
    _record_metrics(services, commit, time.monotonic() - started)
    continuation = None
    if commit.done:
        await _finalize_if_last_range(p, services)
    else:
        continuation = replace(p, seq=p.seq + 1, cursor=commit.next_cursor, offset=commit.next_offset)
        await _hand_on(continuation, services)
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


async def _fetch_and_write(
    p: PageRange, client: VantaClient, services: Services, remaining: Callable[[], float]
) -> StepCommit:
    settings = services.settings
    # Hand on while there is time left for a slow page, the S3 write, the commit and the enqueue.
    reserve = settings.vanta.request_timeout + 15.0
    writer = NdjsonGzipWriter()
    cursor, offset, pages, done = p.cursor, p.offset, 0, False
    while pages < p.page_budget and not (pages and remaining() < reserve):
        size = settings.page_size
        if p.end_offset is not None and offset is not None:
            size = max(1, min(size, p.end_offset - offset))
        page = await client.fetch_page(p.resource, p.filters, cursor=cursor, page_size=size)
        writer.write(page.records)
        pages += 1
        if offset is not None:
            decoded = decode_offset(page.end_cursor) if page.end_cursor else None
            offset = decoded + 1 if decoded is not None else offset + len(page.records)
        reached_end = p.end_offset is not None and offset is not None and offset >= p.end_offset
        if not page.has_next_page or reached_end or page.end_cursor is None:
            done = True
            break
        cursor = page.end_cursor
    key = None
    if writer.records:
        key = raw_key(p.resource, p.run_id, p.shard, p.seq)
        await put_raw(services.aws.s3, settings.data_bucket, key, writer.finish())
    counters = client.counters
    return StepCommit(
        seq=p.seq,
        records=writer.records,
        pages=pages,
        object_key=key,
        done=done,
        next_cursor=None if done else cursor,
        next_offset=None if done else offset,
        requests=counters.requests,
        retries=counters.retries,
        throttled=counters.throttled,
    )


async def _repeat_hand_on(p: PageRange, progress: RangeState, services: Services) -> None:
    """A step already committed is delivered again: redo only what may not have happened after its
    commit (a crash between commit and enqueue). Later steps' messages are left alone."""
    if progress.next_seq != p.seq + 1:
        return
    if progress.status == OPEN and progress.handed_on < p.seq:
        continuation = replace(p, seq=p.seq + 1, cursor=progress.next_cursor, offset=progress.next_offset)
        await _hand_on(continuation, services)
    elif progress.status == DONE:
        await _finalize_if_last_range(p, services)


async def _finalize_if_last_range(p: PageRange, services: Services) -> None:
    """Count the range done (once) and enqueue Finalize when it was the run's last.

    `count_range_done` is None when the range was counted already, by an earlier delivery or by this
    call when DynamoDB's reply was lost after the write; the run item then says whether all are done.
    """
    store = services.store
    run = await store.count_range_done(p.run_id, p.resource, p.shard) or await store.get_run(p.run_id)
    if run is not None and run.status == RUNNING and run.all_ranges_done and not run.finalize_sent:
        await _send_finalize(p.run_id, services)


async def _hand_on(continuation: PageRange, services: Services) -> None:
    c = continuation
    await send_message(services.aws.sqs, services.settings.page_queue_url, c)
    await services.store.mark_handed_on(c.run_id, c.resource, c.shard, c.seq - 1)


async def _send_finalize(run_id: str, services: Services) -> None:
    await send_message(services.aws.sqs, services.settings.page_queue_url, Finalize(run_id))
    await services.store.mark_finalize_sent(run_id)
    logger.info("last range committed; Finalize enqueued", extra={"run_id": run_id})


async def fail_run(run_id: str, reason: str, *, services: Services) -> None:
    """Mark the run failed with `reason` (once) and free its scope for the next request."""
    store = services.store
    if await store.finish_run(run_id, FAILED, failure=reason):
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
