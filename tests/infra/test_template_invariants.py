"""template.yaml after the SAM transform: the invariants a platform team must not be able to break.

Everything here reads the transformed CloudFormation (as `sam deploy` would submit it), including the
resources moto's CloudFormation skips (alarms, schedule, Glue, bucket policy).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from vanta_vuln_sync.local.template import MOTO_SKIPPED_RESOURCE_TYPES, TemplateError, transform_template
from vanta_vuln_sync.messages import SYNC_RESOURCES, parse_sync_request

from .conftest import CODE_URI, PARAMETERS, REGION, TEMPLATE, Template

SOURCE_QUEUES = {"RequestQueue": "RequestDLQ", "PageQueue": "PageDLQ", "FinalizeQueue": "FinalizeDLQ"}
ALL_QUEUES = [*SOURCE_QUEUES, *SOURCE_QUEUES.values()]
CONSUMERS = {
    "RequestQueue": "SchedulerFunction",
    "PageQueue": "WorkerFunction",
    "FinalizeQueue": "FinalizeFunction",
}
FUNCTIONS = ["SchedulerFunction", "WorkerFunction", "FinalizeFunction"]
ENVIRONMENT_CONTRACT = {
    "STATE_TABLE",
    "DATA_BUCKET",
    "PAGE_QUEUE_URL",
    "PAGE_DLQ_URL",
    "REQUEST_DLQ_URL",
    "FINALIZE_QUEUE_URL",
    "FINALIZE_DLQ_URL",
    "VANTA_SECRET_ARN",
    "VANTA_BASE_URL",
    "VANTA_AUTH_URL",
    "VANTA_RATE_LIMIT_PER_MINUTE",
    "PAGE_BUDGET",
    "RANGES_IN_FLIGHT",
    "WORKER_MAX_CONCURRENCY",
    "RANGE_SLOTS",
    "MAX_CONCURRENT_RUNS",
    "TOKEN_KEY_ID",
    "OWNER_TAG_KEY",
    "DIGEST_TOPIC_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


def test_every_source_queue_redrives_to_its_own_dlq_after_at_least_five_receives(cfn: Template) -> None:
    for queue, dlq in SOURCE_QUEUES.items():
        redrive = cfn.props(queue)["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
        assert redrive["maxReceiveCount"] >= 5


def test_dead_letter_queues_keep_messages_fourteen_days(cfn: Template) -> None:
    for dlq in SOURCE_QUEUES.values():
        assert cfn.props(dlq)["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert "RedrivePolicy" not in cfn.props(dlq)


def test_all_six_queues_are_encrypted(cfn: Template) -> None:
    assert set(cfn.of_type("AWS::SQS::Queue")) == set(ALL_QUEUES)
    for queue in ALL_QUEUES:
        assert cfn.props(queue)["SqsManagedSseEnabled"] is True


def test_visibility_timeout_is_at_least_six_times_the_consuming_function_timeout(cfn: Template) -> None:
    for queue, function in CONSUMERS.items():
        mapping = cfn.mapping_for(function)
        assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert cfn.props(queue)["VisibilityTimeout"] >= 6 * cfn.props(function)["Timeout"]


@pytest.mark.parametrize("concurrency", [None, 2, 17])
def test_worker_reserved_concurrency_is_never_below_the_mapping_maximum_concurrency(
    cfn: Template, concurrency: int | None
) -> None:
    parameters = {} if concurrency is None else {"WorkerMaxConcurrency": concurrency}
    reserved = cfn.resolve(cfn.props("WorkerFunction")["ReservedConcurrentExecutions"], parameters)
    maximum = cfn.resolve(
        cfn.mapping_for("WorkerFunction")["ScalingConfig"]["MaximumConcurrency"], parameters
    )
    assert 2 <= maximum <= int(reserved)
    assert cfn.document["Parameters"]["WorkerMaxConcurrency"]["MinValue"] >= 2  # Lambda's SQS minimum


def test_worker_reads_one_message_per_range_slot_with_a_short_window(cfn: Template) -> None:
    mapping = cfn.mapping_for("WorkerFunction")
    # a bigger batch would queue ranges inside one invocation while other workers idle
    assert mapping["BatchSize"] == {"Ref": "RangesInFlight"}
    assert cfn.document["Parameters"]["RangesInFlight"]["MaxValue"] <= 10  # SQS batches hold up to 10
    assert 0 < mapping["MaximumBatchingWindowInSeconds"] <= 5


def test_every_mapping_reports_batch_item_failures(cfn: Template) -> None:
    mappings = cfn.of_type("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 3
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_functions_run_python313_on_arm64_with_active_tracing(cfn: Template) -> None:
    assert set(cfn.of_type("AWS::Lambda::Function")) == set(FUNCTIONS)
    handlers = {f: cfn.props(f)["Handler"] for f in FUNCTIONS}
    assert handlers == {
        "SchedulerFunction": "vanta_vuln_sync.handlers.scheduler.handler",
        "WorkerFunction": "vanta_vuln_sync.handlers.worker.handler",
        "FinalizeFunction": "vanta_vuln_sync.handlers.finalize.handler",
    }
    for function in FUNCTIONS:
        props = cfn.props(function)
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Code"] == {"S3Bucket": "infra-rehearsal-code", "S3Key": "vanta-vuln-sync.zip"}


def test_functions_get_exactly_the_environment_the_settings_contract_names(cfn: Template) -> None:
    for function in FUNCTIONS:
        variables = cfn.props(function)["Environment"]["Variables"]
        assert set(variables) == ENVIRONMENT_CONTRACT
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "VantaVulnSync"
        assert variables["STATE_TABLE"] == {"Ref": "StateTable"}
        assert variables["DATA_BUCKET"] == {"Ref": "DataBucket"}
        assert variables["PAGE_QUEUE_URL"] == {"Ref": "PageQueue"}
        assert variables["PAGE_DLQ_URL"] == {"Ref": "PageDLQ"}
        assert variables["FINALIZE_QUEUE_URL"] == {"Ref": "FinalizeQueue"}
        assert variables["FINALIZE_DLQ_URL"] == {"Ref": "FinalizeDLQ"}
        assert variables["VANTA_SECRET_ARN"] == {"Ref": "VantaSecretArn"}


def test_state_table_is_on_demand_with_recovery_encryption_and_ttl(cfn: Template) -> None:
    table = cfn.props("StateTable")
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
    }
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": ["StateKey", "Arn"]},
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert cfn.resources["StateTable"]["DeletionPolicy"] == "Retain"


def test_data_bucket_is_versioned_encrypted_private_and_ages_raw_data(cfn: Template) -> None:
    bucket = cfn.props("DataBucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = bucket["LifecycleConfiguration"]["Rules"]
    (raw,) = [r for r in rules if r.get("Prefix") == "raw/"]
    transitions = {t["StorageClass"]: t["TransitionInDays"] for t in raw["Transitions"]}
    assert transitions == {"STANDARD_IA": 90, "GLACIER_IR": 365}
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") for r in rules)
    assert all(r["Status"] == "Enabled" for r in rules)
    assert cfn.resources["DataBucket"]["DeletionPolicy"] == "Retain"


def test_bucket_policy_denies_every_request_without_tls(cfn: Template) -> None:
    (policy,) = cfn.of_type("AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "DataBucket"}
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"Fn::GetAtt": ["DataBucket", "Arn"]} in statement["Resource"]
    assert {"Fn::Sub": "${DataBucket.Arn}/*"} in statement["Resource"]


def _statements(cfn: Template, role: str) -> list[dict[str, Any]]:
    """The role's inline statements and those of the unconditional AWS::IAM::Policy resources on it."""
    props = cfn.props(role)
    assert "ManagedPolicyArns" not in props, "managed policies grant on '*'; scope statements instead"
    statements = [s for policy in props.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for policy in cfn.of_type("AWS::IAM::Policy").values():
        if "Condition" not in policy and {"Ref": role} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_grants_no_wildcard_actions_and_scopes_every_resource(cfn: Template) -> None:
    roles = cfn.of_type("AWS::IAM::Role")
    assert set(roles) == {"SchedulerRole", "WorkerRole", "FinalizeRole", "SyncScheduleRole"}
    statements = [s for role in roles for s in _statements(cfn, role)]
    statements += [
        s
        for policy in cfn.of_type("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert all("*" not in action for action in actions), actions
        if "*" in _as_list(statement["Resource"]):
            # X-Ray has no resource-level permissions; nothing else may be granted on "*".
            assert all(action.startswith("xray:") for action in actions), actions


def _granted(cfn: Template, role: str, action: str) -> list[Any]:
    return [
        resource
        for s in _statements(cfn, role)
        if action in _as_list(s["Action"])
        for resource in _as_list(s["Resource"])
    ]


def test_each_function_may_send_only_where_its_messages_go(cfn: Template) -> None:
    def arn(queue: str) -> dict[str, Any]:
        return {"Fn::GetAtt": [queue, "Arn"]}

    for function in ("Scheduler", "Worker", "Finalize"):
        assert cfn.props(f"{function}Function")["Role"] == {"Fn::GetAtt": [f"{function}Role", "Arn"]}
    assert sorted(map(str, _granted(cfn, "SchedulerRole", "sqs:SendMessage"))) == sorted(
        map(str, [arn("PageQueue"), arn("RequestDLQ")])
    )
    # the worker hands Finalize on; only Finalize parks its own poison
    assert sorted(map(str, _granted(cfn, "WorkerRole", "sqs:SendMessage"))) == sorted(
        map(str, [arn("PageQueue"), arn("PageDLQ"), arn("FinalizeQueue")])
    )
    assert _granted(cfn, "FinalizeRole", "sqs:SendMessage") == [arn("FinalizeDLQ")]
    for role, queue in (
        ("Scheduler", "RequestQueue"),
        ("Worker", "PageQueue"),
        ("Finalize", "FinalizeQueue"),
    ):
        assert _granted(cfn, f"{role}Role", "sqs:ReceiveMessage") == [arn(queue)]
    for role in ("SchedulerRole", "WorkerRole"):
        assert _granted(cfn, role, "secretsmanager:GetSecretValue") == [{"Ref": "VantaSecretArn"}]
    # Finalize never calls Vanta: it cannot read the credentials.
    assert _granted(cfn, "FinalizeRole", "secretsmanager:GetSecretValue") == []
    for role in ("SchedulerRole", "WorkerRole", "FinalizeRole"):
        assert _granted(cfn, role, "dynamodb:UpdateItem") == [{"Fn::GetAtt": ["StateTable", "Arn"]}]
        assert _granted(cfn, role, "cloudwatch:PutMetricData") == []  # metrics go out as EMF in logs


def test_only_finalize_reads_the_bucket_and_writes_run_outputs_the_worker_only_writes_raw_pages(
    cfn: Template,
) -> None:
    owned = ("raw", "runs", "latest", "history")
    prefixes = [{"Fn::Sub": f"${{DataBucket.Arn}}/{prefix}/*"} for prefix in owned]
    raw = [{"Fn::Sub": "${DataBucket.Arn}/raw/*"}]
    assert _granted(cfn, "FinalizeRole", "s3:PutObject") == prefixes
    assert _granted(cfn, "FinalizeRole", "s3:GetObject") == prefixes
    assert _granted(cfn, "FinalizeRole", "s3:DeleteObject") == raw
    assert _granted(cfn, "WorkerRole", "s3:PutObject") == raw
    assert _granted(cfn, "WorkerRole", "s3:DeleteObject") == raw
    worker_actions = {a for s in _statements(cfn, "WorkerRole") for a in _as_list(s["Action"])}
    assert not worker_actions & {"s3:GetObject", "s3:ListBucket", "sns:Publish"}
    # the scheduler plans from the table and has no S3 action at all
    scheduler_actions = [a for s in _statements(cfn, "SchedulerRole") for a in _as_list(s["Action"])]
    assert not [a for a in scheduler_actions if a.startswith("s3:")]


def test_finalize_has_the_memory_and_time_of_a_million_vulnerability_run_and_the_worker_stays_small(
    cfn: Template,
) -> None:
    finalize, worker = cfn.props("FinalizeFunction"), cfn.props("WorkerFunction")
    assert finalize["Timeout"] == 900
    # one full vCPU for its single-threaded statistics (README, "Function memory")
    assert cfn.resolve(finalize["MemorySize"], {}) == 1769
    assert cfn.resolve(worker["MemorySize"], {}) == 256
    assert cfn.resolve(worker["MemorySize"], {"WorkerMemorySize": 512}) == 512
    mapping = cfn.mapping_for("FinalizeFunction")
    assert mapping["BatchSize"] == 1
    assert mapping["ScalingConfig"]["MaximumConcurrency"] >= 2  # Lambda's SQS minimum


def _alarms(cfn: Template) -> list[dict[str, Any]]:
    return [a["Properties"] for a in cfn.of_type("AWS::CloudWatch::Alarm").values()]


def _alarm_on(cfn: Template, metric: str, dimension_value: Any) -> dict[str, Any]:
    (alarm,) = [
        a
        for a in _alarms(cfn)
        if a["MetricName"] == metric and dimension_value in [d["Value"] for d in a["Dimensions"]]
    ]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    return alarm


def test_each_dlq_alarms_on_its_first_message(cfn: Template) -> None:
    for dlq in SOURCE_QUEUES.values():
        alarm = _alarm_on(cfn, "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [dlq, "QueueName"]})
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_each_source_queue_alarms_when_its_oldest_message_is_too_old(cfn: Template) -> None:
    for queue in SOURCE_QUEUES:
        alarm = _alarm_on(cfn, "ApproximateAgeOfOldestMessage", {"Fn::GetAtt": [queue, "QueueName"]})
        assert alarm["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_each_function_alarms_on_errors_throttles_and_duration_near_its_timeout(cfn: Template) -> None:
    for function in FUNCTIONS:
        assert _alarm_on(cfn, "Errors", {"Ref": function})["Threshold"] == 1
        assert _alarm_on(cfn, "Throttles", {"Ref": function})["Threshold"] == 1
        timeout_ms = cfn.props(function)["Timeout"] * 1000
        duration = _alarm_on(cfn, "Duration", {"Ref": function})
        assert 0.8 * timeout_ms <= duration["Threshold"] < timeout_ms
        assert duration["Statistic"] == "Maximum"


def test_failed_runs_and_vanta_429s_alarm_from_the_custom_metrics(cfn: Template) -> None:
    service = "vanta-vuln-sync"
    runs_failed = _alarm_on(cfn, "RunsFailed", service)
    assert runs_failed["Namespace"] == "VantaVulnSync"
    assert runs_failed["Threshold"] == 1
    throttled = _alarm_on(cfn, "Throttled", service)
    assert throttled["Namespace"] == "VantaVulnSync"
    assert throttled["Threshold"] == {"Ref": "VantaThrottleAlarmThreshold"}
    assert all(a["TreatMissingData"] == "notBreaching" for a in _alarms(cfn))


def test_alarm_email_is_subscribed_only_when_given(cfn: Template) -> None:
    (subscription_id,) = cfn.of_type("AWS::SNS::Subscription")
    assert cfn.resources[subscription_id]["Condition"] == "HasAlarmEmail"
    assert cfn.props(subscription_id)["Endpoint"] == {"Ref": "AlarmEmail"}
    assert cfn.parameter_default("AlarmEmail") == ""


def test_schedule_sends_a_valid_full_sync_request_to_the_request_queue(cfn: Template) -> None:
    (schedule,) = cfn.of_type("AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert cfn.parameter_default("ScheduleExpression") == "cron(0 6 * * ? *)"
    target = props["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["RequestQueue", "Arn"]}
    body = json.loads(target["Input"])
    assert body == {
        "v": 1,
        "type": "SyncRequest",
        "resources": ["vulnerabilities", "vulnerability-remediations", "vulnerable-assets"],
        "mode": "full",
        "reason": "schedule",
    }
    request = parse_sync_request(target["Input"])
    assert set(request.resources) == set(SYNC_RESOURCES)
    assert request.mode == "full"
    assert target["RoleArn"] == {"Fn::GetAtt": ["SyncScheduleRole", "Arn"]}
    assert _granted(cfn, "SyncScheduleRole", "sqs:SendMessage") == [
        {"Fn::GetAtt": ["RequestQueue", "Arn"]},
        {"Fn::GetAtt": ["RequestDLQ", "Arn"]},
    ]


def test_athena_tables_project_the_raw_layout_of_every_resource(cfn: Template) -> None:
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]
        for t in cfn.of_type("AWS::Glue::Table").values()
    }
    run_tables = {r.replace("-", "_") for r in SYNC_RESOURCES}
    # Plus tables that span runs by day (history across runs), without the run partition.
    assert run_tables <= set(tables)
    assert set(tables) - run_tables == {"vulnerabilities_history", "vulnerability_remediations_history"}
    for resource in SYNC_RESOURCES:
        table = tables[resource.replace("-", "_")]["TableInput"]
        parameters = table["Parameters"]
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.dt.type"] == "date"
        assert parameters["projection.run.type"] == "injected"
        assert parameters["storage.location.template"] == {
            "Fn::Sub": f"s3://${{DataBucket}}/raw/resource={resource}/dt=${{!dt}}/run=${{!run}}/"
        }
        assert [k["Name"] for k in table["PartitionKeys"]] == ["dt", "run"]
        assert (
            table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
            == "org.openx.data.jsonserde.JsonSerDe"
        )
        assert "id" in [c["Name"] for c in table["StorageDescriptor"]["Columns"]]


def test_dashboard_is_valid_json_showing_queues_functions_and_pipeline_metrics(cfn: Template) -> None:
    (dashboard,) = cfn.of_type("AWS::CloudWatch::Dashboard").values()
    body_template = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(re.sub(r"\$\{[^}]+\}", "x", body_template))
    metrics = {
        m
        for w in body["widgets"]
        for line in w["properties"].get("metrics", [])
        for m in line
        if isinstance(m, str)
    }
    for name in (
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "Invocations",
        "Errors",
        "ConcurrentExecutions",
        "PagesFetched",
        "Throttled",
        "RunSeconds",
        "OpenVulnerabilities",
    ):
        assert name in metrics, name


def test_outputs_name_queues_bucket_table_functions_and_dashboard(cfn: Template) -> None:
    outputs = cfn.document["Outputs"]
    expected = {
        "RequestQueueUrl": {"Ref": "RequestQueue"},
        "PageQueueUrl": {"Ref": "PageQueue"},
        "RequestDLQUrl": {"Ref": "RequestDLQ"},
        "PageDLQUrl": {"Ref": "PageDLQ"},
        "FinalizeQueueUrl": {"Ref": "FinalizeQueue"},
        "FinalizeDLQUrl": {"Ref": "FinalizeDLQ"},
        "DataBucketName": {"Ref": "DataBucket"},
        "StateTableName": {"Ref": "StateTable"},
        "SchedulerFunctionName": {"Ref": "SchedulerFunction"},
        "WorkerFunctionName": {"Ref": "WorkerFunction"},
        "FinalizeFunctionName": {"Ref": "FinalizeFunction"},
    }
    assert {key: outputs[key]["Value"] for key in expected} == expected
    assert "cloudwatch/home" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]


def test_lambda_insights_layer_and_its_permissions_exist_only_when_enabled(cfn: Template) -> None:
    assert cfn.parameter_default("EnableLambdaInsights") == "false"
    for function in FUNCTIONS:
        (layer,) = cfn.props(function)["Layers"]
        condition, arn, otherwise = layer["Fn::If"]
        assert condition == "InsightsEnabled"
        assert "LambdaInsightsExtension-Arm64" in arn["Fn::Sub"]
        assert otherwise == {"Ref": "AWS::NoValue"}
    (policy,) = [p for p in cfn.of_type("AWS::IAM::Policy").values() if "Condition" in p]
    assert policy["Condition"] == "InsightsEnabled"
    assert "lambda-insights" in policy["Properties"]["PolicyName"]


def test_moto_skip_list_names_only_resource_types_the_template_uses(cfn: Template) -> None:
    used = {r["Type"] for r in cfn.resources.values()}
    assert used >= MOTO_SKIPPED_RESOURCE_TYPES


def test_transform_refuses_a_local_code_uri_because_sam_needs_s3() -> None:
    with pytest.raises(TemplateError, match="s3://"):
        transform_template(TEMPLATE, "src/", PARAMETERS, region=REGION)


def test_transform_names_the_broken_resource_when_the_sam_template_is_invalid(tmp_path: Any) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("            Queue: !GetAtt PageQueue.Arn\n", ""))
    with pytest.raises(TemplateError, match="WorkerFunction"):
        transform_template(broken, CODE_URI, PARAMETERS, region=REGION)
