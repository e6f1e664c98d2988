"""`vuln-sync resync | status | redrive`: operating a deployed stack (or the embedded one, in tests).

The stack comes from `--stack` or `VULN_SYNC_STACK`; its queues, table and bucket from its outputs
(`RequestQueueUrl`, `PageQueueUrl`, `RequestDLQUrl`, `PageDLQUrl`, `StateTableName`, `DataBucketName`).
AWS credentials and region come from the usual places (environment, profile, SSO). `--stack local` is
the stack `vuln-sync local --serve` is serving: its endpoint and credentials come from the state file it
writes (`ops/served.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from vanta_vuln_sync.cli import CliError, resources_help
from vanta_vuln_sync.messages import SYNC_RESOURCES

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from vanta_vuln_sync.ops.runs import RunProgress
    from vanta_vuln_sync.store.rate import RateState
    from vanta_vuln_sync.store.state import RunState, RunStore

T = TypeVar("T")
REQUIRED_OUTPUTS = ("RequestQueueUrl", "PageQueueUrl", "RequestDLQUrl", "PageDLQUrl", "StateTableName")
STACK_HELP = "the deployed stack's name, or local (`vuln-sync local --serve`) (default: $VULN_SYNC_STACK)"
LATEST_MEANS = "the last successful full sync (scope all)"

RESYNC_EXAMPLES = f"""\
examples:
  vuln-sync resync --resource vulnerabilities --filter severity=CRITICAL --stack vuln-sync
  vuln-sync resync --resource vulnerability-remediations --filter remediatedAfterDate=2026-01-01T00:00:00Z
  vuln-sync resync --resource vulnerabilities,vulnerable-assets --full --reason "asset inventory audit"
  vuln-sync resync -r vulnerabilities -r vulnerability-remediations --filter severity=HIGH
  vuln-sync resync --resource vulnerabilities --filter vulnerabilities:isFixAvailable=true --stack local
  vuln-sync resync --full                            # all three resources: the schedule's full sync

A filter applies to every resource named; RESOURCE:NAME=VALUE applies it to one. Without --resource,
all of {", ".join(SYNC_RESOURCES)} are synced.

The same request without this tool:
  aws sqs send-message --queue-url <RequestQueueUrl> --message-body file://events/sync-request-resync-critical.json
"""
STATUS_EXAMPLES = f"""\
examples:
  vuln-sync status --stack vuln-sync                 # latest: {LATEST_MEANS}
  vuln-sync status 20260101T060000Z-1a2b3c4d5e --stack vuln-sync
  vuln-sync status --stack local                     # the stack `vuln-sync local --serve` serves

`latest` means {LATEST_MEANS} here as in `vuln-sync report`; the runs started since (of any
scope: a full sync running or failed, a resync) are listed under it with their status. Any run by its
id, as `vuln-sync resync` prints it.

Exit code: 0 when the run succeeded or is running, 1 when it failed.
"""
REDRIVE_EXAMPLES = """\
examples:
  vuln-sync redrive --queue page --stack vuln-sync   # show PageDLQ, ask, move its messages back
  vuln-sync redrive --queue request --yes            # no question asked (scripts)
  vuln-sync redrive --queue finalize                 # a run's Finalize, after fixing why it failed
  vuln-sync redrive --queue page --stack local       # the stack `vuln-sync local --serve` serves
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `resync`, `status` and `redrive` to the `vuln-sync` command line."""
    resync = _parser(
        subparsers,
        "resync",
        "enqueue a targeted sync request",
        RESYNC_EXAMPLES + "\n" + resources_help(SYNC_RESOURCES),
    )
    resync.add_argument(
        "-r",
        "--resource",
        dest="resources",
        action="append",
        default=[],
        metavar="R[,R]",
        help="a resource to sync again (repeatable or comma-separated; default: all of "
        f"{', '.join(SYNC_RESOURCES)})",
    )
    resync.add_argument(
        "--filter",
        dest="filters",
        action="append",
        default=[],
        metavar="[RESOURCE:]NAME=VALUE",
        help="a Vanta filter, for every resource named or only RESOURCE (repeatable)",
    )
    resync.add_argument(
        "--full", action="store_true", help="list everything (default: incremental where possible)"
    )
    resync.add_argument("--reason", default="manual resync", help="why (kept with the run)")
    resync.add_argument(
        "--wait",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds to wait for the run id (default 20, 0: none)",
    )
    resync.set_defaults(func=run_resync)
    status = _parser(subparsers, "status", "show a run's progress", STATUS_EXAMPLES)
    status.add_argument(
        "run",
        nargs="?",
        default="latest",
        metavar="RUN",
        help=f"a run id, or latest ({LATEST_MEANS}; the default)",
    )
    status.set_defaults(func=run_status)
    redrive = _parser(subparsers, "redrive", "move a DLQ's messages back to their queue", REDRIVE_EXAMPLES)
    redrive.add_argument(
        "--queue", default="page", metavar="request|page|finalize", help="which DLQ (default page)"
    )
    redrive.add_argument("--yes", action="store_true", help="do not ask before moving")
    redrive.set_defaults(func=run_redrive)


def _parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, epilog: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default=None, metavar="NAME", help=STACK_HELP)
    return parser


@dataclass(frozen=True, slots=True)
class Stack:
    """A stack's name, its outputs, and how to reach it: `option` is what to pass as --stack to reach
    it again; `client_kwargs` point clients at a served local stack (empty for AWS)."""

    name: str
    outputs: dict[str, str]
    option: str = ""
    client_kwargs: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client of `service` where the stack lives."""
        return _boto3_session().client(service, **self.client_kwargs, **kwargs)


def _aws_call(what: str, call: Callable[[], T]) -> T:
    """Run a boto3 call, turning the errors a user can fix into one-line CliErrors."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        return call()
    except NoCredentialsError:
        raise CliError(
            f"{what}: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        ) from None
    except NoRegionError:
        raise CliError(f"{what}: no AWS region (set AWS_REGION or pass a profile that has one)") from None
    except EndpointConnectionError as exc:
        raise CliError(f"{what}: cannot reach AWS ({exc})") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CliError(f"{what}: {error.get('Code', 'error')}: {error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise CliError(f"{what}: {exc}") from None


def _boto3_session() -> Any:
    """A boto3 session on the process's one botocore loader (`aws.with_shared_models`)."""
    import boto3
    import botocore.session

    from vanta_vuln_sync.aws import with_shared_models

    return boto3.session.Session(botocore_session=with_shared_models(botocore.session.get_session()))


def resolve_stack(name: str | None) -> Stack:
    """The stack's outputs; raises CliError when no stack is named, it does not exist, or lacks outputs."""
    from botocore.exceptions import ClientError

    from vanta_vuln_sync.ops.served import LOCAL_STACK, ServedStackError, read_served

    stack_name = name or os.environ.get("VULN_SYNC_STACK")
    if not stack_name:
        raise CliError("no stack: pass --stack NAME (or local) or set VULN_SYNC_STACK")
    option, client_kwargs = stack_name, dict[str, Any]()
    if stack_name == LOCAL_STACK:
        try:
            served = read_served()
        except ServedStackError as exc:
            raise CliError(str(exc)) from None
        stack_name, client_kwargs = served.stack_name, served.client_kwargs()

    def describe() -> dict[str, str]:
        try:
            stacks = (
                _boto3_session()
                .client("cloudformation", **client_kwargs)
                .describe_stacks(StackName=stack_name)["Stacks"]
            )
        except ClientError as exc:
            if "does not exist" in str(exc):
                raise CliError(f"stack {stack_name!r} does not exist in this account and region") from None
            raise
        return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}

    outputs = _aws_call(f"reading stack {stack_name}", describe)
    missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
    if missing:
        raise CliError(f"stack {stack_name!r} has no output {', '.join(missing)}: is it a vuln-sync stack?")
    return Stack(stack_name, outputs, option, client_kwargs)


def _run_async(make: Callable[[RunStore, Any], Coroutine[Any, Any, T]], stack: Stack, what: str) -> T:
    """Run `make(store, ddb)` with an aiobotocore DynamoDB client on the stack's state table."""
    from vanta_vuln_sync.aws import new_session
    from vanta_vuln_sync.store.state import RunStore

    async def main() -> T:
        async with new_session().create_client("dynamodb", **stack.client_kwargs) as ddb:
            return await make(RunStore(ddb, stack.outputs["StateTableName"]), ddb)

    return _aws_call(what, lambda: asyncio.run(main()))


def _parse_resources(given: list[str]) -> tuple[str, ...]:
    """The resources named by --resource (repeated or comma-separated), in the canonical order; all of
    them when none is named. Raises CliError for an unknown one."""
    names = {name.strip() for item in given for name in item.split(",")}
    unknown = sorted(names - set(SYNC_RESOURCES))  # an empty name too: `-r ""` is a mistake, not "all"
    if unknown:
        raise CliError(f"unknown resource {unknown[0]!r}; use one or more of: {', '.join(SYNC_RESOURCES)}")
    return tuple(r for r in SYNC_RESOURCES if r in names) if names else SYNC_RESOURCES


def _parse_filters(pairs: list[str], resources: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """`[RESOURCE:]NAME=VALUE` pairs as filters per resource: unqualified ones for every resource, and
    each checked by `validate_filters` (as Vanta wants the values). Raises CliError."""
    from vanta_vuln_sync.vanta import InvalidFilterError, validate_filters

    given: dict[str, dict[str, str]] = {}
    for pair in pairs:
        target, sep, value = pair.partition("=")
        resource, colon, name = target.rpartition(":")
        if not sep or not name.strip():
            raise CliError(f"--filter takes [RESOURCE:]NAME=VALUE, got {pair!r}")
        if colon and resource not in resources:
            raise CliError(
                f"--filter {pair!r} names {resource!r}, which is not among the resources synced "
                f"({', '.join(resources)})"
            )
        for each in (resource,) if colon else resources:
            given.setdefault(each, {})[name.strip()] = value.strip()
    try:
        return {resource: validate_filters(resource, filters) for resource, filters in given.items()}
    except InvalidFilterError as exc:
        hint = " (RESOURCE:NAME=VALUE applies a filter to one resource only)" if len(resources) > 1 else ""
        raise CliError(f"{exc}{hint}") from None


def run_resync(args: argparse.Namespace) -> int:
    """Validate the request, send it to RequestQueue, and wait (briefly) for the run it starts."""
    from vanta_vuln_sync.messages import MessageError, SyncRequest, parse_sync_request
    from vanta_vuln_sync.ops.runs import candidate_run_ids, find_run
    from vanta_vuln_sync.run.schedule import scope_key

    resources = _parse_resources(args.resources)
    filters = _parse_filters(args.filters, resources)
    try:
        request = parse_sync_request(
            SyncRequest(
                resources=resources,
                filters=filters,
                mode="full" if args.full else "incremental",
                reason=args.reason,
            ).to_json()
        )
    except MessageError as exc:
        raise CliError(str(exc)) from None
    stack = resolve_stack(args.stack)
    sqs = stack.client("sqs")
    before = time.time()
    message_id = _aws_call(
        "sending the request",
        lambda: sqs.send_message(
            QueueUrl=stack.outputs["RequestQueueUrl"], MessageBody=request.to_json().decode()
        ),
    )["MessageId"]
    candidates = candidate_run_ids(message_id, before, time.time())
    scope = scope_key(request)
    print(
        f"sent SyncRequest {message_id} ({', '.join(resources)}; {request.mode}; scope {scope}) "
        f"to {stack.name}'s RequestQueue"
    )

    async def wait_for_run(store: RunStore, _: Any) -> tuple[str, bool] | None:
        deadline = time.monotonic() + args.wait
        while True:
            run = await find_run(store, candidates)
            if run is not None:
                return run.run_id, False
            holder = (await store.get_scope(scope)).running_run_id
            if holder and holder not in candidates and await store.get_run(holder) is not None:
                return holder, True
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(1.0)

    found = _run_async(wait_for_run, stack, "waiting for the run") if args.wait > 0 else None
    if found is None:
        expected = candidates[len(candidates) // 2]
        print(f"the scheduler has not planned it yet; its run id will be about {expected}")
        print(f"follow it with: vuln-sync status {expected} --stack {stack.option}")
        return 0
    run_id, joined = found
    if joined:
        print(f"a run of the same scope was already running; the request joined run {run_id}")
    else:
        print(f"run {run_id} planned")
    print(f"follow it with: vuln-sync status {run_id} --stack {stack.option}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print a run's progress (committed steps) and the fleet's Vanta requests as they happen (the rate
    limiter's item); 1 when the run failed."""
    from vanta_vuln_sync.ops.runs import latest_run_id, read_progress, runs_after
    from vanta_vuln_sync.store.rate import read_rate_state

    stack = resolve_stack(args.stack)

    async def read(store: RunStore, ddb: Any) -> tuple[RunProgress, RateState, list[RunState]]:
        run_id, newer = args.run, []
        table = stack.outputs["StateTableName"]
        if run_id == "latest":
            run_id = await latest_run_id(store)
            newer = await runs_after(ddb, table, store, run_id)
            if run_id is None:
                since = (
                    "; newest runs: " + ", ".join(f"{r.run_id} ({r.status})" for r in newer) if newer else ""
                )
                raise CliError(
                    f"stack {stack.name!r} has no successful full sync yet (latest is {LATEST_MEANS})"
                    f"{since or '; send one with `vuln-sync resync --full`'}"
                )
        progress = await read_progress(store, run_id)
        if progress is None:
            raise CliError(f"no run {run_id!r} in stack {stack.name!r} (runs are kept 30 days)")
        return progress, await read_rate_state(ddb, table), newer

    progress, rate, newer = _run_async(read, stack, "reading the run")
    if args.run == "latest":
        print(f"latest: {LATEST_MEANS}")
    _print_run(progress, stack, rate)
    if newer:
        print(f"runs since, of any scope (vuln-sync status RUN --stack {stack.option}):")
        for run in newer:
            print(f"  {run.run_id}  {run.status:<9}  scope {run.scope}  ({run.reason or 'no reason'})")
    return 1 if progress.run.status == "failed" else 0


def _limiter_rows(rate: RateState, now: float) -> list[tuple[str, str]]:
    """The fleet rate limiter's live figures: requests started and 429s in all, the limit, its pace."""
    rows: list[tuple[str, str]] = []
    cut = f"{rate.per_minute:.0f}/min" if rate.per_minute is not None else None
    if rate.reserved or rate.next_slot:
        limit = f", cut to {cut} after 429s" if cut else ""
        started = f"{rate.reserved:,} request slots granted, {rate.throttled:,} 429s{limit}"
        rows.append(("Vanta requests (fleet, live)", started))
    if rate.next_slot:
        ahead = rate.next_slot - now
        at_limit = f" at the limit ({cut})" if cut else " at the limit"
        pace = (
            f"busy{at_limit}: request slots booked {ahead:.0f} s ahead"
            if ahead > 0
            else f"idle: last request slot {-ahead:.0f} s ago"
        )
        rows.append(("Vanta rate limiter", pace))
    return rows


def _print_run(progress: RunProgress, stack: Stack, rate: RateState) -> None:
    run = progress.run
    finished = run.finished_at
    ended = f"{finished:%Y-%m-%d %H:%M:%S} UTC" if finished else "-"
    seconds = (finished.timestamp() if finished else time.time()) - run.started_at.timestamp()
    rows = [
        ("run", run.run_id),
        ("status", run.status),
        ("reason", run.reason or "-"),
        ("scope", run.scope),
        ("started", f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("finished", ended),
        ("duration", f"{seconds:.0f} s"),
        ("ranges done", f"{run.ranges_done} / {run.ranges_total}"),
        ("pages", str(progress.pages)),
        ("records", f"{progress.records:,}"),
        (
            "requests / retries / 429s (committed)",
            f"{progress.requests} / {progress.retries} / {progress.throttled}",
        ),
    ]
    rows += _limiter_rows(rate, time.time())
    by_resource: dict[str, list[int]] = {}
    for r in progress.ranges:
        counts = by_resource.setdefault(r.resource, [0, 0])
        counts[0 if r.status == "done" else 1] += 1
    for resource, (done, open_) in sorted(by_resource.items()):
        rows.append((f"  {resource}", f"{done} ranges done, {open_} open"))
    if run.failure:
        rows.append(("failure", run.failure))
    if run.status == "succeeded" and "DataBucketName" in stack.outputs:
        rows.append(("report", f"s3://{stack.outputs['DataBucketName']}/runs/{run.run_id}/report.html"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def run_redrive(args: argparse.Namespace) -> int:
    """Show a DLQ's messages, then move them back to their queue (after asking, unless --yes)."""
    from vanta_vuln_sync.ops.outputs import peek_dlq

    prefixes = {"request": "Request", "page": "Page", "finalize": "Finalize"}
    if args.queue not in prefixes:
        raise CliError(f"--queue must be request, page or finalize, got {args.queue!r}")
    stack = resolve_stack(args.stack)
    prefix = prefixes[args.queue]
    dlq_url, queue_url = stack.outputs[f"{prefix}DLQUrl"], stack.outputs[f"{prefix}QueueUrl"]
    sqs = stack.client("sqs")
    depth = int(
        _aws_call(
            "reading the DLQ",
            lambda: sqs.get_queue_attributes(
                QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            ),
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    if depth == 0:
        print(f"{prefix}DLQ is empty: nothing to redrive")
        return 0
    print(f"{prefix}DLQ holds {depth} message(s); the first ones:")
    for line in _aws_call("reading the DLQ", lambda: peek_dlq(sqs, dlq_url)):
        print(f"  {line}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("not moving without confirmation: pass --yes")
        answer = input(f"move them back to {prefix}Queue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing moved")
            return 0
    moved, how = _aws_call("moving the messages", lambda: _move(stack, sqs, dlq_url, queue_url))
    print(f"{how}: {moved}")
    return 0


def _move(stack: Stack, sqs: SQSClient, dlq_url: str, queue_url: str) -> tuple[str, str]:
    """Start SQS's message-move task; where the endpoint has none (moto), move by hand."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    once = stack.client("sqs", config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    try:
        task = once.start_message_move_task(SourceArn=arn(dlq_url), DestinationArn=arn(queue_url))
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        if status < 500 and code not in ("UnsupportedOperation", "InvalidAction", "NotImplemented"):
            raise
    else:
        return f"message-move task {task['TaskHandle']}", "started SQS's message-move task"
    moved = _move_by_hand(sqs, dlq_url, queue_url)
    return f"{moved} message(s)", "moved by receive, send, delete (this endpoint has no message-move task)"


def _move_by_hand(sqs: SQSClient, dlq_url: str, queue_url: str) -> int:
    """Receive from the DLQ, send to the queue, delete from the DLQ only what was sent."""
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return moved
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for i, message in enumerate(messages):
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(i), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        reply = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        sent = {int(ok["Id"]) for ok in reply.get("Successful", [])}
        if not sent:
            reasons = "; ".join(f.get("Message", f["Code"]) for f in reply.get("Failed", []))
            raise CliError(f"SQS refused to take the messages back: {reasons or 'no reason given'}")
        sqs.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": messages[i]["ReceiptHandle"]} for i in sorted(sent)],
        )
        moved += len(sent)
