"""`python -m loadtest.aws --stack NAME`: the sweep on a deployed stack, and cold/warm starts from REPORT.

Per point: set the worker's reserved concurrency and its PageQueue mapping's MaximumConcurrency (AWS
accepts 2..1000; one worker is reserved concurrency 1 with MaximumConcurrency 2), set RANGES_IN_FLIGHT
and PAGE_BUDGET in its environment, enqueue a full resync SyncRequest on RequestQueue, time the run
from the state table (started_at -> finished_at), then read the window's Lambda and SQS metrics from
CloudWatch and the worker's `REPORT` lines (Init Duration, Duration, Max Memory Used) from its logs.
Latency, limit, dataset size and cursor style are Vanta's own here: only the fleet's knobs are swept.
Uses the default AWS credentials and region (or `--region`); it changes the stack's concurrency, so
run it on a test deployment. The original settings are restored at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

RESOURCES = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
_REPORT = re.compile(
    r"REPORT RequestId: (?P<request_id>\S+)\s+Duration: (?P<duration>[\d.]+) ms\s+"
    r"Billed Duration: (?P<billed>\d+) ms\s+Memory Size: (?P<memory>\d+) MB\s+"
    r"Max Memory Used: (?P<max_memory>\d+) MB(?:\s+Init Duration: (?P<init>[\d.]+) ms)?"
)


@dataclass(frozen=True, slots=True)
class Report:
    """One invocation's REPORT line."""

    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None

    @property
    def cold(self) -> bool:
        return self.init_ms is not None


def parse_report(message: str) -> Report | None:
    """The REPORT line in `message`, or None when it is not one."""
    match = _REPORT.search(message)
    if match is None:
        return None
    init = match.group("init")
    return Report(
        request_id=match.group("request_id"),
        duration_ms=float(match.group("duration")),
        billed_ms=int(match.group("billed")),
        memory_mb=int(match.group("memory")),
        max_memory_mb=int(match.group("max_memory")),
        init_ms=float(init) if init else None,
    )


@dataclass(frozen=True, slots=True)
class StartSummary:
    """Cold and warm starts of a set of invocations (medians in ms)."""

    invocations: int
    cold: int
    init_ms_median: float | None
    cold_duration_ms_median: float | None
    warm_duration_ms_median: float | None
    max_memory_mb: int
    billed_ms_total: int


def summarize_reports(reports: Iterable[Report]) -> StartSummary:
    """Counts and medians of cold starts (with Init Duration) and warm ones."""
    items = list(reports)
    cold = [r for r in items if r.cold]
    warm = [r for r in items if not r.cold]

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    return StartSummary(
        invocations=len(items),
        cold=len(cold),
        init_ms_median=median([r.init_ms for r in cold if r.init_ms is not None]),
        cold_duration_ms_median=median([r.duration_ms for r in cold]),
        warm_duration_ms_median=median([r.duration_ms for r in warm]),
        max_memory_mb=max((r.max_memory_mb for r in items), default=0),
        billed_ms_total=sum(r.billed_ms for r in items),
    )


@dataclass(frozen=True, slots=True)
class StackHandles:
    """What the sweep touches in the deployed stack."""

    worker: str
    mapping_uuid: str
    request_queue_url: str
    page_queue_name: str
    state_table: str


@dataclass(frozen=True, slots=True)
class AwsPoint:
    concurrency: int
    ranges_in_flight: int = 10
    page_budget: int = 50


@dataclass(slots=True)
class AwsPointResult:
    point: AwsPoint
    run_id: str | None
    status: str
    wall_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    starts: StartSummary | None = None


class AwsSweep:
    """Drives the sweep with boto3 clients given by the caller (tests hand in stubbed ones)."""

    def __init__(
        self,
        *,
        cloudformation: Any,
        lambda_client: Any,
        sqs: Any,
        dynamodb: Any,
        cloudwatch: Any,
        logs: Any,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfn = cloudformation
        self.lambda_ = lambda_client
        self.sqs = sqs
        self.ddb = dynamodb
        self.cloudwatch = cloudwatch
        self.logs = logs
        self._clock = clock
        self._sleep = sleep

    def discover(self, stack: str) -> StackHandles:
        """The worker, its PageQueue mapping, RequestQueue and the state table, from the stack's outputs."""
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in self.cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        }
        worker = outputs["WorkerFunctionName"]
        page_queue_name = outputs["PageQueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        mappings = self.lambda_.list_event_source_mappings(FunctionName=worker)["EventSourceMappings"]
        uuid = next(m["UUID"] for m in mappings if m["EventSourceArn"].endswith(f":{page_queue_name}"))
        return StackHandles(
            worker=worker,
            mapping_uuid=uuid,
            request_queue_url=outputs["RequestQueueUrl"],
            page_queue_name=page_queue_name,
            state_table=outputs["StateTableName"],
        )

    def configure(self, handles: StackHandles, point: AwsPoint) -> None:
        """Set reserved concurrency, MaximumConcurrency and the worker's environment for `point`."""
        self.lambda_.put_function_concurrency(
            FunctionName=handles.worker, ReservedConcurrentExecutions=point.concurrency
        )
        self.lambda_.update_event_source_mapping(
            UUID=handles.mapping_uuid, ScalingConfig={"MaximumConcurrency": max(2, point.concurrency)}
        )
        config = self.lambda_.get_function_configuration(FunctionName=handles.worker)
        variables = dict(config.get("Environment", {}).get("Variables", {}))
        variables.update(
            {"RANGES_IN_FLIGHT": str(point.ranges_in_flight), "PAGE_BUDGET": str(point.page_budget)}
        )
        self.lambda_.update_function_configuration(
            FunctionName=handles.worker, Environment={"Variables": variables}
        )
        self.wait_until_updated(handles.worker)

    def wait_until_updated(self, function: str, timeout: float = 120.0) -> None:
        """Wait for the function's configuration update to finish; raises TimeoutError."""
        deadline = self._clock() + timeout
        while True:
            status = self.lambda_.get_function_configuration(FunctionName=function).get("LastUpdateStatus")
            if status in (None, "Successful"):
                return
            if status == "Failed" or self._clock() >= deadline:
                raise TimeoutError(f"{function}'s configuration update ended as {status}")
            self._sleep(2.0)

    def trigger(self, handles: StackHandles) -> list[str]:
        """Enqueue the resync; returns the run ids the scheduler may give it."""
        from vanta_vuln_sync.ops.runs import candidate_run_ids

        body = {
            "v": 1,
            "type": "SyncRequest",
            "resources": list(RESOURCES),
            "mode": "full",
            "reason": "loadtest",
        }
        before = self._clock()
        message_id = self.sqs.send_message(
            QueueUrl=handles.request_queue_url, MessageBody=orjson.dumps(body).decode()
        )["MessageId"]
        return candidate_run_ids(message_id, before, self._clock())

    def wait_for_run(
        self, handles: StackHandles, candidates: Sequence[str], timeout: float, poll: float = 10.0
    ) -> tuple[str | None, str, float]:
        """(run id, status, seconds from started_at to finished_at) once the run ends, or
        (id or None, "timed out", seconds waited)."""
        started = self._clock()
        run_id: str | None = None
        while True:
            for candidate in [run_id] if run_id else candidates:
                item = self.ddb.get_item(
                    TableName=handles.state_table,
                    Key={"pk": {"S": f"run#{candidate}"}, "sk": {"S": "run"}},
                    ConsistentRead=True,
                ).get("Item")
                if item is None:
                    continue
                run_id = candidate
                status = item["status"]["S"]
                if status in ("succeeded", "failed") and "finished_at" in item:
                    begin = _parse_iso(item["started_at"]["S"])
                    end = _parse_iso(item["finished_at"]["S"])
                    return run_id, status, (end - begin).total_seconds()
                break
            if self._clock() - started >= timeout:
                return run_id, "timed out", self._clock() - started
            self._sleep(poll)

    def metrics(self, handles: StackHandles, start: datetime, end: datetime) -> dict[str, float]:
        """Lambda and SQS figures for the window, one value each (sum or max over the window)."""
        period = max(60, math.ceil((end - start).total_seconds() / 60) * 60)
        queries = {
            "invocations": ("AWS/Lambda", "Invocations", "FunctionName", handles.worker, "Sum"),
            "duration_ms_sum": ("AWS/Lambda", "Duration", "FunctionName", handles.worker, "Sum"),
            "errors": ("AWS/Lambda", "Errors", "FunctionName", handles.worker, "Sum"),
            "throttles": ("AWS/Lambda", "Throttles", "FunctionName", handles.worker, "Sum"),
            "concurrent_max": (
                "AWS/Lambda",
                "ConcurrentExecutions",
                "FunctionName",
                handles.worker,
                "Maximum",
            ),
            "page_messages_sent": (
                "AWS/SQS",
                "NumberOfMessagesSent",
                "QueueName",
                handles.page_queue_name,
                "Sum",
            ),
            "page_messages_deleted": (
                "AWS/SQS",
                "NumberOfMessagesDeleted",
                "QueueName",
                handles.page_queue_name,
                "Sum",
            ),
            "page_oldest_age_max_s": (
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                "QueueName",
                handles.page_queue_name,
                "Maximum",
            ),
        }
        reply = self.cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": key,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": ns,
                            "MetricName": name,
                            "Dimensions": [{"Name": dim, "Value": value}],
                        },
                        "Period": period,
                        "Stat": stat,
                    },
                }
                for key, (ns, name, dim, value, stat) in queries.items()
            ],
            StartTime=start,
            EndTime=end,
        )
        out: dict[str, float] = {}
        for series in reply["MetricDataResults"]:
            values = series.get("Values", [])
            stat = queries[series["Id"]][4]
            out[series["Id"]] = (max(values) if stat == "Maximum" else sum(values)) if values else 0.0
        return out

    def reports(self, function: str, start: datetime, end: datetime) -> list[Report]:
        """Every REPORT line of `function` logged in the window."""
        found: list[Report] = []
        kwargs: dict[str, Any] = {
            "logGroupName": f"/aws/lambda/{function}",
            "startTime": int(start.timestamp() * 1000),
            "endTime": int(end.timestamp() * 1000),
            "filterPattern": '"REPORT RequestId"',
        }
        while True:
            reply = self.logs.filter_log_events(**kwargs)
            found += [r for e in reply.get("events", []) if (r := parse_report(e.get("message", "")))]
            token = reply.get("nextToken")
            if not token:
                return found
            kwargs["nextToken"] = token

    def run_point(self, handles: StackHandles, point: AwsPoint, timeout: float) -> AwsPointResult:
        """Configure, trigger, time and measure one point."""
        self.configure(handles, point)
        window_start = datetime.fromtimestamp(self._clock(), UTC)
        candidates = self.trigger(handles)
        run_id, status, wall = self.wait_for_run(handles, candidates, timeout)
        # CloudWatch metrics and logs arrive a minute or two late; the window is padded on the right.
        window_end = datetime.fromtimestamp(self._clock(), UTC) + timedelta(minutes=2)
        return AwsPointResult(
            point=point,
            run_id=run_id,
            status=status,
            wall_s=wall,
            metrics=self.metrics(handles, window_start, window_end),
            starts=summarize_reports(self.reports(handles.worker, window_start, window_end)),
        )


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def points_for(full: bool) -> list[AwsPoint]:
    if not full:
        return [AwsPoint(2), AwsPoint(5)]
    return [AwsPoint(c) for c in (1, 2, 5, 10)] + [AwsPoint(5, ranges_in_flight=r) for r in (1, 5)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.aws", description=__doc__)
    parser.add_argument("--stack", required=True, help="the deployed stack's name")
    parser.add_argument("--region", default=None)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    import boto3

    session = boto3.session.Session(region_name=args.region)
    sweep = AwsSweep(
        cloudformation=session.client("cloudformation"),
        lambda_client=session.client("lambda"),
        sqs=session.client("sqs"),
        dynamodb=session.client("dynamodb"),
        cloudwatch=session.client("cloudwatch"),
        logs=session.client("logs"),
    )
    handles = sweep.discover(args.stack)
    original = sweep.lambda_.get_function_concurrency(FunctionName=handles.worker).get(
        "ReservedConcurrentExecutions"
    )
    results: list[AwsPointResult] = []
    try:
        for point in points_for(args.full):
            print(
                f"concurrency {point.concurrency}, ranges in flight {point.ranges_in_flight} ...", flush=True
            )
            result = sweep.run_point(handles, point, args.timeout)
            results.append(result)
            print(
                f"    {result.status} in {result.wall_s:.0f} s; {result.metrics}; {result.starts}", flush=True
            )
    finally:
        if original is not None:
            sweep.configure(handles, AwsPoint(int(original)))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            **asdict(r.point),
            "run_id": r.run_id,
            "status": r.status,
            "wall_s": round(r.wall_s, 1),
            **r.metrics,
            **(asdict(r.starts) if r.starts else {}),
        }
        for r in results
    ]
    (args.out / "aws_points.json").write_text(json.dumps(rows, indent=2))
    with (args.out / "aws_points.csv").open("w", newline="") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0 if all(r.status == "succeeded" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
