"""A range step: hands on when the invocation's time runs low; a Vanta 400 fails the run, no loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from vanta_vuln_sync.handlers.records import process_page_message
from vanta_vuln_sync.messages import PageRange, parse_page_message
from vanta_vuln_sync.run.services import Services

from .conftest import PlannedRange, Stack
from .drive import ThreadedDriver, deliver_requests, unbundle

EVENTS = Path(__file__).resolve().parents[2] / "events"


async def planned_ranges(deployed: Stack, services: Services) -> list[PageRange]:
    """Plan the example CRITICAL resync; returns its ranges as the scheduler enqueued them."""
    deployed.send_request((EVENTS / "sync-request-resync-critical.json").read_text())
    assert await deliver_requests(deployed, services) == ["started"]
    unbundle(deployed)
    reply = await asyncio.to_thread(
        deployed.sqs.receive_message, QueueUrl=deployed.page_queue_url, MaxNumberOfMessages=10
    )
    ranges = [parse_page_message(m["Body"]) for m in reply["Messages"]]
    return [r for r in ranges if isinstance(r, PageRange)]


@pytest.fixture
def first_range(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> Callable[..., Awaitable[PlannedRange]]:
    """Factory: `deployed, services, first = await first_range(sim={...}, PAGE_SIZE="5")` makes a stack
    (arguments as `stack`'s), opens services on it and plans the example CRITICAL resync; `first` is the
    first of its ranges."""

    async def make(**arguments: Any) -> PlannedRange:
        deployed = await stack(**arguments)
        services = await open_services()
        return deployed, services, (await planned_ranges(deployed, services))[0]

    return make


# Opaque cursors, pages of 5 records and requests of at most 2 s: one fits in an invocation's last 5 s.
SHORT_STEPS: dict[str, Any] = {
    "sim": {"vulnerabilities": 400, "cursor_style": "opaque", "seed": 6},
    "PAGE_SIZE": "5",
    "VANTA_REQUEST_TIMEOUT": "2",
}


async def test_worker_hands_rest_of_range_to_next_message_when_time_runs_low(
    first_range: Callable[..., Awaitable[PlannedRange]],
) -> None:
    # Given a shard chain of several pages and a generous page budget (requests of at most 2 s, so one
    # fits in the invocation's last 5 s and a second would not)
    deployed, services, first = await first_range(**SHORT_STEPS)
    assert first.page_budget == 10
    # When the invocation has little time left
    outcome = await process_page_message(
        first.to_json().decode(), "m-1", services=services, remaining=lambda: 5.0
    )
    # Then one page was fetched and the rest of the chain handed on from where it stopped
    assert outcome == "step"
    reply = deployed.sqs.receive_message(QueueUrl=deployed.page_queue_url, MaxNumberOfMessages=10)
    continuations = [parse_page_message(m["Body"]) for m in reply["Messages"]]
    [continuation] = [c for c in continuations if isinstance(c, PageRange) and c.shard == first.shard]
    assert continuation.seq == 1
    assert continuation.cursor is not None
    written = deployed.records_by_key(first.run_id)
    assert [len(records) for records in written.values()] == [5]


async def test_vanta_400_fails_the_range_and_run_with_a_clear_reason_instead_of_looping(
    first_range: Callable[..., Awaitable[PlannedRange]],
) -> None:
    # Given opaque cursors (a step follows the cursor it is given)
    deployed, services, first = await first_range(
        sim={"vulnerabilities": 100, "seed": 6, "cursor_style": "opaque"}
    )
    # When a step's request is one Vanta refuses (a cursor it never issued: 400)
    bad = replace(first, cursor="bm90LWEtY3Vyc29y")
    outcome = await process_page_message(
        bad.to_json().decode(), "m-2", services=services, remaining=lambda: 900.0
    )
    # Then the message is consumed, and the run failed once with the reason, freeing its scope
    assert outcome == "failed"
    run = deployed.run_item(first.run_id)
    assert run["status"]["S"] == "failed"
    assert "400" in run["failure"]["S"]
    assert first.shard in run["failure"]["S"]
    assert deployed.sim.counters.by_status.get(400) == 1
    [scope] = [
        i for i in deployed.ddb.scan(TableName=deployed.table)["Items"] if i["pk"]["S"].startswith("scope#")
    ]
    assert "running_run_id" not in scope
    # And the run's other ranges are now no-ops
    assert (
        await process_page_message(
            first.to_json().decode(), "m-3", services=services, remaining=lambda: 900.0
        )
        == "noop"
    )


async def test_a_duplicate_delivery_that_loses_the_commit_leaves_the_committed_object_alone(
    first_range: Callable[..., Awaitable[PlannedRange]],
) -> None:
    # Given a range's first step, and a tenant that changes at every request (two reads of one page
    # differ, so an overwrite would show)
    deployed, services, first = await first_range(**SHORT_STEPS)
    deployed.sim.churn(every=1, delete=1, insert=1, reset_truth=True)
    body = first.to_json().decode()
    # When SQS delivers the step twice at once (both fetch and write, one commits)
    await asyncio.gather(
        process_page_message(body, "m-1", services=services, remaining=lambda: 5.0),
        process_page_message(body, "m-2", services=services, remaining=lambda: 5.0),
    )
    # Then the range committed one object, it is the only object under the run's prefix, and it holds
    # exactly the records the commit counted
    progress = await services.store.get_range(first.run_id, first.resource, first.shard)
    assert progress is not None
    [committed] = progress.objects
    written = deployed.records_by_key(first.run_id)
    assert list(written) == [committed["key"]]
    assert len(written[committed["key"]]) == committed["records"] == progress.records


async def test_a_first_step_that_fits_no_request_leaves_its_range_to_be_claimed_and_loses_nothing(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given a full sync planned as offset ranges (from the last run's count)
    deployed = await stack(
        sim={"vulnerabilities": 300, "seed": 8}, PAGE_SIZE="10", IDLE_STEP_DELAY_SECONDS="1"
    )
    deployed.counted_before("vulnerabilities", ("vulnerabilities",))
    services = await open_services()
    deployed.send_request(
        b'{"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"], "mode": "full", "reason": "t"}'
    )
    assert await deliver_requests(deployed, services) == ["started"]
    unbundle(deployed)
    reply = deployed.sqs.receive_message(QueueUrl=deployed.page_queue_url, MaxNumberOfMessages=10)
    messages = reply["Messages"]
    ranges = [parse_page_message(m["Body"]) for m in messages]
    offsets = sorted((r.offset or 0, r) for r in ranges if isinstance(r, PageRange))
    assert len(offsets) >= 3
    _, second = offsets[1]
    # When the second range's first step finds no rate slot before its invocation's deadline (here:
    # 3 s left, less than one request's timeout), then the rest of the run goes on as usual
    outcome = await process_page_message(
        second.to_json().decode(), "m-late", services=services, remaining=lambda: 3.0
    )
    # Then nothing is committed for it (an empty first step would leave the range without a head, and
    # the range before would stop short of its start): the step is sent again to run later
    assert outcome == "noop"
    assert await services.store.get_range(second.run_id, second.resource, second.shard) is None
    for message in messages:
        deployed.sqs.delete_message(QueueUrl=deployed.page_queue_url, ReceiptHandle=message["ReceiptHandle"])
        if parse_page_message(message["Body"]) != second:
            deployed.sqs.send_message(QueueUrl=deployed.page_queue_url, MessageBody=message["Body"])

    def finished() -> bool:
        return deployed.run_item(second.run_id)["status"]["S"] != "running"

    await asyncio.to_thread(ThreadedDriver(deployed).run_until, finished, 120)
    # And every record is written exactly once (measured before the fix: 8 of 300 were lost, silently)
    assert deployed.run_item(second.run_id)["status"]["S"] == "succeeded"
    written = deployed.records_by_key(second.run_id)
    got = sorted(r["id"] for records in written.values() for r in records)
    assert got == sorted(r["id"] for r in deployed.sim.dataset.records("vulnerabilities"))


async def test_a_step_that_vanta_keeps_throttling_commits_what_it_read_and_hands_on_after_a_pause(
    first_range: Callable[..., Awaitable[PlannedRange]],
) -> None:
    # Given a range step and a Vanta that will answer three more list requests this minute, then 429s
    # for longer than the retry budget (1 s) lasts
    deployed, services, first = await first_range(
        sim={"vulnerabilities": 2000, "seed": 6},
        PAGE_SIZE="10",
        VANTA_RETRY_BUDGET_SECONDS="1",
        IDLE_STEP_DELAY_SECONDS="7",
    )
    deployed.sim.configure(rate_limit_per_minute=deployed.sim.counters.requests + 3)
    # When the step runs
    outcome = await process_page_message(
        first.to_json().decode(), "m-1", services=services, remaining=lambda: 900.0
    )
    # Then it commits the three pages it read (not a failed message, which would come back only
    # after the visibility timeout to read them again), and its continuation waits on the queue
    assert outcome == "step"
    assert deployed.sim.counters.throttled >= 1
    progress = await services.store.get_range(first.run_id, first.resource, first.shard)
    assert progress is not None
    # (committed as two steps: the first page with the range's head, then the rest)
    assert (progress.next_seq, progress.pages, progress.status) == (2, 3, "open")
    written = deployed.records_by_key(first.run_id)
    assert sum(len(records) for records in written.values()) == 10 + 9 + 9  # pages overlap by one
    attributes = deployed.sqs.get_queue_attributes(
        QueueUrl=deployed.page_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) == 1
