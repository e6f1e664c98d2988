"""The Lambda container's state: one event loop kept across warm invocations, and the clients on it.

A handler call runs its batch on the container's own loop (`loop.run_until_complete`), never through
`asyncio.run`, which would make a new loop per invocation and strand every client made in the previous
one ("attached to a different loop", "Event loop is closed"). Settings are read once; the aiohttp
session, the aiobotocore clients, the secret, the token broker and the rate limiter are made lazily
inside the loop on first use and reused by every later invocation.

State is per thread (`threading.local`): Lambda runs one thread per container, and the embedded runtime
emulates several containers as threads of one process, each with its own loop; the same code serves both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, TypeVar

import aiohttp
import orjson
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from vanta_vuln_sync.aws import AwsClients, open_clients
from vanta_vuln_sync.handlers.retry_later import retry_later
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.run.sizing import container_ranges
from vanta_vuln_sync.settings import Settings, SettingsError, settings_from_env
from vanta_vuln_sync.store.rate import FleetRateLimiter
from vanta_vuln_sync.store.state import RunStore
from vanta_vuln_sync.store.token import KmsTokenCipher, TokenBroker
from vanta_vuln_sync.vanta import RecentDurations, RetryPolicy, VantaClient, token_fetcher

T = TypeVar("T")
# Not a child logger: children made before the handler's logger (import order) are orphaned; Logger
# instances of one service share one handler and one set of context keys anyway.
logger = Logger()
# What a handler does with one record, given the container's services and the seconds left.
RecordWork = Callable[[SQSRecord, Services, Callable[[], float]], Awaitable[object]]
# A Lambda entry point: the SQS event and the context in, the partial batch response out.
LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class ContainerBatchProcessor(AsyncBatchProcessor):
    """Powertools' async SQS batch processor, run on the container's loop instead of `asyncio.run`.

    Powertools keeps the loop only when LAMBDA_TASK_ROOT is set; owning the loop here makes Lambda, the
    embedded runtime and the tests take the same path. Never raises for a fully failed batch: the
    partial batch response lists every failed record either way.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(
            event_type=EventType.SQS,
            raise_on_entire_batch_failure=False,
            logger=logging.getLogger(logger.name),
        )
        self._loop = loop

    def async_process(self) -> list[tuple[Any, ...]]:
        async def every_record() -> list[tuple[Any, ...]]:
            return list(await asyncio.gather(*(self._async_process_record(r) for r in self.records)))

        return self._loop.run_until_complete(every_record())


def staggered_remaining(
    context: LambdaContext, stagger: float, rng: random.Random | None = None
) -> Callable[[], float]:
    """The invocation's seconds left, less a share of them drawn once (uniformly up to `stagger`).

    Spreads the ends of invocations that began together (a fleet started by one plan) over a stretch,
    so that their last requests and hand-offs do not all fall in the same seconds.
    """
    early = (rng or random).uniform(0.0, stagger) * context.get_remaining_time_in_millis() / 1000.0

    def remaining() -> float:
        return context.get_remaining_time_in_millis() / 1000.0 - early

    return remaining


class LambdaContainer:
    """One Lambda container: its loop, its settings, and (after first use) its clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._stack: AsyncExitStack | None = None
        self._services: Services | None = None
        self._opening: asyncio.Lock | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to completion on the container's loop."""
        return self.loop.run_until_complete(coro)

    def process_batch(
        self,
        event: dict[str, Any],
        context: LambdaContext,
        metrics: Metrics | None,
        work: RecordWork,
        *,
        vanta: bool = True,
        stagger: float = 0.0,
        retry_queue_url: str | None = None,
    ) -> dict[str, Any]:
        """Every record of an SQS event through `work(record, services, remaining)`, concurrently
        (`remaining()`: the invocation's seconds left, less up to `stagger` of them, drawn once an
        invocation; `vanta=False`: services without Vanta, see `services`); the partial batch response
        (`{"batchItemFailures": [...]}`) lists the records that raised. With `retry_queue_url` (the
        records' queue), failed records come back after a growing delay (handlers/retry_later.py)."""
        remaining = staggered_remaining(context, stagger)

        async def record_handler(record: SQSRecord) -> None:
            await work(record, await self.services(metrics, vanta=vanta), remaining)

        processor = ContainerBatchProcessor(self.loop)
        with processor(records=event.get("Records", []), handler=record_handler, lambda_context=context):
            processor.async_process()
        response: dict[str, Any] = dict(processor.response())
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        if failed and retry_queue_url is not None and self._services is not None:
            records = [r for r in event.get("Records", []) if r.get("messageId") in failed]
            first = self.settings.page_retry_seconds
            self.run(retry_later(self._services.aws.sqs, retry_queue_url, records, first))
        return response

    async def services(self, metrics: Metrics | None = None, *, vanta: bool = True) -> Services:
        """The container's clients, opened on first use inside the running loop and then reused.

        `vanta=False` (the Finalize function) opens no Vanta session and reads no secret; a container
        serves one function, so every call of it passes the same value.
        """
        if self._services is not None:
            return self._services
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._services is None:
                self._services = await self._open(metrics, vanta=vanta)
        return self._services

    async def _open(self, metrics: Metrics | None, *, vanta: bool) -> Services:
        self._stack = AsyncExitStack()
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        aws = await open_clients(self._stack, region=region)
        if not vanta:
            return offline_services(self.settings, aws, metrics=metrics)
        return await build_services(self._stack, self.settings, aws, metrics=metrics)

    def close(self) -> None:
        """Close the clients and the loop (the embedded runtime and tests; Lambda never calls it)."""
        if self._stack is not None:
            self.loop.run_until_complete(self._stack.aclose())
            self._stack = None
        self._services = None
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


async def build_services(
    stack: AsyncExitStack, settings: Settings, aws: AwsClients, *, metrics: Metrics | None = None
) -> Services:
    """The pipeline's services on the running loop: an aiohttp session (closed with `stack`), the
    fleet's TokenBroker and FleetRateLimiter on the state table, and `aws` as given."""
    session = await stack.enter_async_context(
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(20, container_ranges(settings.ranges_in_flight) * 2)),
            trace_configs=_trace_configs(),
        )
    )
    client_id, client_secret = await _credentials(aws, settings)
    fetch = token_fetcher(
        session,
        settings.vanta.auth_url,
        client_id,
        client_secret,
        request_timeout=settings.vanta.request_timeout,
    )
    cipher = None
    if settings.token_key_id:
        if aws.kms is None:
            raise SettingsError("TOKEN_KEY_ID is set but no KMS client was opened to seal the token with")
        cipher = KmsTokenCipher(aws.kms, settings.token_key_id, settings.state_table)
    broker = TokenBroker(aws.dynamodb, settings.state_table, fetch, cipher=cipher)
    limiter = FleetRateLimiter(aws.dynamodb, settings.state_table, settings.vanta.rate_limit_per_minute)
    retry = RetryPolicy(total_seconds=settings.vanta.retry_budget, cap=settings.vanta.retry_backoff_cap)

    answers = RecentDurations()  # how long Vanta took to answer, over every step of the container

    def vanta() -> VantaClient:
        return VantaClient(
            session,
            settings.vanta.base_url,
            tokens=broker,
            limiter=limiter,
            retry=retry,
            timeout=settings.vanta.request_timeout,
            answers=answers,
        )

    # The same services as a function's that never calls Vanta, with Vanta and its session added.
    return replace(offline_services(settings, aws, metrics=metrics), vanta=vanta, http=session)


def offline_services(settings: Settings, aws: AwsClients, *, metrics: Metrics | None = None) -> Services:
    """Services for code that never calls Vanta (Finalize): the AWS clients and the state table only.
    Its `vanta` raises RuntimeError, so a path that would need Vanta fails loudly, not with a 403 on
    the secret."""

    def no_vanta() -> VantaClient:
        raise RuntimeError("this function does not talk to Vanta (its services were opened with vanta=False)")

    return Services(
        settings=settings,
        aws=aws,
        store=RunStore(aws.dynamodb, settings.state_table),
        vanta=no_vanta,
        metrics=metrics,
        in_flight=asyncio.Semaphore(container_ranges(settings.ranges_in_flight)),
    )


async def _credentials(aws: AwsClients, settings: Settings) -> tuple[str, str]:
    """Client id and secret: from the settings when given directly (CLI, local runs), else from the
    Secrets Manager secret. Read through the container's aiobotocore client rather than Powertools
    parameters: those use boto3, whose blocking call would stall every range running on the loop. Read
    once per container (the container state caches it); a rotated secret reaches new containers."""
    vanta = settings.vanta
    if vanta.client_id and vanta.client_secret:
        return vanta.client_id, vanta.client_secret
    if not vanta.secret_arn:
        raise SettingsError("VANTA_SECRET_ARN is not set (nor VANTA_CLIENT_ID and VANTA_CLIENT_SECRET)")
    reply = await aws.secrets.get_secret_value(SecretId=vanta.secret_arn)
    try:
        secret = orjson.loads(reply["SecretString"])
        return str(secret["client_id"]), str(secret["client_secret"])
    except (KeyError, TypeError, orjson.JSONDecodeError):
        raise SettingsError(
            f'secret {vanta.secret_arn} must be JSON {{"client_id": ..., "client_secret": ...}}'
        ) from None


def _trace_configs() -> list[aiohttp.TraceConfig]:
    """X-Ray subsegments for Vanta calls when tracing is on (aiobotocore is patched by Tracer itself)."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return []
    try:
        from aws_xray_sdk.ext.aiohttp.client import aws_xray_trace_config
    except ImportError:  # tracing extra not installed
        return []
    config: aiohttp.TraceConfig = aws_xray_trace_config()
    return [config]


def batch_handler(
    work: RecordWork, *, vanta: bool = True, staggered: bool = False, pages: bool = False
) -> LambdaHandler:
    """The Lambda entry point of one queue: Powertools' metrics, logger (with the Lambda context) and
    tracer wrapped, in that order, around this thread's container's `process_batch(work)`; returns the
    partial batch response. `vanta=False`: services without Vanta (see `LambdaContainer.services`);
    `staggered`: the records' time left is staggered by the settings' `worker_stagger`; `pages`: the
    records are PageQueue's, and failed ones come back after a growing delay (handlers/retry_later.py)."""
    logger, tracer, metrics = Logger(), Tracer(), Metrics()

    @metrics.log_metrics
    @logger.inject_lambda_context
    @tracer.capture_lambda_handler
    def traced(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        container = current_container()
        settings = container.settings
        stagger = settings.worker_stagger if staggered else 0.0
        retry_queue_url = settings.page_queue_url if pages else None
        return container.process_batch(
            event, context, metrics, work, vanta=vanta, stagger=stagger, retry_queue_url=retry_queue_url
        )

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            response: dict[str, Any] = traced(event, context)
            return response
        finally:
            if is_metrics_disabled():
                # With POWERTOOLS_METRICS_DISABLED, Powertools keeps the metrics it does not publish,
                # invocation after invocation, and prints them all once one metric holds 100 values.
                metrics.clear_metrics()

    return handler


_local = threading.local()


def current_container() -> LambdaContainer:
    """This thread's container, created (settings read from the environment) on first call."""
    container: LambdaContainer | None = getattr(_local, "container", None)
    if container is None:
        container = _local.container = LambdaContainer(settings_from_env())
    return container


def shutdown_container() -> None:
    """Close and forget this thread's container, if any (for the embedded runtime and tests)."""
    container: LambdaContainer | None = getattr(_local, "container", None)
    if container is not None:
        _local.container = None
        container.close()
