"""A timed-out invocation under the poller emulation: killed as Lambda kills it, and counted.

At its deadline the container's AWS key is revoked (moto refuses S3, DynamoDB and SQS alike), its
loop's tasks are cancelled, its batch is left for the queue's visibility timeout, and the next batch
gets a fresh container."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import poller_test_handlers
import pytest
from mapped_functions import MappedFunction

from state_table import STATE_TABLE_SHAPE
from vanta_vuln_sync.local.poller import Poller


@pytest.fixture
def late_writes() -> Iterator[list[dict[str, Any]]]:
    poller_test_handlers.late_writes.clear()
    yield poller_test_handlers.late_writes
    poller_test_handlers.late_writes.clear()


@pytest.fixture
def targets(aws: str) -> dict[str, str]:
    """A bucket, a table and a queue for the handler to write to."""
    name = f"late-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    boto3.client("dynamodb").create_table(TableName=name, **STATE_TABLE_SHAPE)
    queue_url = boto3.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    return {"bucket": name, "table": name, "queue_url": queue_url, "tag": name}


@pytest.fixture(autouse=True)
def _warm_models(aws: str) -> None:
    """Load the three service models once, so a cold container opens its clients fast."""
    session = poller_test_handlers.aws_session()

    async def load() -> None:
        for service in ("s3", "dynamodb", "sqs"):
            await session.get_service_model(service)

    asyncio.run(load())


@contextmanager
def polling(function: MappedFunction) -> Iterator[Poller]:
    poller = Poller(
        only_functions=[function.name],
        container_teardown=poller_test_handlers.teardown,
        container_setup=poller_test_handlers.setup,
    )
    poller.start()
    try:
        yield poller
    finally:
        poller.stop()


def _landed(targets: dict[str, str], receive: int) -> dict[str, bool]:
    """Which of the handler's writes of that receive are in AWS."""
    tag = f"{targets['tag']}-{receive}"
    keys = {
        o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=targets["bucket"]).get("Contents", [])
    }
    item = boto3.client("dynamodb").get_item(
        TableName=targets["table"], Key={"pk": {"S": tag}, "sk": {"S": "after"}}
    )
    bodies = {
        m["Body"]
        for m in boto3.client("sqs")
        .receive_message(QueueUrl=targets["queue_url"], MaxNumberOfMessages=10, VisibilityTimeout=0)
        .get("Messages", [])
    }
    return {
        "before": f"{tag}/before" in keys,
        "s3": f"{tag}/after" in keys,
        "dynamodb": "Item" in item,
        "sqs": tag in bodies,
    }


def test_late_writes_are_refused_and_batch_returns_after_visibility_timeout_when_invocation_times_out(
    mapped_function: Callable[..., MappedFunction], targets: dict[str, str], late_writes: list[dict[str, Any]]
) -> None:
    # Given a handler stuck in synchronous code past its 2 s timeout, which then swallows the
    # cancellation waiting for it on its loop...
    function = mapped_function(handler="late_writer", timeout=2, visibility_timeout=6)
    function.send({**targets, "sleep": 2.5, "blocking": True, "swallow_cancel": True})
    with polling(function) as poller:
        # ...when it writes to S3, DynamoDB and SQS after its deadline...
        assert poller.run_until(lambda: "sqs" in (late_writes[:1] or [{}])[0], timeout=10), str(late_writes)
        first = late_writes[0]
        assert first["swallowed"]
        # ...AWS refused every one of those writes; what it wrote before the deadline stayed.
        assert (first["s3"], first["dynamodb"], first["sqs"]) == (
            "AccessDenied",
            "AccessDeniedException",
            "AccessDenied",
        )
        assert _landed(targets, 1) == {"before": True, "s3": False, "dynamodb": False, "sqs": False}
        stats = poller.stats().functions[function.name]
        assert (stats.invocations, stats.timed_out) == (1, 1)
        assert function.depth() == 1, "the batch is neither deleted nor made visible early"
        # Then the batch comes back after the queue's visibility timeout, to a fresh container, whose
        # writes land.
        assert poller.run_until(lambda: len(late_writes) == 2 and "sqs" in late_writes[1], timeout=10)
        assert poller.run_until(lambda: function.depth() == 0, timeout=5)
        # The delete empties the queue a moment before the invocation's counters are settled.
        assert poller.run_until(lambda: poller.stats().in_flight == 0, timeout=10)
        stats = poller.stats().functions[function.name]
    second = late_writes[1]
    assert second["receive"] == 2
    assert second["key"] != first["key"], "a fresh container with a fresh key"
    assert (second["s3"], second["dynamodb"], second["sqs"]) == ("written", "written", "written")
    assert _landed(targets, 2) == {"before": True, "s3": True, "dynamodb": True, "sqs": True}
    assert (stats.invocations, stats.timed_out, stats.succeeded, stats.cold_starts) == (2, 1, 1, 2)
    timing = stats.timing()
    assert timing["max_s"] is not None
    assert 2.0 <= timing["max_s"] < 2.5, "a timed-out invocation lasts its timeout"
    assert timing["p50_s"] is not None
    assert timing["p50_s"] < timing["max_s"]
    assert stats.timing()["timeout_s"] == 2


def test_waiting_handler_is_cancelled_at_its_deadline_and_writes_nothing_after_it(
    mapped_function: Callable[..., MappedFunction], targets: dict[str, str], late_writes: list[dict[str, Any]]
) -> None:
    # A 3 s timeout: the handler opens three clients and writes its marker before it waits, which on a
    # loaded machine can take over a second.
    function = mapped_function(handler="late_writer", timeout=3, visibility_timeout=30)
    function.send({**targets, "sleep": 8.0})
    with polling(function) as poller:
        # Only a cancelled handler records "cancelled" (one left to run on records its writes), so the wait
        # is generous for a loaded machine without letting a late handler pass.
        cancelled = lambda: bool(late_writes) and late_writes[0].get("after") == "cancelled"  # noqa: E731
        assert poller.run_until(cancelled, timeout=15)
        assert poller.stats().functions[function.name].timed_out == 1
    assert _landed(targets, 1) == {"before": True, "s3": False, "dynamodb": False, "sqs": False}


def test_message_moves_to_dlq_when_it_times_out_max_receive_count_times(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[poller_test_handlers.Call]
) -> None:
    function = mapped_function(timeout=1, visibility_timeout=1, max_receive_count=2)
    function.send({"sleep": 1.5, "n": 7})
    with polling(function) as poller:
        assert poller.run_until(lambda: poller.stats().functions[function.name].timed_out == 2, timeout=10)
        assert poller.run_until(lambda: function.depth() == 0, timeout=5)
        assert function.dlq_bodies() == [{"sleep": 1.5, "n": 7}]
