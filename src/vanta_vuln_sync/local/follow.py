"""Following a local run to its end: the state table, the DLQs, the queues, the simulator, the poller."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.session import get_session

from vanta_vuln_sync.local.embedded_aws import EmbeddedStack
from vanta_vuln_sync.local.poller import Poller
from vanta_vuln_sync.local.progress import ProgressView, Snapshot
from vanta_vuln_sync.local.runs import RunProgress, find_run, read_progress
from vanta_vuln_sync.local.simulator_thread import SimulatorThread
from vanta_vuln_sync.pipeline.state import FAILED, SUCCEEDED, RunStore

_POLL_SECONDS = 1.0
# A running run with nothing queued, in flight or running anywhere for this long cannot finish.
_STALL_SECONDS = 30.0


@dataclass(slots=True)
class Watch:
    """How following the run ended: its last progress, the DLQ depths, or why we stopped waiting."""

    progress: RunProgress | None = None
    dlq_depth: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False
    stalled: bool = False


async def follow_run(
    stack: EmbeddedStack,
    candidates: list[str],
    poller: Poller,
    simulator: SimulatorThread | None,
    view: ProgressView,
    give_up_after: float,
    started: float,
    rate_limit: int,
) -> Watch:
    """Show progress until the run ends, a message lands in a DLQ, the run stalls (nothing queued or
    running for a while), or `give_up_after` seconds pass."""
    watch = Watch()
    samples: deque[tuple[float, int]] = deque()
    deadline = time.monotonic() + give_up_after
    dlqs = {"RequestDLQ": stack.outputs["RequestDLQUrl"], "PageDLQ": stack.outputs["PageDLQUrl"]}
    queues = [stack.outputs["RequestQueueUrl"], stack.outputs["PageQueueUrl"]]
    idle_since: float | None = None
    session = get_session()
    async with session.create_client("dynamodb") as ddb, session.create_client("sqs") as sqs:
        store = RunStore(ddb, stack.outputs["StateTableName"])
        while True:
            if watch.progress is None:
                found = await find_run(store, candidates)
                watch.progress = await read_progress(store, found.run_id) if found else None
            else:
                watch.progress = await read_progress(store, watch.progress.run.run_id)
            for name, url in dlqs.items():
                attributes = await sqs.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )
                watch.dlq_depth[name] = int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))
            now = time.monotonic()
            view.show(_snapshot(watch, poller, simulator, samples, now - started, rate_limit))
            run = watch.progress.run if watch.progress else None
            if run is not None and run.status in (SUCCEEDED, FAILED):
                return watch
            if any(watch.dlq_depth.values()):
                return watch
            if run is not None and poller.stats().in_flight == 0 and await _queues_empty(sqs, queues):
                idle_since = idle_since or now
                if now - idle_since >= _STALL_SECONDS:
                    watch.stalled = True
                    return watch
            else:
                idle_since = None
            if now >= deadline:
                watch.timed_out = True
                return watch
            await asyncio.sleep(_POLL_SECONDS)


async def _queues_empty(sqs: Any, queue_urls: list[str]) -> bool:
    """True when no message waits, is in flight or is delayed on any of the queues."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    for url in queue_urls:
        attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))["Attributes"]
        if any(int(attributes.get(name, 0)) for name in names):
            return False
    return True


def _snapshot(
    watch: Watch,
    poller: Poller,
    simulator: SimulatorThread | None,
    samples: deque[tuple[float, int]],
    elapsed: float,
    rate_limit: int,
) -> Snapshot:
    progress = watch.progress
    run = progress.run if progress else None
    stats = poller.stats()
    requests = progress.requests if progress else 0
    throttled = progress.throttled if progress else 0
    accepted = requests
    if simulator is not None:
        counters = simulator.counters()
        requests, throttled, accepted = (
            counters["requests"],
            counters["throttled"],
            counters["accepted_requests"],
        )
    samples.append((elapsed, accepted))
    while len(samples) > 2 and samples[1][0] <= elapsed - 60.0:
        samples.popleft()
    span = elapsed - samples[0][0]
    rate = (accepted - samples[0][1]) / span * 60.0 if span >= 5.0 else None
    if run is None:
        phase = "planning"
    elif run.status != "running":
        phase = run.status
    elif run.all_ranges_done:
        phase = "finalizing"
    else:
        phase = "syncing"
    note = None
    failing = [f"{name}: {s.last_error}" for name, s in stats.functions.items() if s.last_error]
    if failing:
        note = "last failure " + "; ".join(failing)
    return Snapshot(
        elapsed=elapsed,
        phase=phase,
        run_id=run.run_id if run else None,
        ranges_done=run.ranges_done if run else 0,
        ranges_total=run.ranges_total if run else 0,
        pages=progress.pages if progress else 0,
        records=progress.records if progress else 0,
        requests=requests,
        retries=progress.retries if progress else 0,
        throttled=throttled,
        rate_per_minute=rate,
        rate_limit=rate_limit,
        invocations=stats.invocations,
        in_flight=stats.in_flight,
        note=note,
    )
