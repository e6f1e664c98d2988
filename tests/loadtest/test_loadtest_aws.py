"""The sweep against a deployed stack, on botocore Stubber clients.

It cannot run here (no AWS account): these tests check its logic on `botocore.stub.Stubber`-stubbed
boto3 clients, which assert every call's parameters and hand back canned AWS replies. This is the one
place in the project's tests with stubbed AWS, because moto has no CloudWatch metrics or Lambda REPORT
logs of real invocations to read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from loadtest.aws import AwsPoint, AwsSweep, StackHandles, parse_report, summarize_reports

WORKER = "vuln-sync-worker"
HANDLES = StackHandles(
    worker=WORKER,
    mapping_uuid="0b7e9b8c-2f7a-4c1e-9c57-6f1f5a1d2e01",
    request_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/vuln-sync-requests",
    page_queue_name="vuln-sync-pages",
    state_table="vuln-sync-state",
)
COLD = (
    "REPORT RequestId: 3f6c\tDuration: 1503.21 ms\tBilled Duration: 1504 ms\tMemory Size: 512 MB\t"
    "Max Memory Used: 98 MB\tInit Duration: 812.40 ms\t\n"
)
WARM = (
    "REPORT RequestId: 9a1b\tDuration: 20100.00 ms\tBilled Duration: 20100 ms\tMemory Size: 512 MB\t"
    "Max Memory Used: 104 MB\t\n"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def stubbed() -> Iterator[tuple[AwsSweep, dict[str, Stubber], FakeClock]]:
    names = ("cloudformation", "lambda", "sqs", "dynamodb", "cloudwatch", "logs")
    clients = {name: boto3.client(name, region_name="us-east-1") for name in names}  # type: ignore[call-overload]
    stubs = {name: Stubber(client) for name, client in clients.items()}
    for stub in stubs.values():
        stub.activate()
    clock = FakeClock()
    sweep = AwsSweep(
        cloudformation=clients["cloudformation"],
        lambda_client=clients["lambda"],
        sqs=clients["sqs"],
        dynamodb=clients["dynamodb"],
        cloudwatch=clients["cloudwatch"],
        logs=clients["logs"],
        clock=clock,
        sleep=clock.sleep,
    )
    yield sweep, stubs, clock
    for stub in stubs.values():
        stub.assert_no_pending_responses()


def test_report_line_of_a_cold_start_carries_its_init_duration() -> None:
    cold, warm = parse_report(COLD), parse_report(WARM)

    assert cold is not None
    assert cold.cold
    assert cold.init_ms == pytest.approx(812.4)
    assert (cold.billed_ms, cold.max_memory_mb) == (1504, 98)
    assert warm is not None
    assert not warm.cold
    assert parse_report("START RequestId: 3f6c Version: $LATEST") is None


def test_starts_are_summarised_as_cold_and_warm_medians() -> None:
    reports = [r for r in (parse_report(COLD), parse_report(WARM), parse_report(WARM)) if r]

    summary = summarize_reports(reports)

    assert (summary.invocations, summary.cold) == (3, 1)
    assert summary.init_ms_median == pytest.approx(812.4)
    assert summary.warm_duration_ms_median == pytest.approx(20100.0)
    assert summary.max_memory_mb == 104
    assert summary.billed_ms_total == 1504 + 2 * 20100


def test_stack_is_found_from_its_outputs_and_the_workers_page_queue_mapping(stubbed: Any) -> None:
    sweep, stubs, _ = stubbed
    outputs = {
        "WorkerFunctionName": WORKER,
        "PageQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/vuln-sync-pages",
        "RequestQueueUrl": HANDLES.request_queue_url,
        "StateTableName": HANDLES.state_table,
    }
    stubs["cloudformation"].add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "vuln-sync",
                    "CreationTime": datetime(2026, 1, 1),
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
        {"StackName": "vuln-sync"},
    )
    stubs["lambda"].add_response(
        "list_event_source_mappings",
        {
            "EventSourceMappings": [
                {
                    "UUID": "0b7e9b8c-2f7a-4c1e-9c57-6f1f5a1d2e02",
                    "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:vuln-sync-requests",
                },
                {
                    "UUID": "0b7e9b8c-2f7a-4c1e-9c57-6f1f5a1d2e01",
                    "EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:vuln-sync-pages",
                },
            ]
        },
        {"FunctionName": WORKER},
    )

    assert sweep.discover("vuln-sync") == HANDLES


def test_point_sets_reserved_concurrency_mapping_concurrency_and_environment(stubbed: Any) -> None:
    sweep, stubs, _ = stubbed
    lam = stubs["lambda"]
    lam.add_response(
        "put_function_concurrency",
        {"ReservedConcurrentExecutions": 1},
        {"FunctionName": WORKER, "ReservedConcurrentExecutions": 1},
    )
    # AWS's MaximumConcurrency starts at 2: one worker is reserved concurrency 1 under a mapping of 2.
    lam.add_response(
        "update_event_source_mapping",
        {"UUID": "0b7e9b8c-2f7a-4c1e-9c57-6f1f5a1d2e01"},
        {"UUID": "0b7e9b8c-2f7a-4c1e-9c57-6f1f5a1d2e01", "ScalingConfig": {"MaximumConcurrency": 2}},
    )
    lam.add_response(
        "get_function_configuration",
        {"Environment": {"Variables": {"STATE_TABLE": "t", "RANGES_IN_FLIGHT": "10"}}},
        {"FunctionName": WORKER},
    )
    lam.add_response(
        "update_function_configuration",
        {},
        {
            "FunctionName": WORKER,
            "Environment": {"Variables": {"STATE_TABLE": "t", "RANGES_IN_FLIGHT": "2", "PAGE_BUDGET": "50"}},
        },
    )
    lam.add_response(
        "get_function_configuration", {"LastUpdateStatus": "InProgress"}, {"FunctionName": WORKER}
    )
    lam.add_response(
        "get_function_configuration", {"LastUpdateStatus": "Successful"}, {"FunctionName": WORKER}
    )

    sweep.configure(HANDLES, AwsPoint(concurrency=1, ranges_in_flight=2))


def test_run_is_timed_from_the_state_table_once_it_succeeds(stubbed: Any) -> None:
    sweep, stubs, _ = stubbed
    ddb = stubs["dynamodb"]
    key = {"pk": {"S": "run#r2"}, "sk": {"S": "run"}}
    ddb.add_response(
        "get_item",
        {},
        {
            "TableName": HANDLES.state_table,
            "Key": {"pk": {"S": "run#r1"}, "sk": {"S": "run"}},
            "ConsistentRead": True,
        },
    )
    ddb.add_response(
        "get_item",
        {"Item": {"status": {"S": "running"}, "started_at": {"S": "2026-11-27T00:00:00Z"}}},
        {"TableName": HANDLES.state_table, "Key": key, "ConsistentRead": True},
    )
    ddb.add_response(
        "get_item",
        {
            "Item": {
                "status": {"S": "succeeded"},
                "started_at": {"S": "2026-11-27T00:00:00Z"},
                "finished_at": {"S": "2026-11-27T00:21:30Z"},
            }
        },
        {"TableName": HANDLES.state_table, "Key": key, "ConsistentRead": True},
    )

    assert sweep.wait_for_run(HANDLES, ["r1", "r2"], timeout=3600) == ("r2", "succeeded", 1290.0)


def test_run_that_never_appears_is_reported_as_timed_out(stubbed: Any) -> None:
    sweep, stubs, _ = stubbed
    for _ in range(4):  # at 0, 10, 20 and 30 s
        stubs["dynamodb"].add_response("get_item", {}, None)

    run_id, status, _ = sweep.wait_for_run(HANDLES, ["r1"], timeout=25, poll=10)

    assert (run_id, status) == (None, "timed out")


def test_resync_request_goes_on_the_request_queue(stubbed: Any) -> None:
    sweep, stubs, _ = stubbed
    body = (
        '{"v":1,"type":"SyncRequest","resources":["vulnerabilities","vulnerability-remediations",'
        '"vulnerable-assets"],"mode":"full","reason":"loadtest"}'
    )
    stubs["sqs"].add_response(
        "send_message", {"MessageId": "m-1"}, {"QueueUrl": HANDLES.request_queue_url, "MessageBody": body}
    )

    candidates = sweep.trigger(HANDLES)

    assert len(candidates) >= 5
    assert len(set(candidates)) == len(candidates)


def test_metrics_are_summed_or_maximised_over_the_window(stubbed: Any) -> None:
    sweep, stubs, _ = stubbed
    results = [
        {"Id": "invocations", "Values": [10.0, 5.0]},
        {"Id": "concurrent_max", "Values": [3.0, 5.0]},
        {"Id": "throttles", "Values": []},
    ]
    stubs["cloudwatch"].add_response(
        "get_metric_data",
        {"MetricDataResults": results},
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY},
    )

    metrics = sweep.metrics(
        HANDLES, datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 27, 1, tzinfo=UTC)
    )

    assert metrics == {"invocations": 15.0, "concurrent_max": 5.0, "throttles": 0.0}


def test_report_lines_are_read_across_every_page_of_the_log(stubbed: Any) -> None:
    sweep, stubs, _ = stubbed
    logs = stubs["logs"]
    expected = {
        "logGroupName": f"/aws/lambda/{WORKER}",
        "startTime": ANY,
        "endTime": ANY,
        "filterPattern": '"REPORT RequestId"',
    }
    logs.add_response("filter_log_events", {"events": [{"message": COLD}], "nextToken": "t"}, expected)
    logs.add_response("filter_log_events", {"events": [{"message": WARM}]}, {**expected, "nextToken": "t"})

    reports = sweep.reports(WORKER, datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 27, 1, tzinfo=UTC))

    assert [r.cold for r in reports] == [True, False]
