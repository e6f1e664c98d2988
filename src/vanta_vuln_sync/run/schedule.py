"""Starting a run from a SyncRequest: claim the scope (or join its running run), plan, enqueue.

Replay-safe: the run id comes from the request message (its send time and id), the plan is stored with
the run before anything is enqueued, and a redelivered request re-enqueues that same plan (duplicate
PageRange messages are no-ops at the worker).

Admission: a new run of any scope but the full sync's needs one of `max_concurrent_runs` slots; without
one the request raises RunCapReached and waits on the queue (the record fails, SQS delivers it again
after the queue's visibility timeout). A request for a scope whose run is going on joins that run without
a slot. A run still running after `stuck_run_seconds` is failed, with the reason, by the next request that
meets it (its scope's, or one looking for a slot), so it no longer absorbs its scope's requests.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aws_lambda_powertools import Logger, Tracer

from vanta_vuln_sync.messages import FULL_SCOPE, SYNC_RESOURCES, MessageError, SyncRequest, bundled
from vanta_vuln_sync.run.deadline import DeadlineSource, deadline_of
from vanta_vuln_sync.run.planner import ListingRequest, effective_filters, plan_run
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.run.sizing import range_slots
from vanta_vuln_sync.run.split import compact, max_compact_slots
from vanta_vuln_sync.settings import Settings
from vanta_vuln_sync.store.queue import send_messages
from vanta_vuln_sync.store.state import FAILED, RUNNING, RunState, ScopeState
from vanta_vuln_sync.vanta import RecentDurations, RequestRejectedError

# Not a child logger: children made before the handler's logger (import order) are orphaned; Logger
# instances of one service share one handler and one set of context keys anyway.
logger = Logger()
tracer = Tracer()

# A claim older than this is treated as abandoned (no run of ours lasts this long).
STALE_CLAIM_SECONDS = 12 * 3600.0
# A claim whose run item does not exist yet may be a scheduler still planning; leave it this long.
PLANNING_GRACE_SECONDS = 15 * 60.0


class RunCapReached(RuntimeError):
    """Every run slot is held by a running run: the request must wait on the queue and come back."""


@dataclass(frozen=True, slots=True)
class RunStart:
    """What became of a request: the run it started (or re-enqueued) or the running run it joined."""

    run_id: str
    scope: str
    joined: bool
    ranges: int


def scope_key(request: SyncRequest) -> str:
    """The scope a request syncs: `all` for every resource unfiltered (the schedule's scope), otherwise
    the resources and a digest of the filters. Two requests of one scope never run side by side."""
    user_filters = {
        name: {k: v for k, v in filters.items() if k != "includeVulnerabilitiesWithoutSlas" or v != "true"}
        for name, filters in request.filters.items()
    }
    user_filters = {name: f for name, f in user_filters.items() if f}
    if set(request.resources) == set(SYNC_RESOURCES) and not user_filters:
        return FULL_SCOPE
    key = ".".join(sorted(request.resources))
    if user_filters:
        digest = hashlib.sha256(orjson.dumps(user_filters, option=orjson.OPT_SORT_KEYS)).hexdigest()
        key += "_" + digest[:12]
    return key


def run_id_for(message_id: str, sent_at: datetime) -> str:
    """A run id unique to the request message and stable across its redeliveries."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:10]
    return f"{sent_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest}"


@tracer.capture_method
async def start_run(
    request: SyncRequest,
    *,
    message_id: str,
    sent_at: datetime,
    services: Services,
    remaining: Callable[[], float] | None = None,
) -> RunStart:
    """Start (or resume) the run for `request`, or join the scope's running run.

    Raises MessageError when Vanta rejects the request's filters (400/403: poison, never retried),
    RunCapReached when a new run would exceed the cap (the message waits and is retried), the client's
    VantaError or botocore's ClientError for transient failures (the message is retried).
    `remaining()` is the invocation's seconds left: planning requests never wait for a rate slot past it
    (DeadlineReached; the message is retried, by then with the fleet's budget less contended).
    """
    store = services.store
    scope = scope_key(request)
    run_id = run_id_for(message_id, sent_at)
    holder = await _claim(services, scope, run_id)
    if holder != run_id:
        logger.info("scope already has a running run; joining it", extra={"scope": scope, "run_id": holder})
        return RunStart(run_id=holder, scope=scope, joined=True, ranges=0)
    run = await store.get_run(run_id)
    if run is None:
        if not await _admit(services, scope, run_id):
            await store.release_scope(scope, run_id, None, started_at=sent_at)
            services.count("RequestsDeferred", 1)
            raise RunCapReached(
                f"{services.settings.max_concurrent_runs} runs are going on (MAX_CONCURRENT_RUNS); "
                "the request waits on the queue and is tried again"
            )
        scope_state = await store.get_scope(scope)
        try:
            planned = await _plan(request, run_id, scope_state, services, sent_at, remaining)
            run = await store.create_run(planned)
        except RequestRejectedError as exc:
            await store.release_scope(scope, run_id, None, started_at=sent_at)
            await store.drop_run_slots([run_id])
            raise MessageError(f"Vanta rejected the request ({exc.status}): {exc}") from exc
    if run.status != RUNNING:
        # A replay of a request whose run already ended: nothing to enqueue, just drop our claim.
        await store.release_scope(scope, run_id, None, started_at=run.started_at)
        return RunStart(run_id=run_id, scope=scope, joined=False, ranges=0)
    plan = run.plan or await store.get_plan(run_id)
    # A compact run's ranges go to one invocation, as its hand-ons do (run/follow_ups.py): sent as
    # messages of their own, the event source mapping spread them over as many containers for good.
    messages = bundled(plan) if compact(run.range_slots, services.settings) else plan
    await send_messages(services.aws.sqs, services.settings.page_queue_url, messages)
    logger.info(
        "run planned and enqueued",
        extra={"run_id": run_id, "scope": scope, "ranges": run.ranges_total, "reason": run.reason},
    )
    return RunStart(run_id=run_id, scope=scope, joined=False, ranges=run.ranges_total)


async def _claim(services: Services, scope: str, run_id: str) -> str:
    """Make `run_id` the scope's running run, or return the id of the run that really is running."""
    store = services.store
    for _ in range(5):
        if await store.claim_scope(scope, run_id, stale_after=STALE_CLAIM_SECONDS):
            return run_id
        state = await store.get_scope(scope)
        holder = state.running_run_id
        if holder is None:
            continue  # released between our claim and our read: claim again
        held = await store.get_run(holder)
        if held is not None and held.status == RUNNING:
            if not _stuck(held, services):
                return holder
            await fail_stuck_run(held, services)
        elif held is None and services.clock() - state.running_since < PLANNING_GRACE_SECONDS:
            return holder  # its scheduler is still planning: join it
        await store.take_over_scope(scope, run_id, holder)
    raise RuntimeError(f"could not claim scope {scope!r}: it keeps changing hands")


async def _admit(services: Services, scope: str, run_id: str) -> bool:
    """Whether `run_id` may start: the full sync always may; any other run takes a slot, after the
    slots of runs that ended (or are stuck, which fails them) are given back."""
    if scope == FULL_SCOPE:
        return True
    store, cap = services.store, services.settings.max_concurrent_runs
    if await store.admit_run(run_id, cap=cap):
        return True
    now = services.clock()
    ended: list[str] = []
    for held, taken in (await store.run_slots()).items():
        run = await store.get_run(held)
        if run is None:
            if now - taken > PLANNING_GRACE_SECONDS:  # its scheduler gave up before storing the run
                ended.append(held)
        elif run.status != RUNNING:
            ended.append(held)
        elif _stuck(run, services):
            await fail_stuck_run(run, services)
            ended.append(held)
    if not ended:
        return False
    await store.drop_run_slots(ended)
    return await store.admit_run(run_id, cap=cap)


def _stuck(run: RunState, services: Services) -> bool:
    return services.clock() - run.started_at.timestamp() > services.settings.stuck_run_seconds


async def fail_stuck_run(run: RunState, services: Services) -> bool:
    """Mark a run that has been running longer than `stuck_run_seconds` failed, with the reason, and
    free its scope; RunsFailed counts it once even if DynamoDB's reply to the write is lost. True for
    the call that failed it."""
    hours = (services.clock() - run.started_at.timestamp()) / 3600
    reason = (
        f"stuck: still running {hours:.1f} h after it started (limit STUCK_RUN_SECONDS="
        f"{services.settings.stuck_run_seconds:g}); failed so that new requests of its scope can run"
    )
    failed = await services.store.finish_run_once(
        run.run_id, FAILED, failure=reason, finisher=uuid.uuid4().hex
    )
    if failed:
        services.count("RunsFailed", 1)
        logger.error("stuck run failed", extra={"run_id": run.run_id, "scope": run.scope, "failure": reason})
    await services.store.release_scope(run.scope, run.run_id, None, started_at=run.started_at)
    return failed


async def _plan(
    request: SyncRequest,
    run_id: str,
    scope: ScopeState,
    services: Services,
    started_at: datetime,
    remaining: Callable[[], float] | None,
) -> RunState:
    settings = services.settings
    client = services.vanta()
    source = DeadlineSource(client, deadline_of(remaining, services.clock, settings.handoff_seconds))
    modes: dict[str, str] = {}
    requests: list[ListingRequest] = []
    # Cursor checkpoints of the scope's last successful run: its chains are planned as pieces (unless
    # CHAIN_PIECES is off: see Settings.chain_pieces). Every run stores its checkpoints.
    saved = await services.store.get_checkpoints(scope.scope) if settings.chain_pieces else []
    for resource in request.resources:
        filters, mode = effective_filters(request, resource, scope.last_success_started_at)
        modes[resource] = mode
        previous = scope.counts.get(resource) if mode == "full" else None
        chains = tuple(c for c in saved if c.resource == resource)
        requests.append(ListingRequest(resource, filters, previous, chains))
    sized: list[int] = []

    def slots() -> int:
        # Sized once the survey has timed Vanta's answers; kept with the run, whose ranges split while
        # fewer than these are open (run/split.py).
        sized.append(planned_slots(settings, client.answers))
        return sized[-1]

    plan, notices = await plan_run(
        source,
        run_id,
        requests,
        slots=slots,
        page_budget=settings.page_budget,
        page_size=settings.page_size,
        # A compact run's unknown lists are open ranges that split themselves (run/split.py).
        probe_above=max_compact_slots(settings),
    )
    for notice in notices:
        logger.warning("plan changed: a filter does not split a list", extra={"notice": notice})
    services.count("ShardFallbacks", len(notices))
    return RunState(
        run_id=run_id,
        scope=scope.scope,
        status=RUNNING,
        started_at=started_at,
        plan=plan,
        modes=modes,
        reason=request.reason,
        requests=client.counters.requests,
        notices=notices,
        range_slots=sized[-1] if sized else 0,
    )


def planned_slots(settings: Settings, answers: RecentDurations) -> int:
    """The run's range slots: RANGE_SLOTS when it is a number, else sized from the configured rate limit
    and the mean of the scheduler's recent Vanta answers (its survey's requests), at most workers x
    ranges in flight (run/sizing.py)."""
    cap = settings.worker_max_concurrency * settings.ranges_in_flight
    if settings.range_slots is not None:
        slots = settings.range_slots
    else:
        round_trip = answers.mean() if answers else None
        slots = range_slots(settings.vanta.rate_limit_per_minute, round_trip, cap)
    logger.info(
        "range slots planned",
        extra={
            "range_slots": slots,
            "sized": "fixed (RANGE_SLOTS)" if settings.range_slots is not None else "auto",
            "round_trip_seconds": round(answers.mean(), 3),
            "cap": cap,
        },
    )
    return slots
