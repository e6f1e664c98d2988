"""What a local run shows while it runs: requests and rate as the rate limiter grants them, not when
an invocation ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import boto3
import poller_test_handlers
from mapped_functions import MappedFunction

from state_table import STATE_TABLE_SHAPE
from vanta_vuln_sync.local.embedded_aws import EmbeddedStack
from vanta_vuln_sync.local.follow import follow_run
from vanta_vuln_sync.local.poller import Poller
from vanta_vuln_sync.local.progress import Snapshot
from vanta_vuln_sync.ops.requests import RequestMeter, started_by
from vanta_vuln_sync.store.rate import RateState


class Recorded:
    """A progress view that keeps every snapshot."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []

    def show(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    def close(self) -> None:
        pass


def _state_table() -> str:
    name = f"state-{uuid.uuid4().hex[:10]}"
    boto3.client("dynamodb").create_table(TableName=name, **STATE_TABLE_SHAPE)
    return name


def test_progress_shows_requests_while_the_first_invocation_still_runs(
    mapped_function: Callable[..., MappedFunction],
) -> None:
    # Given a fake sync whose one invocation takes a rate-limiter slot every 0.4 s for 3.2 s and
    # commits nothing until it ends...
    function = mapped_function(handler="slow_requester", timeout=30)
    table = _state_table()
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={"pk": {"S": "rate#vanta"}, "sk": {"S": "rate"}, "reserved": {"N": "500"}},
    )  # slots granted before this run: not its requests
    stack = EmbeddedStack(
        name="fake",
        outputs={
            "StateTableName": table,
            "RequestQueueUrl": function.queue_url,
            "PageQueueUrl": function.queue_url,
            "RequestDLQUrl": function.dlq_url,
            "PageDLQUrl": function.dlq_url,
            "FinalizeDLQUrl": function.dlq_url,
            "FinalizeQueueUrl": function.queue_url,
        },
        function_names=[function.name],
        secret_arn="",
        skipped=[],
    )
    view = Recorded()
    poller = Poller(only_functions=[function.name], container_teardown=poller_test_handlers.teardown)
    poller.start()
    try:

        def start() -> list[str]:
            function.send({"table": table, "slots": 8, "every": 0.4})
            return ["no-such-run"]

        # ...when the run is followed for a few seconds...
        asyncio.run(follow_run(stack, start, poller, None, view, 5.0, 0.0, 50))
        assert poller.run_until(lambda: poller.stats().functions[function.name].succeeded == 1, timeout=10)
    finally:
        poller.stop()
    # ...requests show while the invocation runs, counted from the run's start, against the limit.
    running = [s for s in view.snapshots if s.in_flight == 1]
    assert running, "followed while the invocation ran"
    assert any(0 < s.requests < 8 for s in running)
    assert all(s.requests <= 8 for s in view.snapshots)
    assert [s.requests for s in view.snapshots] == sorted(s.requests for s in view.snapshots)
    assert all(s.rate_limit == 50 for s in running)
    assert running[-1].rate_per_minute == running[-1].requests, "under a minute: every slot is recent"


def test_meter_counts_slots_granted_in_the_last_minute_only() -> None:
    meter = RequestMeter()
    for second, reserved in ((0, 100), (30, 130), (61, 150), (90, 160), (125, 200)):
        meter.sample(float(second), RateState(reserved=reserved, throttled=reserved // 50, per_minute=50))
    assert meter.requests == 100
    assert meter.throttled == 2
    assert meter.per_minute == 200 - 150, "granted since the sample 60 s back (t=61)"
    assert meter.limit == 50


def test_slots_booked_ahead_are_not_requests_started_yet() -> None:
    # Given 130 slots granted, the fleet's next free slot 12 s ahead at the configured 50/min (10 slots
    # booked ahead: 12 s x 50 / 60)...
    state = RateState(next_slot=1_000.0 + 12.0, reserved=130)
    # ...then 120 requests have started by t=1000, 130 once the booked slots have all come...
    assert started_by(state, 1_000.0, 50).reserved == 120
    assert started_by(state, 1_012.0, 50).reserved == 130
    # ...and a fleet cut to 25/min has booked half as many slots in the same 12 s.
    assert started_by(RateState(next_slot=1_012.0, reserved=130, per_minute=25), 1_000.0, 50).reserved == 125
