"""The handlers: warm containers reuse their loop and clients, and poison messages are parked at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from vanta_vuln_sync.handlers.container import current_container, shutdown_container
from vanta_vuln_sync.local.context import EmulatedContext, sqs_event

from .conftest import REGION, Stack
from .drive import unbundle

EVENTS = Path(__file__).resolve().parents[2] / "events"


def receive(deployed: Stack, queue_url: str, count: int) -> list[dict[str, Any]]:
    """Receive `count` messages (moto may hand them out over several calls)."""
    messages: list[dict[str, Any]] = []
    for _ in range(20):
        reply = deployed.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=min(10, count - len(messages)), AttributeNames=["All"]
        )
        messages += reply.get("Messages", [])
        if len(messages) >= count:
            break
    return messages


def drain(deployed: Stack, queue_url: str) -> list[dict[str, Any]]:
    """Receive every message now on the queue."""
    messages: list[dict[str, Any]] = []
    while batch := deployed.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        messages += batch
    return messages


def invoke(handler_name: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One invocation of a handler on this thread's container, as Lambda would make it."""
    from vanta_vuln_sync.handlers import scheduler, worker  # after the environment is set, as in Lambda

    handler = {"scheduler": scheduler.handler, "worker": worker.handler}[handler_name]
    context = EmulatedContext(
        function_name=handler_name,
        function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{handler_name}",
        memory_limit_in_mb=1024,
        timeout_seconds=300,
    )
    return handler(
        sqs_event(messages, queue_arn=f"arn:aws:sqs:{REGION}:123456789012:q", region=REGION), context
    )


def container_is_open() -> bool:
    """The container's loop and aiohttp session are still open."""
    container = current_container()
    services = container.run(container.services())
    return not container.loop.is_closed() and services.http is not None and not services.http.closed


def container_state() -> tuple[Any, ...]:
    """What the warm container holds: its loop, its services and their clients."""
    container = current_container()
    services = container.run(container.services())
    aws = services.aws
    return container, container.loop, services, services.http, aws.s3, aws.sqs, aws.dynamodb, aws.secrets


async def test_two_worker_invocations_in_one_container_reuse_its_loop_session_and_clients(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    # 80 pages of 20: 16 ranges of 5 pages (planned from the last run's counts), enough for two batches
    deployed = await stack(sim={"vulnerabilities": 1000, "seed": 2}, PAGE_SIZE="20")
    deployed.counted_before("all", ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets"))
    deployed.send_request((EVENTS / "sync-request-full.json").read_text())
    scheduler_container = ThreadPoolExecutor(max_workers=1)
    worker_container = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    try:
        requests = receive(deployed, deployed.request_queue_url, 1)
        assert await loop.run_in_executor(scheduler_container, invoke, "scheduler", requests) == {
            "batchItemFailures": []
        }
        unbundle(deployed)  # the plan's 16 ranges as messages of their own, for two batches
        pages = receive(deployed, deployed.page_queue_url, 10)
        # When the same worker container is invoked twice
        first = await loop.run_in_executor(worker_container, invoke, "worker", pages[:5])
        state_after_first = await loop.run_in_executor(worker_container, container_state)
        second = await loop.run_in_executor(worker_container, invoke, "worker", pages[5:])
        state_after_second = await loop.run_in_executor(worker_container, container_state)
        still_open = await loop.run_in_executor(worker_container, container_is_open)
    finally:
        for executor in (scheduler_container, worker_container):
            await loop.run_in_executor(executor, shutdown_container)
            executor.shutdown()
    # Then both succeed (no "attached to a different loop", no "Event loop is closed") on the same
    # loop, session and clients
    assert first == second == {"batchItemFailures": []}
    assert all(a is b for a, b in zip(state_after_first, state_after_second, strict=True))
    assert still_open
    assert len(pages) == 10


async def test_poison_message_lands_in_the_dlq_on_first_receive_and_its_batch_mates_succeed(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    deployed = await stack(sim={"vulnerabilities": 100, "seed": 3}, PAGE_SIZE="50")
    loop = asyncio.get_running_loop()
    container = ThreadPoolExecutor(max_workers=1)
    typo = {
        "v": 1,
        "type": "SyncRequest",
        "resources": ["vulnerabilities"],
        "filters": {"vulnerabilities": {"slaDeadlineAfter": "2026-01-01T00:00:00Z"}},
    }
    try:
        # Given a batch on the request queue: invalid JSON, a misspelled filter, and a valid request
        deployed.send_request("{not json")
        deployed.send_request(orjson.dumps(typo))
        deployed.send_request((EVENTS / "sync-request-resync-critical.json").read_text())
        batch = receive(deployed, deployed.request_queue_url, 3)
        assert [m["Attributes"]["ApproximateReceiveCount"] for m in batch] == ["1", "1", "1"]
        # When the scheduler processes it
        response = await loop.run_in_executor(container, invoke, "scheduler", batch)
        # And a page batch holds a message of an unknown type and a Finalize for an unknown run
        pages = drain(deployed, deployed.page_queue_url)  # every range of the run
        for body in (
            b'{"v": 1, "type": "Bogus"}',
            b'{"v": 1, "type": "Finalize", "run_id": "20260101T000000Z-none"}',
        ):
            deployed.sqs.send_message(QueueUrl=deployed.page_queue_url, MessageBody=body.decode())
        page_batch = pages + receive(deployed, deployed.page_queue_url, 2)
        page_response = await loop.run_in_executor(container, invoke, "worker", page_batch)
    finally:
        await loop.run_in_executor(container, shutdown_container)
        container.shutdown()
    # Then every record counts as processed (none is retried)...
    assert response == page_response == {"batchItemFailures": []}
    # ...the poison sits in the DLQs with its reason...
    parked = deployed.dlq_messages(deployed.request_dlq_url)
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in parked)
    assert len(reasons) == 2
    assert "not valid JSON" in reasons[0] or "not valid JSON" in reasons[1]
    assert any("slaDeadlineAfter" in r for r in reasons)
    assert sorted(m["Body"] for m in parked) == sorted(["{not json", orjson.dumps(typo).decode()])
    page_reasons = sorted(
        m["MessageAttributes"]["reason"]["StringValue"] for m in deployed.dlq_messages(deployed.page_dlq_url)
    )
    assert len(page_reasons) == 2
    assert "unknown message type 'Bogus'" in page_reasons[1]
    assert "not in the state table" in page_reasons[0]
    # ...and the batch-mates went on: the valid request planned its run, its page steps committed
    [run_id] = deployed.run_ids()
    ranges = deployed.ddb.query(
        TableName=deployed.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :r)",
        ExpressionAttributeValues={":pk": {"S": f"run#{run_id}"}, ":r": {"S": "range#"}},
    )["Items"]
    assert len(ranges) == len(pages) > 0


async def test_failed_page_record_comes_back_after_a_growing_delay_not_the_queues_visibility_timeout(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    """A worker's failed record is back on PageQueue after PAGE_RETRY_SECONDS, then four times that; its
    batch-mate that succeeded is not (Lambda deletes it; here nothing does, so it stays in flight)."""
    from vanta_vuln_sync.handlers.container import batch_handler

    deployed = await stack(sim={"vulnerabilities": 10, "seed": 4}, PAGE_RETRY_SECONDS="1")
    # The template's visibility timeout: without the change, the failed record would be gone 90 minutes
    deployed.sqs.set_queue_attributes(
        QueueUrl=deployed.page_queue_url, Attributes={"VisibilityTimeout": "5400"}
    )

    async def work(record: Any, services: Any, remaining: Callable[[], float]) -> None:
        if orjson.loads(record.body)["fail"]:
            raise RuntimeError("S3 said no, this time")

    handler = batch_handler(work, pages=True)
    context = EmulatedContext(
        function_name="worker",
        function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:worker",
        memory_limit_in_mb=256,
        timeout_seconds=900,
    )

    def invoke_failing(messages: list[dict[str, Any]]) -> dict[str, Any]:
        event = sqs_event(messages, queue_arn=f"arn:aws:sqs:{REGION}:123456789012:q", region=REGION)
        return handler(event, context)

    def visible_after(seconds: float) -> list[dict[str, Any]]:
        time.sleep(seconds)
        return deployed.sqs.receive_message(
            QueueUrl=deployed.page_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])

    for fail in (False, True):
        deployed.sqs.send_message(
            QueueUrl=deployed.page_queue_url, MessageBody=orjson.dumps({"fail": fail}).decode()
        )
    loop = asyncio.get_running_loop()
    container = ThreadPoolExecutor(max_workers=1)
    try:
        batch = receive(deployed, deployed.page_queue_url, 2)
        # When the worker fails one record of its batch
        first = await loop.run_in_executor(container, invoke_failing, batch)
        [failed] = [m for m in batch if orjson.loads(m["Body"])["fail"]]
        assert first == {"batchItemFailures": [{"itemIdentifier": failed["MessageId"]}]}
        # Then that record alone is back after about a second (its first retry)
        back = await loop.run_in_executor(None, visible_after, 2.0)
        assert [(m["MessageId"], m["Attributes"]["ApproximateReceiveCount"]) for m in back] == [
            (failed["MessageId"], "2")
        ]
        # And when it fails again, it stays away four times as long
        again = await loop.run_in_executor(container, invoke_failing, back)
        assert again == first
        assert await loop.run_in_executor(None, visible_after, 2.0) == []
        later = await loop.run_in_executor(None, visible_after, 3.0)
        assert [m["MessageId"] for m in later] == [failed["MessageId"]]
    finally:
        await loop.run_in_executor(container, shutdown_container)
        container.shutdown()
