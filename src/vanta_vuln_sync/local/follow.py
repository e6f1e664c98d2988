"""Following a local run to its end: the state table, the DLQs, the queues, the simulator, the poller.

Figures shown while it runs come from where they are recorded as they happen: pages and records from
the ranges' committed steps, requests, 429s and the rate from the fleet rate limiter's item (sampled
every second; see `limiter.py`). Where the limiter keeps no totals, from the simulator's counters, or
else from the committed steps."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiobotocore.session import get_session

from vanta_vuln_sync.local.embedded_aws import EmbeddedStack
from vanta_vuln_sync.local.poller import Poller
from vanta_vuln_sync.local.progress import ProgressView, Snapshot
from vanta_vuln_sync.local.simulator_thread import SimulatorThread
from vanta_vuln_sync.local.world import WORK_QUEUES, queues_empty_async
from vanta_vuln_sync.ops.requests import RequestMeter, started_by
from vanta_vuln_sync.ops.runs import RunProgress, find_run, read_progress
from vanta_vuln_sync.store.rate import read_rate_state
from vanta_vuln_sync.store.state import FAILED, SUCCEEDED, RunStore

_POLL_SECONDS = 1.0
# The stack's dead-letter queues (outputs `<name>Url`): a message in any of them ends the watch.
DLQ_NAMES = ("RequestDLQ", "PageDLQ", "FinalizeDLQ")
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
    start: Callable[[], list[str]],
    poller: Poller,
    simulator: SimulatorThread | None,
    view: ProgressView,
    give_up_after: float,
    started: float,
    rate_limit: int,
) -> Watch:
    """Call `start` (it sends the sync request and returns the run ids it may get), then show progress
    until the run ends, a message lands in a DLQ, the run stalls (nothing queued or running for a
    while), or `give_up_after` seconds pass."""
    watch = Watch()
    samples: deque[tuple[float, int]] = deque()
    meter = RequestMeter()
    deadline = time.monotonic() + give_up_after
    dlqs = {name: stack.outputs[f"{name}Url"] for name in DLQ_NAMES}
    queues = [stack.outputs[name] for name in WORK_QUEUES]
    idle_since: float | None = None
    session = get_session()
    async with session.create_client("dynamodb") as ddb, session.create_client("sqs") as sqs:
        table = stack.outputs["StateTableName"]
        store = RunStore(ddb, table)
        # The limiter's totals before the run's first request: its requests are counted from here.
        meter.sample(time.monotonic(), started_by(await read_rate_state(ddb, table), time.time(), rate_limit))
        candidates = start()
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
            meter.sample(
                time.monotonic(), started_by(await read_rate_state(ddb, table), time.time(), rate_limit)
            )
            now = time.monotonic()
            view.show(_snapshot(watch, poller, simulator, meter, samples, now - started, rate_limit))
            run = watch.progress.run if watch.progress else None
            if run is not None and run.status in (SUCCEEDED, FAILED):
                return watch
            if any(watch.dlq_depth.values()):
                return watch
            if run is not None and poller.stats().in_flight == 0 and await queues_empty_async(sqs, queues):
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


def _snapshot(
    watch: Watch,
    poller: Poller,
    simulator: SimulatorThread | None,
    meter: RequestMeter,
    samples: deque[tuple[float, int]],
    elapsed: float,
    rate_limit: int,
) -> Snapshot:
    progress = watch.progress
    run = progress.run if progress else None
    stats = poller.stats()
    requests, throttled, rate, limit = _request_figures(progress, simulator, meter, samples, elapsed)
    if run is None:
        phase = "planning"
    elif run.status != "running":
        phase = run.status
    elif run.all_ranges_done:
        phase = "finalizing"
    else:
        phase = "syncing"
    notes = []
    if stats.timed_out:
        notes.append(f"{stats.timed_out} invocation(s) timed out")
    failing = [f"{name}: {s.last_error}" for name, s in stats.functions.items() if s.last_error]
    if failing:
        notes.append("last failure " + "; ".join(failing))
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
        rate_limit=limit or rate_limit,
        invocations=stats.invocations,
        in_flight=stats.in_flight,
        note="; ".join(notes) or None,
    )


def _request_figures(
    progress: RunProgress | None,
    simulator: SimulatorThread | None,
    meter: RequestMeter,
    samples: deque[tuple[float, int]],
    elapsed: float,
) -> tuple[int, int, float | None, int | None]:
    """Requests, 429s, requests in the last minute and the limit, as they happen: from the simulator's
    counters when it is ours (what Vanta saw, exactly), else from the limiter's slots, else from the
    committed steps."""
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
    elif meter.live and meter.requests is not None:
        live_throttled = meter.throttled
        return (
            meter.requests,
            live_throttled if live_throttled is not None else throttled,
            meter.per_minute,
            meter.limit,
        )
    # Counted, never extrapolated: requests in the last 60 s (or since the first sample).
    samples.append((elapsed, accepted))
    while len(samples) > 1 and samples[1][0] <= elapsed - 60.0:
        samples.popleft()
    return requests, throttled, float(accepted - samples[0][1]), meter.limit
