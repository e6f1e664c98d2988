"""`vuln-sync local --serve`: the embedded stack kept running, with the schedule fired every N minutes.

The same stack as `vuln-sync local` (moto with the real template, the poller running the real handlers,
the simulator or the real Vanta), left up until Ctrl-C, so every way in can be tried against it: the
schedule (a full sync sent to RequestQueue now and every `schedule_every` seconds, as EventBridge
Scheduler sends it), `vuln-sync resync | status | redrive | report --stack local`, and any SQS client
sending an `events/` file to the printed endpoint. Other commands find the stack through the state file
(`served.py`). Each run's end is printed; a successful run's outputs are copied under the output folder
(the full sync's to its top, as `vuln-sync local` does, any other run's to `runs/<run_id>/`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

import boto3
from aiobotocore.session import get_session

from vanta_vuln_sync.local.progress import Snapshot, make_view
from vanta_vuln_sync.local.runtime import LocalOptions, LocalStack, enqueue_sync, start_local_stack
from vanta_vuln_sync.messages import FULL_SCOPE, SYNC_RESOURCES
from vanta_vuln_sync.ops.outputs import copy_run_outputs
from vanta_vuln_sync.ops.runs import list_run_ids
from vanta_vuln_sync.ops.served import (
    DEFAULT_STATE_PATH,
    STATE_ENV,
    ServedStack,
    remove_served,
    write_served,
)
from vanta_vuln_sync.store.state import FAILED, SUCCEEDED, RunStore

# What EventBridge Scheduler sends (template.yaml's schedule target; events/schedule-input.json).
SCHEDULE_REQUEST = {
    "v": 1,
    "type": "SyncRequest",
    "resources": list(SYNC_RESOURCES),
    "mode": "full",
    "reason": "schedule",
}
EXAMPLE_EVENT = "events/sync-request-resync-critical.json"
_POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """`local`: the stack to start (its `out` also receives the runs' outputs); `schedule_every`: seconds
    between scheduled full syncs (the first is sent at once; 0: none); `state_file`: where to say how to
    reach the stack."""

    local: LocalOptions
    schedule_every: float
    state_file: Path


def serve_local(options: ServeOptions) -> None:
    """Start the stack, write the state file, print how to use it, then fire the schedule and report runs
    until interrupted (Ctrl-C or SIGTERM); always stops the stack and removes the state file.

    Raises LocalRunError when the stack cannot start."""
    stream = options.local.stream
    started = time.monotonic()
    view, console = make_view(stream, style=options.local.progress)
    view.show(Snapshot(elapsed=0.0, phase="starting"))
    try:
        running = start_local_stack(options.local, view, console, started)
    finally:
        view.close()
    previous = _signals_interrupt()
    try:
        served = _served(running)
        write_served(options.state_file, served)
        try:
            _say(stream, how_to_use(served, options.state_file, options.schedule_every))
            asyncio.run(_serve(running, options))
        except KeyboardInterrupt:
            _say(stream, "\nstopping: the poller, the simulator and the embedded AWS (its data goes with it)")
        finally:
            remove_served(options.state_file, served.pid)
    finally:
        running.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _say(stream, "stopped")


def how_to_use(served: ServedStack, state_file: Path, schedule_every: float) -> str:
    """What `--serve` prints once the stack is up: endpoint, queues, and commands to try."""
    outputs = served.outputs
    env = "" if state_file == DEFAULT_STATE_PATH else f"{STATE_ENV}={state_file} "
    keys = f"AWS_ACCESS_KEY_ID={served.access_key_id} AWS_SECRET_ACCESS_KEY={served.secret_access_key}"
    schedule = (
        f"a full sync now and every {schedule_every / 60:g} min (as the deployed schedule would)"
        if schedule_every > 0
        else "off (--schedule-every 0)"
    )
    rows = [
        ("endpoint", f"{served.endpoint_url} (region {served.region}, any credentials)"),
        ("RequestQueue", outputs["RequestQueueUrl"]),
        ("PageQueue", outputs["PageQueueUrl"]),
        ("DLQs", f"{outputs['RequestDLQUrl']}  {outputs['PageDLQUrl']}"),
        ("state table", outputs["StateTableName"]),
        ("data bucket", outputs.get("DataBucketName", "-")),
        ("state file", f"{state_file} (how `--stack local` finds this stack)"),
        ("schedule", schedule),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"serving stack {served.stack_name} (process {served.pid}); Ctrl-C stops it"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [
        "try, from another shell in this folder:",
        f"  {env}vuln-sync resync --stack local --resource vulnerabilities --filter severity=CRITICAL",
        f"  {env}vuln-sync status --stack local   # latest: the last successful full sync (scope all)",
        f"  {env}vuln-sync report --stack local --out out/report-latest",
        f"  {env}vuln-sync redrive --stack local --queue page",
        f"  {keys} aws sqs send-message --endpoint-url {served.endpoint_url} --region {served.region} \\",
        f"      --queue-url {outputs['RequestQueueUrl']} --message-body file://{EXAMPLE_EVENT}",
        "each run's end is printed below; outputs of successful runs are copied under the output folder",
    ]
    return "\n".join(lines)


def _served(running: LocalStack) -> ServedStack:
    return ServedStack(
        stack_name=running.stack.name,
        endpoint_url=running.embedded.endpoint_url,
        region=running.embedded.region,
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        outputs=dict(running.stack.outputs),
        pid=os.getpid(),
    )


async def _serve(running: LocalStack, options: ServeOptions) -> None:
    """Fire the schedule when due, print each run's changes of status and new DLQ messages; forever."""
    stack, stream, out = running.stack, options.local.stream, options.local.out
    table, bucket = stack.outputs["StateTableName"], stack.outputs["DataBucketName"]
    dlqs = {"request": stack.outputs["RequestDLQUrl"], "page": stack.outputs["PageDLQUrl"]}
    next_schedule = time.monotonic()
    statuses: dict[str, str] = {}
    depths: dict[str, int] = {}
    session = get_session()
    async with session.create_client("dynamodb") as ddb, session.create_client("sqs") as sqs:
        store = RunStore(ddb, table)
        while True:
            if options.schedule_every > 0 and time.monotonic() >= next_schedule:
                await asyncio.to_thread(enqueue_sync, running.world, SCHEDULE_REQUEST)
                next_schedule += options.schedule_every
                _say(stream, f"{_now()} schedule: full sync sent to RequestQueue")
            for run_id in await list_run_ids(ddb, table):
                if statuses.get(run_id) in (SUCCEEDED, FAILED):
                    continue
                run = await store.get_run(run_id)
                if run is None or statuses.get(run_id) == run.status:
                    continue
                statuses[run_id] = run.status
                line = f"{_now()} run {run_id} ({run.reason or 'no reason'}; scope {run.scope}): {run.status}"
                if run.status == FAILED:
                    line += f": {run.failure}"
                _say(stream, line)
                if run.status == SUCCEEDED:
                    dest = out if run.scope == FULL_SCOPE else out / "runs" / run_id
                    await asyncio.to_thread(copy_run_outputs, boto3.client("s3"), bucket, run_id, dest)
                    _say(stream, f"  report {dest / 'report.html'}; finding lists {dest / 'findings'}/")
            for name, url in dlqs.items():
                reply = await sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )
                depth = int(reply["Attributes"].get("ApproximateNumberOfMessages", 0))
                if depth > depths.get(name, 0):
                    _say(
                        stream,
                        f"{_now()} {name} DLQ holds {depth} message(s): "
                        f"vuln-sync redrive --stack local --queue {name}",
                    )
                depths[name] = depth
            await asyncio.sleep(_POLL_SECONDS)


def _signals_interrupt() -> dict[int, Callable[[int, FrameType | None], Any] | int | None]:
    """Make Ctrl-C (SIGINT) and SIGTERM stop the server, even when it was started with SIGINT ignored
    (a background job of a non-interactive shell, a test runner's worker); returns the handlers it
    replaced."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    return {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}


def _now() -> str:
    return f"{datetime.now(UTC):%H:%M:%S}"


def _say(stream: IO[str] | None, text: str) -> None:
    print(text, file=stream, flush=True)
