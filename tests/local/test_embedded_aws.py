"""The real template deployed into moto: outputs, mappings as the template declares them, skipped types."""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from vanta_vuln_sync.local.access_keys import ACCESS_KEYS
from vanta_vuln_sync.local.embedded_aws import EmbeddedAws, EmbeddedStack, package_code


@pytest.fixture(scope="module")
def stack(moto_server: str) -> Iterator[EmbeddedStack]:
    """One deployment for the module (it takes seconds); the environment is restored after it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID"):
            patch.setenv(name, "placeholder")  # so the values start() writes are undone afterwards
        patch.setenv("AWS_SECRET_ACCESS_KEY", "placeholder")
        embedded = EmbeddedAws(endpoint_url=moto_server)
        embedded.start()
        yield embedded.deploy(
            client_id="sim-client",
            client_secret="sim-secret",
            parameters={"WorkerMaxConcurrency": 4, "LogLevel": "WARNING"},
            stack_name=f"vs-{uuid.uuid4().hex[:8]}",
        )


@pytest.fixture(autouse=True)
def _clients_use_moto(aws: str) -> None:
    """Every test here talks to the session's moto server."""


def test_stack_outputs_name_every_resource_the_cli_needs_when_template_is_deployed(
    stack: EmbeddedStack,
) -> None:
    for name in (
        "RequestQueueUrl",
        "PageQueueUrl",
        "RequestDLQUrl",
        "PageDLQUrl",
        "DataBucketName",
        "StateTableName",
    ):
        assert stack.outputs.get(name), name
    assert sorted(stack.function_names) == sorted(
        stack.outputs[f"{role}FunctionName"] for role in ("Scheduler", "Worker", "Finalize")
    )


def test_mappings_carry_template_settings_when_template_is_deployed(stack: EmbeddedStack) -> None:
    lambda_client = boto3.client("lambda")
    mappings = {
        m["FunctionArn"].rsplit(":", 1)[-1]: m
        for m in lambda_client.list_event_source_mappings()["EventSourceMappings"]
        if m["FunctionArn"].rsplit(":", 1)[-1] in stack.function_names
    }
    worker = mappings[stack.outputs["WorkerFunctionName"]]
    assert worker["State"] == "Enabled"
    assert worker["BatchSize"] == 10
    assert worker["ScalingConfig"]["MaximumConcurrency"] == 4
    assert worker["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    config = lambda_client.get_function_configuration(FunctionName=stack.outputs["WorkerFunctionName"])
    assert config["Handler"] == "vanta_vuln_sync.handlers.worker.handler"
    assert config["Environment"]["Variables"]["VANTA_SECRET_ARN"] == stack.secret_arn
    assert config["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "WARNING"


def test_moto_does_not_consume_messages_itself_when_queue_has_a_mapping(stack: EmbeddedStack) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.outputs["RequestQueueUrl"], MessageBody="{}")
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["RequestQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"


def test_skipped_resources_are_reported_in_one_line_when_moto_cannot_create_them(
    stack: EmbeddedStack,
) -> None:
    summary = stack.skipped_summary()
    assert "\n" not in summary
    assert "CloudWatch::Alarm" in summary
    assert "Scheduler::Schedule" in summary
    assert all(kind != "AWS::SQS::Queue" for _, kind in stack.skipped)


def test_vanta_secret_holds_the_credentials_when_stack_is_deployed(stack: EmbeddedStack) -> None:
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=stack.secret_arn)["SecretString"]
    assert '"client_id": "sim-client"' in secret


def test_code_package_holds_the_handlers_and_no_bytecode() -> None:
    names = zipfile.ZipFile(BytesIO(package_code())).namelist()
    assert "vanta_vuln_sync/settings.py" in names
    assert not [n for n in names if n.endswith(".pyc")]


def test_moto_refuses_every_service_once_a_container_key_is_revoked(stack: EmbeddedStack) -> None:
    # Given a container's own key, which AWS accepts...
    key = ACCESS_KEYS.issue()

    def client(service: str) -> Any:
        return boto3.client(service, aws_access_key_id=key, aws_secret_access_key="any")  # type: ignore[call-overload]

    s3, ddb, sqs = client("s3"), client("dynamodb"), client("sqs")
    bucket, table = stack.outputs["DataBucketName"], stack.outputs["StateTableName"]
    queue = stack.outputs["PageDLQUrl"]
    s3.put_object(Bucket=bucket, Key="revoked-test/before", Body=b"x")
    # ...when the key is revoked (the poller does it at the container's deadline)...
    assert ACCESS_KEYS.revoke(key), "no request of the key was left in progress"
    # ...every call with it is refused in its service's words, and nothing changes.
    refused = {
        "s3": lambda: s3.put_object(Bucket=bucket, Key="revoked-test/after", Body=b"x"),
        "s3 read": lambda: s3.get_object(Bucket=bucket, Key="revoked-test/before"),
        "dynamodb": lambda: ddb.put_item(TableName=table, Item={"pk": {"S": "revoked"}, "sk": {"S": "x"}}),
        "sqs": lambda: sqs.send_message(QueueUrl=queue, MessageBody="revoked"),
    }
    codes = {}
    for name, call in refused.items():
        with pytest.raises(ClientError) as error:
            call()
        codes[name] = (
            error.value.response["Error"]["Code"],
            error.value.response["ResponseMetadata"]["HTTPStatusCode"],
        )
    assert codes == {
        "s3": ("AccessDenied", 403),
        "s3 read": ("AccessDenied", 403),
        "dynamodb": ("AccessDeniedException", 403),
        "sqs": ("AccessDenied", 403),
    }
    keys = [
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="revoked-test/")["Contents"]
    ]
    assert keys == ["revoked-test/before"]
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "revoked"}, "sk": {"S": "x"}})
    assert "Item" not in item
    # Other keys (the poller's, the CLI's) are untouched.
    boto3.client("s3").put_object(Bucket=bucket, Key="revoked-test/other", Body=b"x")
