"""Deploy rehearsal: the transformed template created by moto server's CloudFormation, then read back.

What moto creates from the stack is what the embedded runtime runs against, so the wiring (queue URLs in
the environment, redrive targets, mappings) is checked on the created resources, not the template.
"""

from __future__ import annotations

import importlib
import json

import pytest

from vanta_vuln_sync.settings import settings_from_env

from .conftest import SECRET_ARN, Rehearsal

# moto warns once per resource type it does not create (alarms, schedule, Glue, bucket policy): expected.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")

DLQ_OF = {
    "RequestQueueUrl": "RequestDLQUrl",
    "PageQueueUrl": "PageDLQUrl",
    "FinalizeQueueUrl": "FinalizeDLQUrl",
}
FUNCTION_OUTPUTS = ("SchedulerFunctionName", "WorkerFunctionName", "FinalizeFunctionName")


def test_rehearsal_outputs_every_queue_bucket_table_function_and_the_dashboard(rehearsal: Rehearsal) -> None:
    assert set(rehearsal.outputs) >= {
        "RequestQueueUrl",
        "PageQueueUrl",
        "RequestDLQUrl",
        "PageDLQUrl",
        "FinalizeQueueUrl",
        "FinalizeDLQUrl",
        "DataBucketName",
        "StateTableName",
        "SchedulerFunctionName",
        "WorkerFunctionName",
        "FinalizeFunctionName",
        "DashboardUrl",
    }
    assert "dashboards:name=infra-rehearsal-pipeline" in rehearsal.outputs["DashboardUrl"]


def test_rehearsal_queues_redrive_to_their_dlqs_and_dlqs_keep_messages_fourteen_days(
    rehearsal: Rehearsal,
) -> None:
    for queue, dlq in DLQ_OF.items():
        attributes = rehearsal.queue_attributes(queue)
        dlq_attributes = rehearsal.queue_attributes(dlq)
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq_attributes["QueueArn"]
        assert int(redrive["maxReceiveCount"]) >= 5
        assert dlq_attributes["MessageRetentionPeriod"] == str(14 * 24 * 3600)
        assert "RedrivePolicy" not in dlq_attributes
        for encrypted in (attributes, dlq_attributes):
            assert encrypted["SqsManagedSseEnabled"] == "true"


def test_rehearsal_mappings_match_their_queues_and_respect_visibility_and_concurrency(
    rehearsal: Rehearsal,
) -> None:
    functions = {
        "RequestQueueUrl": rehearsal.outputs["SchedulerFunctionName"],
        "PageQueueUrl": rehearsal.outputs["WorkerFunctionName"],
        "FinalizeQueueUrl": rehearsal.outputs["FinalizeFunctionName"],
    }
    for queue, function_name in functions.items():
        attributes = rehearsal.queue_attributes(queue)
        (mapping,) = rehearsal.awslambda.list_event_source_mappings(FunctionName=function_name)[
            "EventSourceMappings"
        ]
        function = rehearsal.awslambda.get_function(FunctionName=function_name)
        configuration = function["Configuration"]
        assert mapping["EventSourceArn"] == attributes["QueueArn"]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert int(attributes["VisibilityTimeout"]) >= 6 * configuration["Timeout"]
        assert configuration["Runtime"] == "python3.13"
        # moto would run an enabled mapping's function in Docker; the embedded runtime polls instead.
        assert mapping["State"] == "Disabled"
        if queue == "PageQueueUrl":
            assert mapping["BatchSize"] == 10
            assert mapping["MaximumBatchingWindowInSeconds"] == 1
            reserved = function["Concurrency"]["ReservedConcurrentExecutions"]
            assert 2 <= mapping["ScalingConfig"]["MaximumConcurrency"] <= reserved
        if queue == "FinalizeQueueUrl":
            assert mapping["BatchSize"] == 1
            assert configuration["Timeout"] == 900


def test_rehearsal_functions_see_the_created_resources_in_their_environment(rehearsal: Rehearsal) -> None:
    for function_name in (rehearsal.outputs[name] for name in FUNCTION_OUTPUTS):
        configuration = rehearsal.awslambda.get_function_configuration(FunctionName=function_name)
        variables = configuration["Environment"]["Variables"]
        assert variables["PAGE_QUEUE_URL"] == rehearsal.outputs["PageQueueUrl"]
        assert variables["PAGE_QUEUE_URL"] == rehearsal.outputs["PageQueueUrl"]
        assert variables["PAGE_DLQ_URL"] == rehearsal.outputs["PageDLQUrl"]
        assert variables["REQUEST_DLQ_URL"] == rehearsal.outputs["RequestDLQUrl"]
        assert variables["FINALIZE_QUEUE_URL"] == rehearsal.outputs["FinalizeQueueUrl"]
        assert variables["FINALIZE_DLQ_URL"] == rehearsal.outputs["FinalizeDLQUrl"]
        assert variables["STATE_TABLE"] == rehearsal.outputs["StateTableName"]
        assert variables["DATA_BUCKET"] == rehearsal.outputs["DataBucketName"]
        assert variables["VANTA_SECRET_ARN"] == SECRET_ARN
        # moto keeps a Number parameter's type; Lambda would hand the function the string "50".
        assert str(variables["VANTA_RATE_LIMIT_PER_MINUTE"]) == "50"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "VantaVulnSync"


def test_rehearsal_state_table_has_the_pk_sk_keys_on_demand(rehearsal: Rehearsal) -> None:
    table = rehearsal.dynamodb.describe_table(TableName=rehearsal.outputs["StateTableName"])["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = rehearsal.dynamodb.describe_time_to_live(TableName=rehearsal.outputs["StateTableName"])
    assert ttl["TimeToLiveDescription"] == {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"}


def test_rehearsal_bucket_is_encrypted_versioned_and_private(rehearsal: Rehearsal) -> None:
    bucket = rehearsal.outputs["DataBucketName"]
    encryption = rehearsal.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert rehearsal.s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    blocked = rehearsal.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(blocked.values())
    rules = rehearsal.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert {t["StorageClass"] for r in rules for t in r.get("Transitions", [])} == {
        "STANDARD_IA",
        "GLACIER_IR",
    }


def test_rehearsal_environment_is_everything_settings_needs(rehearsal: Rehearsal) -> None:
    for function_name in (rehearsal.outputs[name] for name in FUNCTION_OUTPUTS):
        configuration = rehearsal.awslambda.get_function_configuration(FunctionName=function_name)
        # Lambda passes every variable as a string.
        env = {name: str(value) for name, value in configuration["Environment"]["Variables"].items()}
        settings = settings_from_env(env)
        assert settings.state_table == rehearsal.outputs["StateTableName"]
        assert settings.page_queue_url == rehearsal.outputs["PageQueueUrl"]
        assert settings.finalize_queue_url == rehearsal.outputs["FinalizeQueueUrl"]
        assert settings.finalize_dlq_url == rehearsal.outputs["FinalizeDLQUrl"]
        assert settings.vanta.secret_arn == SECRET_ARN
        assert settings.vanta.rate_limit_per_minute == 50


def test_rehearsal_function_handlers_name_callables_in_the_package(rehearsal: Rehearsal) -> None:
    for function_name in (rehearsal.outputs[name] for name in FUNCTION_OUTPUTS):
        handler = rehearsal.awslambda.get_function_configuration(FunctionName=function_name)["Handler"]
        module_name, _, attribute = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module_name), attribute))
