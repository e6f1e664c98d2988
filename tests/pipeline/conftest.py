"""The pipeline's AWS resources on moto server (made directly, not from the template), the simulator, and
the function environment the handlers read, as template.yaml sets it."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import orjson
import pytest

from state_table import STATE_TABLE_SHAPE
from vanta_vuln_sync.aws import AwsClients, open_clients
from vanta_vuln_sync.handlers.container import build_services, shutdown_container
from vanta_vuln_sync.messages import PageRange
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.settings import settings_from_env
from vanta_vuln_sync.simulator import Simulator

REGION = "us-east-1"
SimulatorFactory = Callable[..., Awaitable[Simulator]]


@dataclass
class Stack:
    """One isolated deployment: table, bucket, queues with DLQs, secret, and the simulator behind it."""

    endpoint: str
    sim: Simulator
    env: dict[str, str]
    table: str
    bucket: str
    page_queue_url: str
    request_queue_url: str
    page_dlq_url: str
    request_dlq_url: str
    s3: Any = field(repr=False)
    sqs: Any = field(repr=False)
    ddb: Any = field(repr=False)

    def send_request(self, body: bytes | str) -> str:
        """Put a SyncRequest (or anything) on the request queue; returns the message id."""
        text = body.decode() if isinstance(body, bytes) else body
        return str(self.sqs.send_message(QueueUrl=self.request_queue_url, MessageBody=text)["MessageId"])

    def scope_item(self, scope: str) -> dict[str, Any]:
        reply = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"scope#{scope}"}, "sk": {"S": "scope"}},
            ConsistentRead=True,
        )
        return dict(reply.get("Item", {}))

    def counted_before(self, scope: str, resources: tuple[str, ...]) -> None:
        """Record a successful run of `scope` that counted every record of `resources` (a first run
        plans one range a resource; a later run fills its range slots from these counts)."""
        counts = {r: {"N": str(len(self.sim.dataset.records(r)))} for r in resources}
        self.ddb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"scope#{scope}"},
                "sk": {"S": "scope"},
                "last_success_run_id": {"S": "20261101T000000Z-earlier"},
                "last_success_started_at": {"S": "2026-11-01T00:00:00Z"},
                "counts": {"M": counts},
            },
        )

    def last_success(self, scope: str) -> str | None:
        item = self.scope_item(scope)
        return item["last_success_run_id"]["S"] if "last_success_run_id" in item else None

    def run_item(self, run_id: str) -> dict[str, Any]:
        reply = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": f"run#{run_id}"}, "sk": {"S": "run"}}, ConsistentRead=True
        )
        return dict(reply.get("Item", {}))

    def plan_item(self, run_id: str) -> dict[str, Any]:
        return self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": f"run#{run_id}"}, "sk": {"S": "plan"}}
        )["Item"]

    def range_items(self, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.ddb.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :range)",
                ExpressionAttributeValues={":pk": {"S": f"run#{run_id}"}, ":range": {"S": "range#"}},
                ConsistentRead=True,
            )["Items"]
        )

    def run_ids(self) -> list[str]:
        # Filtered: the tests poll this several times a second, and moto's cost is in serializing items.
        pages = self.ddb.get_paginator("scan").paginate(
            TableName=self.table,
            ConsistentRead=True,
            FilterExpression="sk = :run AND begins_with(pk, :prefix)",
            ProjectionExpression="pk",
            ExpressionAttributeValues={":run": {"S": "run"}, ":prefix": {"S": "run#"}},
        )
        return sorted(i["pk"]["S"][4:] for page in pages for i in page["Items"])

    def get_json(self, key: str) -> Any:
        return orjson.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def manifest(self, run_id: str) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=self.bucket, Key=f"runs/{run_id}/manifest.json")["Body"].read()
        return dict(orjson.loads(body))

    def raw_keys(self, run_id: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="raw/"):
            keys += [o["Key"] for o in page.get("Contents", []) if f"/run={run_id}/" in o["Key"]]
        return sorted(keys)

    def records_by_key(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every raw object the run wrote, decoded: key -> records."""
        out: dict[str, list[dict[str, Any]]] = {}
        for key in self.raw_keys(run_id):
            body = gzip.decompress(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            out[key] = [orjson.loads(line) for line in body.splitlines() if line]
        return out

    def dlq_messages(self, dlq_url: str) -> list[dict[str, Any]]:
        reply = self.sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
        )
        return list(reply.get("Messages", []))


# A stack, the services opened on it, and one range of a run planned there.
PlannedRange = tuple[Stack, Services, PageRange]


def _create_stack(endpoint: str, sim: Simulator, **settings: str) -> Stack:
    name = f"vs-{uuid.uuid4().hex[:10]}"
    kwargs: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION}
    s3, sqs, ddb = (
        boto3.client("s3", **kwargs),
        boto3.client("sqs", **kwargs),
        boto3.client("dynamodb", **kwargs),
    )
    secrets = boto3.client("secretsmanager", **kwargs)
    ddb.create_table(TableName=name, **STATE_TABLE_SHAPE)
    s3.create_bucket(Bucket=name)
    urls: dict[str, str] = {}
    for queue in ("page", "request"):
        dlq = sqs.create_queue(QueueName=f"{name}-{queue}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = orjson.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).decode()
        urls[queue] = sqs.create_queue(
            QueueName=f"{name}-{queue}",
            Attributes={"VisibilityTimeout": "60", "RedrivePolicy": redrive},
        )["QueueUrl"]
        urls[f"{queue}-dlq"] = dlq
    secret = secrets.create_secret(
        Name=f"{name}-vanta",
        SecretString=orjson.dumps({"client_id": sim.client_id, "client_secret": sim.client_secret}).decode(),
    )
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "STATE_TABLE": name,
        "DATA_BUCKET": name,
        "PAGE_QUEUE_URL": urls["page"],
        "PAGE_DLQ_URL": urls["page-dlq"],
        "REQUEST_DLQ_URL": urls["request-dlq"],
        "VANTA_SECRET_ARN": secret["ARN"],
        "VANTA_BASE_URL": sim.base_url,
        "VANTA_AUTH_URL": sim.auth_url,
        "VANTA_RATE_LIMIT_PER_MINUTE": "60000",
        # The simulator answers at once and the limit is far above Vanta's: the container's CPU a page is
        # set so small that it does not shape these runs, their range slots do (run/split.py: compact),
        # as at Vanta's real limits.
        "PAGE_CPU_SECONDS": "0.0001",
        "PAGE_BUDGET": "10",
        "RANGES_IN_FLIGHT": "10",
        "POWERTOOLS_METRICS_NAMESPACE": "VantaVulnSyncTest",
        "POWERTOOLS_SERVICE_NAME": "vanta-vuln-sync",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        # Every step through the queue, as these tests drive and break it message by message; steps an
        # invocation takes on itself are tested in test_follow_ups.py (and run in the embedded runtime).
        "TAKE_ON_STEPS": "false",
        **settings,
    }
    return Stack(
        endpoint=endpoint,
        sim=sim,
        env=env,
        table=name,
        bucket=name,
        page_queue_url=urls["page"],
        request_queue_url=urls["request"],
        page_dlq_url=urls["page-dlq"],
        request_dlq_url=urls["request-dlq"],
        s3=s3,
        sqs=sqs,
        ddb=ddb,
    )


@pytest.fixture
async def stack(
    moto_server: str, simulator: SimulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Awaitable[Stack]]:
    """Factory: `await stack(sim={"vulnerabilities": 500}, PAGE_BUDGET="2")` makes fresh resources, starts
    the simulator and puts the function environment into os.environ (handlers read it at cold start)."""

    async def make(sim: dict[str, Any] | None = None, **settings: str) -> Stack:
        started = await simulator(**(sim or {}))
        made = _create_stack(moto_server, started, **settings)
        for name, value in made.env.items():
            monkeypatch.setenv(name, value)
        return made

    return make


@pytest.fixture
def fresh_container() -> Iterator[None]:
    """The test thread's container is closed afterwards (its loop, session and clients)."""
    yield
    shutdown_container()


@pytest.fixture
async def open_services() -> AsyncIterator[Callable[..., Awaitable[Services]]]:
    """Factory: services on the test's loop, from the environment `stack` set; `wrap` may replace the AWS
    clients with thin crash-injecting wrappers. Everything opened is closed when the test ends."""
    async with AsyncExitStack() as exits:

        async def make(wrap: Callable[[AwsClients], AwsClients] | None = None, **overrides: Any) -> Services:
            settings = replace(settings_from_env(), **overrides)
            aws = await open_clients(exits, region=REGION)
            services = await build_services(exits, settings, wrap(aws) if wrap else aws)
            return services

        yield make
