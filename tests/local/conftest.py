"""Fixtures for the local runtime's tests: a function, its queue and DLQ, and its mapping, in moto."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator

import boto3
import poller_test_handlers
import pytest
from mapped_functions import MappedFunction

from vanta_vuln_sync.local.embedded_aws import detach_moto_sqs_invoker


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this process's AWS clients at the session's moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def recorded_calls() -> Iterator[list[poller_test_handlers.Call]]:
    poller_test_handlers.calls.clear()
    yield poller_test_handlers.calls
    poller_test_handlers.calls.clear()


@pytest.fixture
def mapped_function(aws: str) -> Callable[..., MappedFunction]:
    """Factory: a function running `poller_test_handlers.<handler>` (default `handler`), mapped to a
    fresh queue with a DLQ."""

    def make(
        *,
        timeout: int = 30,
        batch_size: int = 10,
        window: int = 0,
        maximum_concurrency: int | None = None,
        visibility_timeout: int = 30,
        max_receive_count: int = 5,
        report_failures: bool = True,
        environment: dict[str, str] | None = None,
        handler: str = "handler",
    ) -> MappedFunction:
        name = f"fn-{uuid.uuid4().hex[:10]}"
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
                ),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        role = boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("poller_test_handlers.py", "")
        lambda_client = boto3.client("lambda")
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler=f"poller_test_handlers.{handler}",
            Code={"ZipFile": code.getvalue()},
            Timeout=timeout,
            Environment={"Variables": environment or {}},
        )
        mapping: dict[str, object] = {
            "EventSourceArn": queue_arn,
            "FunctionName": name,
            "BatchSize": batch_size,
            "MaximumBatchingWindowInSeconds": window,
        }
        if maximum_concurrency is not None:
            mapping["ScalingConfig"] = {"MaximumConcurrency": maximum_concurrency}
        if report_failures:
            mapping["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        lambda_client.create_event_source_mapping(**mapping)  # type: ignore[arg-type]
        detach_moto_sqs_invoker()  # as the local runtime does right after deploying
        return MappedFunction(name=name, queue_url=queue_url, dlq_url=dlq_url, sqs=sqs)

    return make
