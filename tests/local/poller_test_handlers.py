"""Handlers the poller tests deploy into moto. What each does is chosen by the message bodies (JSON):
`{"fail": true}` reports that record failed, `{"raise": true}` raises, `{"sleep": S}` sleeps S seconds.

Each container (thread) keeps an event loop in `threading.local`, as the real handlers do, so the
tests can see which container and loop ran each invocation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

_container = threading.local()
_lock = threading.Lock()
calls: list[Call] = []
closed_loops: list[int] = []


@dataclass(frozen=True)
class Call:
    thread: int
    loop: int
    message_ids: list[str]
    bodies: list[dict[str, Any]]
    receive_counts: list[int]
    remaining_ms_at_start: int
    remaining_ms_after_sleep: int
    function_name: str
    event: dict[str, Any]


def _loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_container, "loop", None)
    if loop is None:
        loop = _container.loop = asyncio.new_event_loop()
    return loop


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    remaining_at_start = context.get_remaining_time_in_millis()
    loop = _loop()
    bodies = [json.loads(record["body"]) for record in event["Records"]]
    sleep = max((body.get("sleep", 0) for body in bodies), default=0)
    loop.run_until_complete(asyncio.sleep(sleep))
    with _lock:
        calls.append(
            Call(
                thread=threading.get_ident(),
                loop=id(loop),
                message_ids=[record["messageId"] for record in event["Records"]],
                bodies=bodies,
                receive_counts=[int(r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]],
                remaining_ms_at_start=remaining_at_start,
                remaining_ms_after_sleep=context.get_remaining_time_in_millis(),
                function_name=context.function_name,
                event=event,
            )
        )
    if any(body.get("raise") for body in bodies):
        raise RuntimeError("asked to raise")
    failures = [
        {"itemIdentifier": record["messageId"]}
        for record, body in zip(event["Records"], bodies, strict=True)
        if body.get("fail")
    ]
    for body in bodies:
        if body.get("log"):
            # As Powertools' batch processor does for a record that raised.
            logging.getLogger("poller_test").warning("record failed", exc_info=ValueError(body["log"]))
    return {"batchItemFailures": failures}


def teardown() -> None:
    """Close this container's loop (the poller calls it as each container thread ends)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_container, "loop", None)
    if loop is not None:
        loop.close()
        with _lock:
            closed_loops.append(id(loop))


def setup() -> asyncio.AbstractEventLoop:
    """The container's loop, made before its first invocation (the poller cancels its tasks at a
    timeout)."""
    return _loop()


# What `late_writer` saw: per call, the receive count and each write's outcome ("written" or the
# error code AWS answered; "cancelled" when the container was killed before it wrote).
late_writes: list[dict[str, Any]] = []


_sessions: list[Any] = []


def aws_session() -> Any:
    """One aiobotocore session for every container (its loader caches the service models, so a cold
    container opens its clients in milliseconds, well inside a short test timeout)."""
    from aiobotocore.session import get_session

    with _lock:
        if not _sessions:
            _sessions.append(get_session())
        return _sessions[0]


def late_writer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Opens S3, DynamoDB and SQS clients and writes a marker to S3; on the first receive only, sleeps
    (`blocking`: in synchronous code, which no cancellation reaches) and, with `swallow_cancel`, catches
    the cancellation as careless code would; then writes to S3, DynamoDB and SQS, recording what AWS
    answered. Body: {"sleep": S, "blocking": bool, "swallow_cancel": bool, "bucket": ..., "table": ...,
    "queue_url": ..., "tag": ...}."""
    loop = _loop()
    for record in event["Records"]:
        body = json.loads(record["body"])
        receive = int(record["attributes"]["ApproximateReceiveCount"])
        loop.run_until_complete(_write_late(body, receive, threading.get_ident()))
    return {"batchItemFailures": []}


async def _write_late(body: dict[str, Any], receive: int, thread: int) -> None:
    from contextlib import AsyncExitStack

    from botocore.exceptions import ClientError

    from vanta_vuln_sync.local.access_keys import container_key

    tag = f"{body['tag']}-{receive}"
    outcome: dict[str, Any] = {"receive": receive, "thread": thread, "key": container_key()}
    with _lock:
        late_writes.append(outcome)
    async with AsyncExitStack() as stack:
        session = aws_session()
        s3 = await stack.enter_async_context(session.create_client("s3"))
        ddb = await stack.enter_async_context(session.create_client("dynamodb"))
        sqs = await stack.enter_async_context(session.create_client("sqs"))
        await s3.put_object(Bucket=body["bucket"], Key=f"{tag}/before", Body=b"x")
        outcome["before"] = "written"
        try:
            if receive == 1:
                if body.get("blocking"):
                    time.sleep(body["sleep"])  # a container stuck in synchronous code
                else:
                    await asyncio.sleep(body["sleep"])
            try:
                await asyncio.sleep(0)  # where a cancellation requested meanwhile arrives
            except asyncio.CancelledError:
                if not body.get("swallow_cancel"):
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                outcome["swallowed"] = True
        except asyncio.CancelledError:
            outcome["after"] = "cancelled"
            raise
        writes = {
            "s3": lambda: s3.put_object(Bucket=body["bucket"], Key=f"{tag}/after", Body=b"x"),
            "dynamodb": lambda: ddb.put_item(
                TableName=body["table"], Item={"pk": {"S": tag}, "sk": {"S": "after"}}
            ),
            "sqs": lambda: sqs.send_message(QueueUrl=body["queue_url"], MessageBody=tag),
        }
        for service, write in writes.items():
            try:
                began = time.monotonic()
                await write()
                outcome[service] = "written"
            except ClientError as exc:
                outcome[service] = exc.response.get("Error", {}).get("Code")
            except Exception as exc:  # what else AWS or the SDK did, for the test's message
                outcome[service] = repr(exc)
            outcome[f"{service}_s"] = round(time.monotonic() - began, 3)


def slow_requester(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A fake slow sync: takes a request slot from the fleet rate limiter's item every `every`
    seconds, `slots` times, committing nothing, as a worker fetching pages does.
    Body: {"table": ..., "slots": N, "every": S}."""
    loop = _loop()
    for record in event["Records"]:
        loop.run_until_complete(_take_slots(json.loads(record["body"])))
    return {"batchItemFailures": []}


async def _take_slots(body: dict[str, Any]) -> None:
    async with aws_session().create_client("dynamodb") as ddb:
        for _ in range(body["slots"]):
            await ddb.update_item(
                TableName=body["table"],
                Key={"pk": {"S": "rate#vanta"}, "sk": {"S": "rate"}},
                UpdateExpression="ADD reserved :one SET per_minute = :limit",
                ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": "50"}},
            )
            await asyncio.sleep(body["every"])
