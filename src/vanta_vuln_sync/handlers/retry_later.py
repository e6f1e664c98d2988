"""A failed page record comes back soon, and later each time it fails again, not after the queue's
visibility timeout.

Lambda leaves the records a batch reports failed in flight until their visibility timeout ends. The
PageQueue's is 5,400 s, six times the worker's 900 s timeout as Lambda's SQS guidance asks, so a step
that failed on a passing fault (an S3 or DynamoDB error, Vanta unreachable past the retry budget) would
hold its run back for 90 minutes. The worker sets each failed record's visibility to `first` seconds
(Settings.page_retry_seconds, 60 s) times four for every earlier receive, up to 64 times: it comes back
after 1, 4, 16 and 64 minutes, and 64 minutes after its fifth failure SQS parks it in PageDLQ
(maxReceiveCount 5): two and a half hours of outage ridden out, as five 30-minute visibility timeouts
did before. A record whose invocation was killed (its timeout, a crash) still waits out the queue's
visibility timeout: nothing runs to shorten it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

logger = Logger()

GROWTH = 4
# The delay grows for the first four receives: 1, 4, 16, 64 x `first`.
MAX_GROWTHS = 3
# SQS's largest visibility timeout.
MAX_VISIBILITY_SECONDS = 43_200


def retry_delay(first: int, receive_count: int) -> int:
    """Seconds until a record that failed on its `receive_count`-th receive comes back."""
    delay: int = first * GROWTH ** min(MAX_GROWTHS, max(0, receive_count - 1))
    return min(MAX_VISIBILITY_SECONDS, delay)


async def retry_later(sqs: SQSClient, queue_url: str, records: list[dict[str, Any]], first: int) -> None:
    """Set each failed record's (raw SQS event records) visibility to its `retry_delay`. A record whose
    change fails keeps the queue's visibility timeout, and only comes back later."""

    async def one(record: dict[str, Any]) -> None:
        count = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        delay = retry_delay(first, count)
        try:
            await sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=delay
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning(
                "a failed record comes back after the queue's visibility timeout, not sooner",
                extra={"message_id": record.get("messageId"), "error": type(exc).__name__},
            )
        else:
            logger.info(
                "a failed record comes back later",
                extra={"message_id": record.get("messageId"), "receive": count, "seconds": delay},
            )

    await asyncio.gather(*(one(r) for r in records))
