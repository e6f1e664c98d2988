"""In-test SQS pollers: they feed messages from moto SQS to the pipeline as Lambda's poller would.

- `ThreadedDriver` runs the real handlers under the embedded runtime's poller, on the test's queues.
- `pump` runs the pipeline's record functions (what the handlers call) on the test's own loop with
  services the test built, so a test can wrap the AWS clients to inject crashes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vanta_vuln_sync.handlers.records import process_page_message, process_sync_request
from vanta_vuln_sync.local.containers import FunctionConfig
from vanta_vuln_sync.local.mappings import MappingConfig
from vanta_vuln_sync.local.poller import FunctionStats, Poller, PollerStats
from vanta_vuln_sync.local.world import close_container, container_loop
from vanta_vuln_sync.messages import PageMessage, PageRanges, parse_page_message
from vanta_vuln_sync.run.schedule import RunCapReached
from vanta_vuln_sync.run.services import Services

from .conftest import REGION, Stack


class ThreadedDriver:
    """The embedded runtime's poller (`local.poller.Poller`, as `vuln-sync local` runs it) on the test's
    hand-made queues: one scheduler container, `workers` worker containers, each with its own loop,
    session, clients and AWS key, partial batch responses honoured, failed records visible again at
    once, an invocation killed at `function_timeout` as Lambda kills it."""

    def __init__(
        self, stack: Stack, *, workers: int = 2, function_timeout: int = 120, batch_size: int = 10
    ) -> None:
        self.stack = stack
        self.workers = workers
        self.batch_size = batch_size
        self.function_timeout = function_timeout
        self.stats = PollerStats({})

    def run_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Poll until `done()` holds (checked every 0.25 s); raises TimeoutError when it does not."""
        poller = Poller(
            endpoint_url=self.stack.endpoint,
            region=REGION,
            container_setup=container_loop,
            container_teardown=close_container,
            failed_visibility_timeout=0,
            configured=self._configured(),
        )
        with poller:
            finished = poller.run_until(done, timeout, interval=0.25)
            self.stats = poller.stats()
        if not finished:
            raise TimeoutError(f"pipeline did not finish within {timeout}s: {self.stats}")

    def _configured(self) -> tuple[list[MappingConfig], dict[str, FunctionConfig]]:
        functions: dict[str, FunctionConfig] = {}
        mappings: list[MappingConfig] = []
        for role, queue_url, concurrency in (
            ("scheduler", self.stack.request_queue_url, 1),
            ("worker", self.stack.page_queue_url, self.workers),
        ):
            name = f"{role}-{uuid.uuid4().hex[:6]}"
            functions[name] = FunctionConfig(
                name=name,
                arn=f"arn:aws:lambda:{REGION}:123456789012:function:{name}",
                handler=f"vanta_vuln_sync.handlers.{role}.handler",
                timeout_seconds=self.function_timeout,
                memory_mb=1024,
                reserved_concurrency=concurrency,
            )
            attributes = self.stack.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
            mappings.append(
                MappingConfig(
                    uuid=name,
                    queue_arn=attributes["Attributes"]["QueueArn"],
                    queue_url=queue_url,
                    function_name=name,
                    batch_size=self.batch_size,
                    batching_window_seconds=0,
                    maximum_concurrency=concurrency,
                    report_batch_item_failures=True,
                )
            )
        return mappings, functions

    def worker_stats(self) -> FunctionStats:
        """The worker function's counters from the last `run_until`."""
        (stats,) = [s for name, s in self.stats.functions.items() if name.startswith("worker-")]
        return stats


def settle(sqs: Any, queue_url: str, messages: list[dict[str, Any]], failed: set[str]) -> None:
    """Delete the succeeded messages; make the failed ones visible again now."""
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    for m in messages:
        if m["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )


@dataclass
class PumpStats:
    processed: int = 0
    failures: int = 0
    redelivered: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


async def pump(
    stack: Stack,
    services: Services,
    *,
    done: Callable[[], bool],
    timeout: float = 180.0,
    redeliver_every_message: bool = False,
) -> PumpStats:
    """Feed both queues to the pipeline on this loop until `done()`; with `redeliver_every_message`,
    each message is delivered a second time after it first succeeded (as SQS may). `timeout` only
    catches a hang (it returns once `done()` holds), so it is generous for two loaded cores."""
    stats = PumpStats()
    seen: set[str] = set()
    deadline = time.monotonic() + timeout

    async def deliver(queue_url: str, message: dict[str, Any]) -> bool:
        body, message_id = message["Body"], message["MessageId"]
        try:
            if queue_url == stack.request_queue_url:
                sent = int(message["Attributes"]["SentTimestamp"]) / 1000
                await process_sync_request(
                    body, message_id, datetime.fromtimestamp(sent, UTC), services=services
                )
            else:
                outcome = await process_page_message(
                    body, message_id, services=services, remaining=lambda: 900.0
                )
                stats.outcomes[outcome] += 1
        except Exception as exc:  # the record failed: SQS redelivers it
            stats.failures += 1
            stats.errors.append(f"{type(exc).__name__}: {exc}")
            return False
        return True

    while not done():
        if time.monotonic() > deadline:
            attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.page_queue_url, AttributeNames=["All"])
            depth = {k: v for k, v in attributes["Attributes"].items() if k.startswith("ApproximateNumber")}
            dlq = len(stack.dlq_messages(stack.page_dlq_url))
            raise TimeoutError(
                f"pipeline did not finish within {timeout}s: page queue {depth}, DLQ {dlq}; {stats}"
            )
        idle = True
        for queue_url in (stack.request_queue_url, stack.page_queue_url, stack.page_queue_url):
            reply = await asyncio.to_thread(
                stack.sqs.receive_message,
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = reply.get("Messages", [])
            if not messages:
                continue
            idle = False
            results = await asyncio.gather(*(deliver(queue_url, m) for m in messages))
            failed = {m["MessageId"] for m, ok in zip(messages, results, strict=True) if not ok}
            if redeliver_every_message:
                again = {m["MessageId"] for m in messages if m["MessageId"] not in seen} - failed
                seen.update(again)
                stats.redelivered += len(again)
                failed |= again
            stats.processed += len(messages)
            settle(stack.sqs, queue_url, messages, failed)
        if idle:
            await asyncio.sleep(0.05)
    return stats


async def deliver_requests(stack: Stack, services: Services) -> list[str]:
    """Run the scheduler's step for every message now on the request queue; returns their outcomes,
    "waits" for RunCapReached (the record fails and is made visible again, as SQS would after the
    visibility timeout)."""
    reply = await asyncio.to_thread(
        stack.sqs.receive_message,
        QueueUrl=stack.request_queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
    )
    outcomes = []
    for message in reply.get("Messages", []):
        sent_at = datetime.fromtimestamp(int(message["Attributes"]["SentTimestamp"]) / 1000, UTC)
        try:
            outcome = await process_sync_request(
                message["Body"], message["MessageId"], sent_at, services=services
            )
        except RunCapReached:
            outcomes.append("waits")
            settle(stack.sqs, stack.request_queue_url, [message], {message["MessageId"]})
            continue
        outcomes.append(outcome)
        settle(stack.sqs, stack.request_queue_url, [message], set())
    return outcomes


def unbundle(stack: Stack) -> int:
    """Put every step of the page queue's PageRanges messages back as a message of its own (a compact
    run's plan goes out as one bundle, run/schedule.py), for tests that deliver a run's ranges one
    message at a time. Returns the number of steps the queue then holds."""
    messages: list[dict[str, Any]] = []
    while batch := stack.sqs.receive_message(QueueUrl=stack.page_queue_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        messages += batch
    steps: list[PageMessage] = []
    for message in messages:
        parsed = parse_page_message(message["Body"])
        steps += parsed.ranges if isinstance(parsed, PageRanges) else [parsed]
        stack.sqs.delete_message(QueueUrl=stack.page_queue_url, ReceiptHandle=message["ReceiptHandle"])
    for step in steps:
        stack.sqs.send_message(QueueUrl=stack.page_queue_url, MessageBody=step.to_json().decode())
    return len(steps)
