"""One SQS record of each queue, from body to outcome, with poison messages parked on first receive.

A poison message (invalid JSON, unknown type or version, missing fields, filters Vanta does not know, a
run the table does not hold) can never succeed, so it goes straight to its queue's DLQ with the reason as
a message attribute and counts as processed: SQS deletes it and the rest of the batch goes on. Every
other failure raises, so the batch reports this record as failed and SQS redelivers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from vanta_vuln_sync.messages import (
    Finalize,
    MessageError,
    PageRange,
    parse_message,
    parse_page_message,
    parse_sync_request,
)
from vanta_vuln_sync.run.admission import check_page_range, check_sync_request
from vanta_vuln_sync.run.deadline import take_on_seconds
from vanta_vuln_sync.run.follow_ups import FollowUps
from vanta_vuln_sync.run.schedule import RunCapReached, start_run
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.run.step import UnknownRunError, run_step
from vanta_vuln_sync.store.queue import park_poison, send_message

# Not a child logger: children made before the handler's logger (import order) are orphaned; Logger
# instances of one service share one handler and one set of context keys anyway.
logger = Logger()


async def process_sync_request(
    body: str,
    message_id: str,
    sent_at: datetime | None,
    *,
    services: Services,
    remaining: Callable[[], float] | None = None,
) -> str:
    """Start, resume or join the run a RequestQueue message asks for; park it if it is poison.

    Returns `started` (ranges enqueued), `joined` (the scope's running run covers it) or `parked`.
    Raises RunCapReached when the request must wait for a run slot (the record fails and comes back).
    """
    try:
        request = parse_sync_request(body)
        check_sync_request(request, services.settings)
        sent = sent_at or datetime.now(UTC)
        start = await start_run(
            request, message_id=message_id, sent_at=sent, services=services, remaining=remaining
        )
    except MessageError as exc:
        await _park(body, message_id, exc.reason, services.settings.request_dlq_url, services)
        return "parked"
    except RunCapReached as exc:
        logger.info("request waits for a run slot", extra={"message_id": message_id, "reason": str(exc)})
        raise
    return "joined" if start.joined else "started"


async def sync_request_record(record: SQSRecord, services: Services, remaining: Callable[[], float]) -> str:
    """`process_sync_request` for a RequestQueue record as Lambda delivers it."""
    sent = record.attributes.sent_timestamp
    sent_at = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None
    return await process_sync_request(
        record.body, record.message_id, sent_at, services=services, remaining=remaining
    )


async def page_record(record: SQSRecord, services: Services, remaining: Callable[[], float]) -> str:
    """`process_page_message` for a PageQueue record as Lambda delivers it."""
    return await process_page_message(record.body, record.message_id, services=services, remaining=remaining)


async def process_page_message(
    body: str, message_id: str, *, services: Services, remaining: Callable[[], float]
) -> str:
    """Run the PageRange step a PageQueue message carries (or each of the steps a PageRanges carries,
    concurrently); park it if it is poison (a poison step of a PageRanges alone).

    Returns what happened: `step` (a step committed), `failed` (Vanta refused the step for good; the run
    failed), `noop` (a duplicate, or a message for an ended run), `parked` (poison), or for a Finalize
    (one enqueued before Finalize had its own queue, or redriven from PageDLQ) `forwarded` to
    `settings.finalize_queue_url`; only without one does the worker run it (`succeeded` / `noop`); for a
    PageRanges, its steps' outcomes joined by commas. A step of a PageRanges that raises fails the
    record once every step has ended (the redelivery finds the others committed: duplicates).

    At most `container_ranges(settings.ranges_in_flight)` steps run at once per container (run/sizing.py:
    a batch's RangesInFlight, or a compact run's ranges taken on; they share its session, token and
    rate limit).
    """
    try:
        message = parse_page_message(body)
    except MessageError as exc:
        await _park(body, message_id, exc.reason, services.settings.page_dlq_url, services)
        return "parked"
    if isinstance(message, Finalize):
        finalize_queue = services.settings.finalize_queue_url
        if finalize_queue is not None:
            await send_message(services.aws.sqs, finalize_queue, message)
            logger.info("Finalize forwarded to its queue", extra={"run_id": message.run_id})
            return "forwarded"
        return await _finalize(message, body, message_id, services, services.settings.page_dlq_url)
    if isinstance(message, PageRange):
        return await _page_range(message, body, message_id, services, remaining)
    outcomes = await asyncio.gather(
        *(_page_range(p, p.to_json().decode(), message_id, services, remaining) for p in message.ranges),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return ",".join(str(outcome) for outcome in outcomes)


async def _page_range(
    message: PageRange, body: str, message_id: str, services: Services, remaining: Callable[[], float]
) -> str:
    try:
        await check_page_range(message, services.settings, services.store)
    except MessageError as exc:
        await _park(body, message_id, exc.reason, services.settings.page_dlq_url, services)
        return "parked"
    _range_keys(message, message_id)

    async def take_on(p: PageRange) -> None:
        # A step this invocation took on (run/follow_ups.py): its queue copy, delayed past the
        # invocation's end, runs it if this fails, so a failure here is logged, not raised.
        _range_keys(p, message_id)
        try:
            async with services.in_flight, services.hand_ons.running():
                await run_step(p, services=services, remaining=remaining, follow=follow, taken_on=True)
        except Exception:
            logger.exception("a step taken on failed; its queue copy runs it after this invocation")

    follow = (
        FollowUps(
            take_on,
            remaining=remaining,
            slots=services.in_flight,
            min_seconds=lambda: take_on_seconds(services.settings.handoff_seconds, services.handoffs),
            gate=services.hand_ons,
            reserve=services.settings.handoff_seconds,
        )
        if services.settings.take_on_steps
        else None
    )
    try:
        async with services.in_flight, services.hand_ons.running():
            result = await run_step(message, services=services, remaining=remaining, follow=follow)
    except UnknownRunError as exc:
        await _park(body, message_id, str(exc), services.settings.page_dlq_url, services)
        return "parked"
    finally:
        if follow is not None:
            await follow.wait()
    return "failed" if result.failed else "step" if result.committed else "noop"


def _range_keys(p: PageRange, message_id: str) -> None:
    # Context-variable keys: each record (and each step taken on) runs in its own task, so concurrent
    # ranges keep their own keys (Logger.append_keys would be shared by all of them).
    logger.thread_safe_append_keys(
        run_id=p.run_id, resource=p.resource, range=f"{p.shard}#{p.seq}", message_id=message_id
    )


async def finalize_record(record: SQSRecord, services: Services, remaining: Callable[[], float]) -> str:
    """`process_finalize_message` for a FinalizeQueue record as Lambda delivers it."""
    return await process_finalize_message(record.body, record.message_id, services=services)


async def process_finalize_message(body: str, message_id: str, *, services: Services) -> str:
    """Finish the run a FinalizeQueue message names; park it in the Finalize DLQ if it is poison.

    Returns `succeeded` (this Finalize completed the run), `noop` (the run had ended, or not every range
    was done) or `parked` (poison: not a Finalize, or a run the table does not hold).
    """
    dlq = services.settings.finalize_dlq_url
    try:
        message = parse_message(body)
        if not isinstance(message, Finalize):
            raise MessageError(f"{type(message).__name__} does not belong on the finalize queue")
    except MessageError as exc:
        await _park(body, message_id, exc.reason, dlq, services)
        return "parked"
    return await _finalize(message, body, message_id, services, dlq)


async def _finalize(
    message: Finalize, body: str, message_id: str, services: Services, dlq_url: str | None
) -> str:
    logger.thread_safe_append_keys(run_id=message.run_id, message_id=message_id)
    # Imported here: statistics and the report are needed once a run, not on a worker's cold start.
    from vanta_vuln_sync.run.finalize import finalize_run

    try:
        async with services.in_flight:
            marked = await finalize_run(message.run_id, services=services)
    except UnknownRunError as exc:
        await _park(body, message_id, str(exc), dlq_url, services)
        return "parked"
    return "succeeded" if marked else "noop"


async def _park(body: str, message_id: str, reason: str, dlq_url: str | None, services: Services) -> None:
    if dlq_url is None:
        # Without a DLQ to park it in, fail the record: SQS's redrive moves it after maxReceiveCount.
        raise MessageError(f"poison message and no DLQ configured: {reason}")
    await park_poison(services.aws.sqs, dlq_url, body, reason, message_id)
    logger.error("poison message parked in the DLQ", extra={"message_id": message_id, "reason": reason})
