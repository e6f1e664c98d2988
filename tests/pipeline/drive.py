"""In-test SQS pollers: they feed messages from moto SQS to the pipeline as Lambda's poller would.

- `ThreadedDriver` runs the real handlers, one thread per Lambda container (each thread has its own
  container: its own event loop, session and clients), honouring partial batch responses: succeeded
  records are deleted, failed ones made visible again at once (a shortened visibility timeout).
- `pump` runs the pipeline's record functions (what the handlers call) on the test's own loop with
  services the test built, so a test can wrap the AWS clients to inject crashes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vanta_vuln_sync.handlers.container import shutdown_container
from vanta_vuln_sync.handlers.records import process_page_message, process_sync_request
from vanta_vuln_sync.local.context import EmulatedContext, sqs_event
from vanta_vuln_sync.run.services import Services

from .conftest import REGION, Stack

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class DriverStats:
    invocations: Counter[str] = field(default_factory=Counter)
    failed_records: int = 0
    errors: list[BaseException] = field(default_factory=list)


class ThreadedDriver:
    """`workers` worker containers and one scheduler container, each a thread polling its queue."""

    def __init__(
        self, stack: Stack, *, workers: int = 2, function_timeout: float = 120.0, batch_size: int = 10
    ) -> None:
        self.stack = stack
        self.workers = workers
        self.batch_size = batch_size
        self.function_timeout = function_timeout
        self.stats = DriverStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Poll until `done()` holds (checked every 0.25 s); raises TimeoutError or a thread's error."""
        # Imported here, as Lambda imports them: after the function environment is set (Powertools reads
        # its namespace and service name at import).
        from vanta_vuln_sync.handlers import scheduler, worker

        threads = [
            threading.Thread(
                target=self._container, args=("scheduler", scheduler.handler, self.stack.request_queue_url)
            )
        ] + [
            threading.Thread(
                target=self._container, args=(f"worker-{n}", worker.handler, self.stack.page_queue_url)
            )
            for n in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        try:
            while not done():
                if self.stats.errors:
                    raise self.stats.errors[0]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pipeline did not finish within {timeout}s: {self.stats}")
                time.sleep(0.25)
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=30)
        if self.stats.errors:
            raise self.stats.errors[0]

    def _container(self, name: str, handler: Handler, queue_url: str) -> None:
        sqs = self.stack.sqs
        try:
            while not self._stop.is_set():
                reply = sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                messages = reply.get("Messages", [])
                if messages:
                    self._invoke(name, handler, queue_url, messages)
                else:
                    # Short polls: moto's long poll blocks other calls on the queue while it waits.
                    time.sleep(0.25)
        except BaseException as exc:  # surfaced to the test by run_until
            with self._lock:
                self.stats.errors.append(exc)
        finally:
            shutdown_container()

    def _invoke(self, name: str, handler: Handler, queue_url: str, messages: list[dict[str, Any]]) -> None:
        context = EmulatedContext(
            function_name=name,
            function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{name}",
            memory_limit_in_mb=1024,
            timeout_seconds=self.function_timeout,
        )
        event = sqs_event(messages, queue_arn=f"arn:aws:sqs:{REGION}:123456789012:q", region=REGION)
        response = handler(event, context)
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        with self._lock:
            self.stats.invocations[name] += 1
            self.stats.failed_records += len(failed)
        settle(self.stack.sqs, queue_url, messages, failed)


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
    """Run the scheduler's step for every message now on the request queue; returns their outcomes."""
    reply = await asyncio.to_thread(
        stack.sqs.receive_message,
        QueueUrl=stack.request_queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
    )
    outcomes = []
    for message in reply.get("Messages", []):
        sent_at = datetime.fromtimestamp(int(message["Attributes"]["SentTimestamp"]) / 1000, UTC)
        outcomes.append(
            await process_sync_request(message["Body"], message["MessageId"], sent_at, services=services)
        )
        settle(stack.sqs, stack.request_queue_url, [message], set())
    return outcomes
