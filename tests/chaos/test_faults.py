"""The AWS fault injector against real aiobotocore clients and moto server: what botocore makes of each
injected reply (error code, retries), and what a lost reply or a killed container leaves behind."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from vanta_vuln_sync.aws import AwsClients, open_clients
from vanta_vuln_sync.local.faults import AwsFaultInjector, AwsFaults, SimulatedCrash

T = TypeVar("T")
# The tests' calls run on the test thread, so they target every thread rather than containers'.
ANY_THREAD = ""


@pytest.fixture
async def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Any]]:
    """Factory: install an injector with `faults`, then open the pipeline's clients (aws.open_clients:
    standard retry mode, 5 retries) against moto server, or with `retries=N` the same clients retrying
    only N times (the SDK's back-off makes 5 retries cost seconds); everything is closed afterwards."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    async with AsyncExitStack() as exits:

        async def make(retries: int | None = None, **faults: Any) -> tuple[AwsFaultInjector, AwsClients]:
            faults.setdefault("thread_prefix", ANY_THREAD)
            injector = AwsFaultInjector(AwsFaults(**faults))
            exits.enter_context(injector.installed())
            if retries is None:
                return injector, await open_clients(exits, region="us-east-1")
            config = AioConfig(retries={"mode": "standard", "max_attempts": retries})
            session = get_session()
            made = [
                await exits.enter_async_context(
                    session.create_client(name, region_name="us-east-1", config=config)  # type: ignore[call-overload]
                )
                for name in ("s3", "sqs", "dynamodb", "secretsmanager")
            ]
            return injector, AwsClients(*made)

        yield make


def _in_container_thread(
    coro: Callable[[], Awaitable[T]], name: str = "lambda:fn-worker#1"
) -> T | BaseException:
    """Run `coro()` on a fresh loop in a thread named like an emulated container; its result or error."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(coro()))  # type: ignore[arg-type]
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join(30)
    return outcome[0]


@pytest.mark.parametrize(
    ("service", "expected_codes"),
    [
        ("s3", {"SlowDown"}),
        ("dynamodb", {"ProvisionedThroughputExceededException", "ThrottlingException"}),
        ("sqs", {"RequestThrottled"}),
    ],
)
async def test_sdk_retries_then_raises_the_services_throttling_code_when_every_call_is_throttled(
    aws: Callable[..., Any], service: str, expected_codes: set[str]
) -> None:
    injector, clients = await aws(retries=1, throttle_rate=1.0, services=frozenset({service}))
    calls = {
        "s3": lambda: clients.s3.list_objects_v2(Bucket="no-such-bucket-needed"),
        "dynamodb": lambda: clients.dynamodb.describe_table(TableName="any"),
        "sqs": lambda: clients.sqs.list_queues(),
    }
    with pytest.raises(ClientError) as raised:
        await calls[service]()
    assert raised.value.response["Error"]["Code"] in expected_codes
    # the code is one botocore retries as throttling: the retry was made, both attempts injected
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert injector.counts.throttles == 2
    assert injector.counts.by_service == {service: 2}


async def test_calls_succeed_through_sdk_retries_when_a_fraction_fails_with_internal_errors(
    aws: Callable[..., Any],
) -> None:
    injector, clients = await aws(seed=7, error_rate=0.2)
    bucket = f"chaos-{uuid.uuid4().hex[:8]}"
    await clients.s3.create_bucket(Bucket=bucket)
    for n in range(5):
        await clients.s3.put_object(Bucket=bucket, Key=f"k{n}", Body=b"x")
    listed = await clients.s3.list_objects_v2(Bucket=bucket)
    assert len(listed["Contents"]) == 5
    assert injector.counts.errors > 0
    # every injected 500 was retried by the SDK, none surfaced
    assert injector.counts.sdk_retries == injector.counts.errors


async def test_internal_error_surfaces_as_client_error_when_every_attempt_fails(
    aws: Callable[..., Any],
) -> None:
    injector, clients = await aws(retries=1, error_rate=1.0, services=frozenset({"dynamodb"}))
    with pytest.raises(ClientError) as raised:
        await clients.dynamodb.describe_table(TableName="any")
    assert raised.value.response["Error"]["Code"] == "InternalServerError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert injector.counts.errors == 2


async def test_lost_reply_leaves_the_write_applied_although_the_caller_saw_an_error(
    aws: Callable[..., Any],
) -> None:
    # Given a table, and every reply of a conditional write lost (the write itself reaches DynamoDB)
    ddb = boto3.client("dynamodb")
    table = f"chaos-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    lossy, clients = await aws(retries=1, lost_reply_rate=1.0)
    # When the write is made (and retried once by the SDK)
    with pytest.raises(ClientError) as raised:
        await clients.dynamodb.put_item(
            TableName=table, Item={"pk": {"S": "run#1"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    # Then the caller saw a 500, but the write was applied, once: the retry failed its condition
    assert raised.value.response["Error"]["Code"] == "InternalServerError"
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "run#1"}})["Item"] == {"pk": {"S": "run#1"}}
    assert lossy.counts.lost_replies == 2
    assert [(c.operation, c.params["Item"]) for c in lossy.applied] == [("PutItem", {"pk": {"S": "run#1"}})]


async def test_lost_send_replies_make_sqs_hold_every_retried_copy(aws: Callable[..., Any]) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"chaos-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    _, clients = await aws(retries=1, lost_reply_rate=1.0)
    with pytest.raises(ClientError):
        await clients.sqs.send_message(QueueUrl=url, MessageBody="once")
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "2"


async def test_container_thread_dies_at_the_crash_and_every_later_call_of_it_fails(
    aws: Callable[..., Any],
) -> None:
    injector, _ = await aws(crash_rate=1.0, max_kills=1, thread_prefix="lambda:")
    bucket = f"chaos-{uuid.uuid4().hex[:8]}"

    async def calls() -> list[str]:
        seen: list[str] = []
        async with AsyncExitStack() as exits:
            clients = await open_clients(exits, region="us-east-1")
            for attempt in range(2):
                try:
                    await clients.s3.create_bucket(Bucket=f"{bucket}-{attempt}")
                    seen.append("ok")
                except SimulatedCrash:
                    seen.append("crash")
        return seen

    # Given a container thread: its first call kills it, and the second (max_kills reached) still fails
    assert _in_container_thread(calls) == ["crash", "crash"]
    assert injector.counts.crashes == 1
    # And another container thread, and the test's own thread, are unaffected once kills are used up
    assert _in_container_thread(calls, name="lambda:fn-worker#2") == ["ok", "ok"]


async def test_crash_is_not_caught_by_except_exception(aws: Callable[..., Any]) -> None:
    _, clients = await aws(crash_rate=1.0)
    caught_by: list[str] = []

    async def code_under_test() -> None:
        try:
            await clients.sqs.list_queues()
        except Exception as exc:  # what the pipeline's broadest handlers do
            caught_by.append(type(exc).__name__)

    with pytest.raises(SimulatedCrash):
        await code_under_test()
    assert caught_by == []


async def test_hung_container_freezes_for_hang_seconds_then_dies(aws: Callable[..., Any]) -> None:
    injector, _ = await aws(hang_rate=1.0, hang_seconds=0.3, thread_prefix="lambda:")

    async def one_call() -> str:
        async with AsyncExitStack() as exits:
            clients = await open_clients(exits, region="us-east-1")
            await clients.sqs.list_queues()
        return "ok"

    started = time.monotonic()
    outcome = _in_container_thread(one_call)
    assert isinstance(outcome, SimulatedCrash)
    assert time.monotonic() - started >= 0.3
    assert injector.counts.hangs == 1


async def test_calls_outside_container_threads_are_never_touched(aws: Callable[..., Any]) -> None:
    injector, clients = await aws(error_rate=1.0, thread_prefix="lambda:")
    await clients.sqs.list_queues()
    assert injector.counts.calls == 0


def test_fault_rates_over_one_are_rejected() -> None:
    with pytest.raises(ValueError, match="add up to at most 1"):
        AwsFaults(error_rate=0.6, throttle_rate=0.6)
