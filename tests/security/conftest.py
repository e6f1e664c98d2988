"""One full sync in the embedded runtime, observed from every side, shared by the security tests.

The real template is deployed into its own moto server, the real handlers run under the SQS poller
emulation against the simulator (with a recognisable client id and secret, and some injected 5xx and
token-endpoint failures so error paths log too), and a poison message goes to each queue. While it runs:
- every AWS API call made through botocore or aiobotocore is recorded by a `before-call` hook added to
  botocore's built-in handlers (so it is on every client any code makes), with the calling thread: the
  local runtime runs each Lambda container as a thread named `lambda:<function>#<n>`;
- every log record (our loggers and Powertools' at DEBUG) is kept, formatted as it is emitted;
- stdout is captured (Powertools metrics print their EMF blobs there).
Afterwards every S3 object version, every state table item and every DLQ message is read, and the
servers are stopped: the tests only look at what was gathered.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import logging
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.handlers
import pytest

from vanta_vuln_sync.local.world import World, received_messages
from vanta_vuln_sync.simulator import SimulatorConfig

# Recognisable credentials: nothing else in a sync looks like these.
CLIENT_ID = f"vvs-client-id-{uuid.uuid4().hex}"
CLIENT_SECRET = f"vvs-client-secret-{uuid.uuid4().hex}"
VULNERABILITIES = 200
SYNC_TIMEOUT = 90.0
SCHEDULE_INPUT = Path(__file__).resolve().parents[2] / "events" / "schedule-input.json"
POISON = {
    "request": '{"v": 1, "type": "SyncRequest", "resources": ["nope"]}',
    "page": "not json at all",
    "finalize": '{"v": 1, "type": "Finalize"}',  # no run id
}
QUEUES = ("RequestQueue", "PageQueue", "FinalizeQueue", "RequestDLQ", "PageDLQ", "FinalizeDLQ")
_PARAMS = "vvs_security_test_api_params"
_CALL = "vvs_security_test_call"
SERVICE_LOGGER = "vanta-vuln-sync"  # POWERTOOLS_SERVICE_NAME in the template: Powertools' logger name


@dataclass
class AwsCall:
    """One AWS API call as botocore was asked to make it, and the HTTP status it got."""

    thread: str
    aio: bool  # made through aiobotocore (the handlers' clients) rather than boto3
    service: str  # the endpoint prefix, which is also the IAM prefix for the services used here
    operation: str  # e.g. PutObject
    params: dict[str, Any]
    status: int | None = None


class CallRecorder:
    """A botocore `before-call` handler that keeps every call; thread-safe."""

    def __init__(self) -> None:
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()

    @staticmethod
    def keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """`before-parameter-build`: the API parameters, kept in the call's context for `before-call`
        (which sees only the serialized request, but also the signer, which tells aio from boto3)."""
        context[_PARAMS] = dict(params)

    def __call__(self, model: Any, context: dict[str, Any], request_signer: Any = None, **_: Any) -> None:
        call = AwsCall(
            thread=threading.current_thread().name,
            aio=type(request_signer).__module__.startswith("aiobotocore"),
            service=model.service_model.endpoint_prefix,
            operation=model.name,
            params=context.get(_PARAMS, {}),
        )
        context[_CALL] = call
        with self._lock:
            self.calls.append(call)

    @staticmethod
    def keep_status(http_response: Any, context: dict[str, Any], **_: Any) -> None:
        """`after-call` (also sent for error answers, before botocore raises): the HTTP status."""
        call = context.get(_CALL)
        if call is not None:
            call.status = http_response.status_code


class _LockedText(io.StringIO):
    """stdout for many threads at once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)


class _KeepRecords(logging.Handler):
    """Keeps every record, formatted as the service's own handler formats it (Powertools JSON)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # a record that cannot be formatted is itself a finding
            line = f"UNFORMATTABLE {record.name}: {exc!r}"
        with self._lines_lock:
            self.records.append(record)
            self.lines.append(line)


@dataclass
class SyncedStack:
    """Everything a full sync left behind, gathered before the servers stopped."""

    stack_name: str
    function_names: dict[str, str]  # "scheduler" / "worker" / "finalize" -> deployed function name
    parameters: dict[str, str]
    resources: dict[str, str]  # logical id -> physical id (queue URL, bucket name, table name, ...)
    queue_arns: dict[str, str]  # queue URL -> ARN
    secret_arn: str
    run_id: str | None
    run_status: str | None
    calls: list[AwsCall]
    log_lines: list[str]
    log_records: list[logging.LogRecord]
    stdout: str
    s3_objects: dict[str, bytes]  # "key@version" -> body, gunzipped where gzip
    table_items: list[dict[str, Any]]
    dlq_messages: dict[str, list[dict[str, Any]]]  # "request" / "page" / "finalize" -> messages
    function_errors: dict[str, str]
    token: str | None  # the access token the simulator issued (the live one at the end of the sync)
    tokens_minted: int
    simulator_counters: dict[str, Any] = field(default_factory=dict)

    def queue_arn(self, url: str) -> str:
        """The ARN of a queue from any of its URLs (hosts differ between CloudFormation and SQS)."""
        name = url.rstrip("/").rsplit("/", 1)[-1]
        (arn,) = [arn for arn in self.queue_arns.values() if arn.rsplit(":", 1)[-1] == name]
        return arn

    def calls_of(self, function: str) -> list[AwsCall]:
        """The calls made in the containers of `function` ("scheduler", "worker" or "finalize")."""
        prefix = f"lambda:{self.function_names[function]}#"
        return [call for call in self.calls if call.thread.startswith(prefix)]


@contextlib.contextmanager
def _recording(recorder: CallRecorder) -> Iterator[None]:
    hooks = [
        ("before-parameter-build", recorder.keep_params),
        ("before-call", recorder),
        ("after-call", recorder.keep_status),
    ]
    botocore.handlers.BUILTIN_HANDLERS.extend(hooks)
    try:
        yield
    finally:
        for hook in hooks:
            botocore.handlers.BUILTIN_HANDLERS.remove(hook)


@contextlib.contextmanager
def _capturing_logs(keep: _KeepRecords) -> Iterator[None]:
    """Every record that reaches the root logger into `keep`: ours at DEBUG, third-party at INFO
    (botocore's DEBUG wire log prints response bodies by design and is never on in Lambda)."""
    root, ours = logging.getLogger(), logging.getLogger("vanta_vuln_sync")
    saved = [(root, root.level), (ours, ours.level)]
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    keep.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root.addHandler(keep)
    try:
        yield
    finally:
        root.removeHandler(keep)
        for logger, level in saved:
            logger.setLevel(level)


@contextlib.contextmanager
def _capturing_service_log(lines: io.StringIO) -> Iterator[None]:
    """Powertools' own output (JSON lines) into `lines`, at DEBUG. Call after the handlers are imported:
    Powertools' handler is made with the first Logger of the service and writes to the stdout of then."""
    service = logging.getLogger(SERVICE_LOGGER)
    streams = [h for h in service.handlers if isinstance(h, logging.StreamHandler)]
    assert streams, "the Powertools logger has no handler: were the handlers imported?"
    # Swapped by assignment: `setStream` flushes the old stream, which an earlier test's captured
    # stdout (the handler was made while pytest captured it) may have closed.
    saved_level, saved_streams = service.level, [h.stream for h in streams]
    service.setLevel(logging.DEBUG)
    for handler in streams:
        handler.stream = lines
    try:
        yield
    finally:
        service.setLevel(saved_level)
        for handler, stream in zip(streams, saved_streams, strict=True):
            handler.stream = stream


def _wait_for_run(ddb: Any, table: str, timeout: float) -> tuple[str | None, str | None]:
    """(run id, status) of the full sync once it has ended, or (None, None) after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
        for item in items:
            if item["pk"]["S"].startswith("run#") and item["sk"]["S"] == "run":
                status = item.get("status", {}).get("S")
                if status in ("succeeded", "failed"):
                    return item["pk"]["S"].removeprefix("run#"), status
        time.sleep(0.3)
    return None, None


def _wait_for_messages(sqs: Any, urls: list[str], timeout: float) -> None:
    """Until each queue holds a message (the poison ones parked) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depths = [
            int(
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            for url in urls
        ]
        if all(depths):
            return
        time.sleep(0.2)


def _s3_objects(s3: Any, bucket: str) -> dict[str, bytes]:
    objects: dict[str, bytes] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])[
                "Body"
            ].read()
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            objects[f"{version['Key']}@{version['VersionId']}"] = body
    return objects


# Session scope: built once per process whatever order that process runs its tests in (tests/conftest.py
# puts its tests in one pytest-xdist group). What it yields is plain data gathered after the world
# stopped, so holding it to the end costs only memory.
@pytest.fixture(scope="session")
def synced_stack() -> SyncedStack:
    """Deploy, run one full sync (plus two poison messages), gather everything, stop; see module doc."""
    recorder, keep, stdout, service_log = CallRecorder(), _KeepRecords(), _LockedText(), _LockedText()
    stack_name = f"vvs-sec-{uuid.uuid4().hex[:8]}"
    world = World(
        SimulatorConfig(
            seed=5,
            vulnerabilities=VULNERABILITIES,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            error_rate=0.05,
            token_error_rate=0.3,
            failed_cursor_requests=1,  # a worker's step fails once
        )
    )
    with _recording(recorder), _capturing_logs(keep), contextlib.redirect_stdout(stdout), world:
        parameters: dict[str, str | int] = {
            "VantaRateLimitPerMinute": 1000,
            "WorkerMaxConcurrency": 2,
            "PageBudget": 2,
            "LogLevel": "DEBUG",
        }
        deployed = world.deploy(parameters, stack_name=stack_name)
        cfn, sqs, ddb, s3 = (world.client(name) for name in ("cloudformation", "sqs", "dynamodb", "s3"))
        resources = {
            r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
            for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
            for r in page["StackResourceSummaries"]
        }
        outputs = deployed.outputs
        queue_arns = {
            url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for url in (
                resources[q]
                for q in (
                    "RequestQueue",
                    "PageQueue",
                    "FinalizeQueue",
                    "RequestDLQ",
                    "PageDLQ",
                    "FinalizeDLQ",
                )
            )
        }
        # EMF to stdout, to be searched.
        # A failed page record comes back a second later (handlers/retry_later.py; not by the
        # poller's shortcut, which would make the call in the worker's name).
        poller = world.start_poller(
            environment={"POWERTOOLS_METRICS_DISABLED": "false", "PAGE_RETRY_SECONDS": "1"},
            failed_visibility_timeout=None,
        )
        with _capturing_service_log(service_log):
            for queue, body in (
                ("RequestQueueUrl", POISON["request"]),
                ("PageQueueUrl", POISON["page"]),
                ("FinalizeQueueUrl", POISON["finalize"]),
                ("RequestQueueUrl", SCHEDULE_INPUT.read_text()),  # the schedule's own full sync
            ):
                world.send(queue, body)
            run_id, status = _wait_for_run(ddb, outputs["StateTableName"], SYNC_TIMEOUT)
            _wait_for_messages(
                sqs,
                [outputs["RequestDLQUrl"], outputs["PageDLQUrl"], outputs["FinalizeDLQUrl"]],
                timeout=10.0,
            )
            stats = poller.stats()
            world.stop_poller()
        table_items = ddb.scan(TableName=outputs["StateTableName"], ConsistentRead=True)["Items"]
        # The token as Vanta (the simulator) issued it, to search for; the table holds it sealed.
        live = world.sim._token
        token = live.value if live is not None else None
        assert world.simulator is not None
        counters = world.simulator.counters()
        gathered = SyncedStack(
            stack_name=stack_name,
            function_names={
                "scheduler": f"{stack_name}-scheduler",
                "worker": f"{stack_name}-worker",
                "finalize": f"{stack_name}-finalize",
            },
            parameters={
                **{k: str(v) for k, v in parameters.items()},
                "VantaBaseUrl": world.vanta.base_url,
                "VantaAuthUrl": world.vanta.auth_url,
                "AllowCustomVantaHost": "true",
                "VantaSecretArn": deployed.secret_arn,
            },
            resources=resources,
            queue_arns=queue_arns,
            secret_arn=deployed.secret_arn,
            run_id=run_id,
            run_status=status,
            calls=list(recorder.calls),
            log_lines=service_log.getvalue().splitlines() + list(keep.lines),
            log_records=list(keep.records),
            stdout=stdout.getvalue(),
            s3_objects=_s3_objects(s3, outputs["DataBucketName"]),
            table_items=table_items,
            dlq_messages={
                "request": received_messages(sqs, outputs["RequestDLQUrl"]),
                "page": received_messages(sqs, outputs["PageDLQUrl"]),
                "finalize": received_messages(sqs, outputs["FinalizeDLQUrl"]),
            },
            function_errors={n: s.last_error for n, s in stats.functions.items() if s.last_error},
            token=token,
            tokens_minted=int(counters["tokens_minted"]),
            simulator_counters=counters,
        )
    return gathered


def _nox_stub() -> types.ModuleType:
    """Enough of nox for noxfile.py to import (the test venv does not install nox)."""

    def session(*args: Any, **_: Any) -> Any:
        if args and callable(args[0]):
            return args[0]
        return lambda function: function

    stub = types.ModuleType("nox")
    stub.session = session  # type: ignore[attr-defined]
    stub.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    stub.Session = object  # type: ignore[attr-defined]
    return stub


@pytest.fixture(scope="session")
def noxfile() -> Iterator[Any]:
    """noxfile.py as a module (its `lambda_modules` says what goes into the Lambda package)."""
    saved = sys.modules.get("nox")
    if saved is None:
        sys.modules["nox"] = _nox_stub()
    try:
        spec = importlib.util.spec_from_file_location(
            "noxfile_under_test", Path(__file__).resolve().parents[2] / "noxfile.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        if saved is None:
            sys.modules.pop("nox", None)
