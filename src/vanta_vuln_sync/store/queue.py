"""Sending messages: page ranges in batches of ten, continuations, Finalize, and poison to a DLQ."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vanta_vuln_sync.messages import PageMessage

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

_BATCH = 10  # SendMessageBatch's limit
_CONCURRENT_CALLS = 8
_ATTEMPTS = 5


class EnqueueError(RuntimeError):
    """Some messages could not be sent after retries; the message lists the SQS error codes."""


async def send_messages(sqs: SQSClient, queue_url: str, messages: Sequence[PageMessage]) -> None:
    """Send every message: SendMessageBatch of ten, calls concurrent, failed entries retried.

    Raises EnqueueError when entries still fail after retries. Sending a message twice is harmless
    (the receiving step's conditional progress write makes a duplicate a no-op), so a retry after a
    partial failure needs no bookkeeping.
    """
    batches = [messages[i : i + _BATCH] for i in range(0, len(messages), _BATCH)]
    gate = asyncio.Semaphore(_CONCURRENT_CALLS)

    async def send(batch: Sequence[PageMessage]) -> None:
        async with gate:
            await _send_batch(sqs, queue_url, batch)

    async with asyncio.TaskGroup() as group:
        for batch in batches:
            group.create_task(send(batch))


async def _send_batch(sqs: SQSClient, queue_url: str, batch: Sequence[PageMessage]) -> None:
    pending: dict[str, SendMessageBatchRequestEntryTypeDef] = {
        str(i): {"Id": str(i), "MessageBody": message.to_json().decode()} for i, message in enumerate(batch)
    }
    codes: list[str] = []
    for attempt in range(_ATTEMPTS):
        reply = await sqs.send_message_batch(QueueUrl=queue_url, Entries=list(pending.values()))
        for entry in reply.get("Successful", []):
            pending.pop(entry["Id"], None)
        if not pending:
            return
        codes = [failure.get("Code", "?") for failure in reply.get("Failed", [])]
        await asyncio.sleep(0.2 * 2**attempt)
    raise EnqueueError(f"{len(pending)} messages not sent to {queue_url} after {_ATTEMPTS} tries: {codes}")


async def send_message(
    sqs: SQSClient, queue_url: str, message: PageMessage, *, delay_seconds: int = 0
) -> None:
    """Send one message (a continuation, continuations handed on together, a Finalize), visible after
    `delay_seconds` (at most 900)."""
    await sqs.send_message(
        QueueUrl=queue_url, MessageBody=message.to_json().decode(), DelaySeconds=min(900, delay_seconds)
    )


async def park_poison(sqs: SQSClient, dlq_url: str, body: str, reason: str, message_id: str) -> None:
    """Put a message that can never succeed into the DLQ as it was, with why (and its id) attached."""
    await sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=body if body else "(empty body)",
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1000] or "invalid message"},
            "source_message_id": {"DataType": "String", "StringValue": message_id or "unknown"},
        },
    )
