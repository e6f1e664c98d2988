"""Counting the AWS requests a sync makes, at moto server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import boto3
import pytest
from botocore.config import Config
from loadtest.metering import HARNESS_USER_AGENT, RequestMeter, RssSampler, classify

from vanta_vuln_sync.local.embedded_aws import MotoServer


class Metered(NamedTuple):
    endpoint_url: str
    meter: RequestMeter


@pytest.fixture
def metered() -> Iterator[Metered]:
    """The embedded moto server with the load test's request meter as its middleware."""
    meter = RequestMeter()
    server = MotoServer(middlewares=[meter.wrap])
    url = server.start()
    server.reset()
    yield Metered(url, meter)
    server.stop()


def test_requests_are_counted_by_billable_kind_when_made_through_boto3(metered: Metered) -> None:
    def client(service: str, config: Config | None = None) -> object:
        return boto3.client(
            service, endpoint_url=metered.endpoint_url, region_name="us-east-1", config=config
        )

    s3, sqs, ddb = client("s3"), client("sqs"), client("dynamodb")
    s3.create_bucket(Bucket="bucket-a")  # type: ignore[attr-defined]
    s3.put_object(Bucket="bucket-a", Key="k", Body=b"x")  # type: ignore[attr-defined]
    s3.get_object(Bucket="bucket-a", Key="k")  # type: ignore[attr-defined]
    s3.list_objects_v2(Bucket="bucket-a")  # type: ignore[attr-defined]
    url = sqs.create_queue(QueueName="q")["QueueUrl"]  # type: ignore[attr-defined]
    sqs.send_message(QueueUrl=url, MessageBody="m")  # type: ignore[attr-defined]
    ddb.create_table(  # type: ignore[attr-defined]
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    metered.meter.reset()
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}})  # type: ignore[attr-defined]
    ddb.update_item(  # type: ignore[attr-defined]
        TableName="t",
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})  # type: ignore[attr-defined]
    s3.put_object(Bucket="bucket-a", Key="k2", Body=b"y")  # type: ignore[attr-defined]
    s3.get_object(Bucket="bucket-a", Key="k2")  # type: ignore[attr-defined]
    s3.list_objects_v2(Bucket="bucket-a")  # type: ignore[attr-defined]
    sqs.receive_message(QueueUrl=url)  # type: ignore[attr-defined]
    harness = client("dynamodb", Config(user_agent_extra=HARNESS_USER_AGENT))
    harness.get_item(TableName="t", Key={"pk": {"S": "a"}})  # type: ignore[attr-defined]

    assert metered.meter.snapshot() == {
        "dynamodb-write": 2,
        "dynamodb-read": 1,
        "s3-put": 2,
        "s3-get": 1,
        "sqs": 1,
    }


def test_harness_requests_are_not_billed() -> None:
    assert (
        classify({"HTTP_USER_AGENT": f"Boto3/1 {HARNESS_USER_AGENT}", "HTTP_X_AMZ_TARGET": "AmazonSQS.X"})
        is None
    )


def test_rss_sampler_sees_memory_allocated_while_it_runs() -> None:
    sampler = RssSampler(interval=0.01)
    sampler.start()
    block = bytearray(64 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    growth = sampler.stop()
    del block

    assert growth >= 48 * 2**20
