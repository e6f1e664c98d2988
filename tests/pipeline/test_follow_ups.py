"""An invocation takes on the steps it hands on (run/follow_ups.py): a run's ranges stay in the containers
that began them instead of waking one for every continuation, every record is still written once, and a
step taken on that dies is run by its queue copy after the invocation's end.

Crashes are injected by thin wrappers around the real aiobotocore clients (test scaffolding), as in
test_redelivery.py: the wrapped call raises instead of reaching moto, as if the Lambda died there.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from vanta_vuln_sync.aws import AwsClients
from vanta_vuln_sync.handlers.records import process_page_message, process_sync_request
from vanta_vuln_sync.messages import PageRange, PageRanges, parse_message
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.store.rate import FleetRateLimiter

from .conftest import Stack
from .drive import ThreadedDriver, settle
from .test_redelivery import Crash, Wrapped

REQUEST = orjson.dumps(
    {"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"], "mode": "full", "reason": "follow"}
)
SCOPE = "vulnerabilities"
SETTINGS = {"PAGE_SIZE": "10", "PAGE_BUDGET": "3", "RANGE_SLOTS": "4", "TAKE_ON_STEPS": "true"}


def assert_every_record_once(deployed: Stack, run_id: str) -> None:
    written = [r["id"] for records in deployed.records_by_key(run_id).values() for r in records]
    assert not [i for i, n in Counter(written).items() if n > 1]
    assert sorted(written) == sorted(r["id"] for r in deployed.sim.dataset.records("vulnerabilities"))


def steps_committed(deployed: Stack, run_id: str) -> int:
    return sum(int(item["next_seq"]["N"]) for item in deployed.range_items(run_id))


async def test_a_run_keeps_its_ranges_in_the_invocations_that_began_them(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    # Given 1,500 vulnerabilities read in steps of 3 pages of 10 by up to 4 ranges, on 2 worker
    # containers whose invocations may run 60 s
    deployed = await stack(sim={"vulnerabilities": 1_500, "seed": 43}, **SETTINGS)
    deployed.send_request(REQUEST)
    driver = ThreadedDriver(deployed, workers=2, function_timeout=60)
    # When the sync runs
    await asyncio.to_thread(driver.run_until, lambda: deployed.last_success(SCOPE) is not None, 150)
    run_id = deployed.last_success(SCOPE)
    assert run_id is not None
    # Then every record is written once
    assert_every_record_once(deployed, run_id)
    # And most steps ran in an invocation that was already running: far fewer worker invocations than
    # steps (before, one or more a step: each continuation woke an invocation of its own)
    steps, invocations = steps_committed(deployed, run_id), driver.worker_stats().invocations
    assert steps >= 50
    assert invocations * 4 <= steps, (invocations, steps)


def crash_in_every_fifth_step(crashes: list[str]) -> Callable[[AwsClients], AwsClients]:
    """The S3 write of every fifth step's records dies (before its commit), noted in `crashes`: steps
    taken on by an invocation are then run by their queue copy, steps delivered from the queue by the
    message's redelivery."""

    def wrap(aws: AwsClients) -> AwsClients:
        writes: list[str] = []

        async def put_object(**kwargs: Any) -> Any:
            if "resource=" in kwargs["Key"]:  # a step's records (not Finalize's outputs)
                writes.append(kwargs["Key"])
                if len(writes) % 5 == 0:
                    crashes.append(kwargs["Key"])
                    raise Crash("a step died before its commit")
            return await aws.s3.put_object(**kwargs)

        return replace(aws, s3=Wrapped(aws.s3, put_object=put_object))

    return wrap


async def test_a_step_taken_on_that_dies_is_run_by_its_queue_copy(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given invocations with 8 s left that take on steps while at least 3 hand-off reserves of 1 s are
    # left, so a step taken on leaves a copy on the queue delayed 10 s
    deployed = await stack(sim={"vulnerabilities": 400, "seed": 44}, STEP_HANDOFF_SECONDS="1", **SETTINGS)
    crashes: list[str] = []
    services = await open_services(crash_in_every_fifth_step(crashes))
    deployed.send_request(REQUEST)
    # When the queues are worked message by message (a failed record comes back at once), with every
    # fifth step's write dying once
    deadline = time.monotonic() + 120
    failures = 0
    while deployed.last_success(SCOPE) is None:
        assert time.monotonic() < deadline, "the run did not finish"
        for url in (deployed.request_queue_url, deployed.page_queue_url):
            messages = deployed.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            failed: set[str] = set()
            for message in messages:
                try:
                    if url == deployed.request_queue_url:
                        await process_sync_request(
                            message["Body"], message["MessageId"], None, services=services
                        )
                    else:
                        ends = time.monotonic() + 8.0
                        await process_page_message(
                            message["Body"],
                            message["MessageId"],
                            services=services,
                            remaining=lambda ends=ends: ends - time.monotonic(),
                        )
                except Crash:
                    failures += 1
                    failed.add(message["MessageId"])
            settle(deployed.sqs, url, messages, failed)
        await asyncio.sleep(0.2)
    run_id = deployed.last_success(SCOPE)
    assert run_id is not None
    # Then the writes died, and still every record is written once
    # (the steps from the queue that died failed their record; those taken on died inside a record
    # that succeeded, and their copies ran them)
    assert len(crashes) > failures
    assert_every_record_once(deployed, run_id)


def recording_sends(sent: list[tuple[int, Any]]) -> Callable[[AwsClients], AwsClients]:
    """Every page message the steps send, as (delay, parsed message), then sent for real."""

    def wrap(aws: AwsClients) -> AwsClients:
        async def send_message(**kwargs: Any) -> Any:
            sent.append((kwargs.get("DelaySeconds", 0), parse_message(kwargs["MessageBody"])))
            return await aws.sqs.send_message(**kwargs)

        async def send_message_batch(**kwargs: Any) -> Any:
            sent.extend(
                (e.get("DelaySeconds", 0), parse_message(e["MessageBody"])) for e in kwargs["Entries"]
            )
            return await aws.sqs.send_message_batch(**kwargs)

        return replace(
            aws, sqs=Wrapped(aws.sqs, send_message=send_message, send_message_batch=send_message_batch)
        )

    return wrap


async def test_ranges_whose_invocation_runs_out_hand_on_in_one_message_that_one_invocation_runs(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given a first run of 1,500 vulnerabilities split among up to 4 ranges, whose steps stop only at
    # their invocation's end (30 s, with 3 s hand-off reserves) at 150 requests a minute, run by one
    # container
    settings = {
        **SETTINGS,
        "PAGE_BUDGET": "500",
        "STEP_HANDOFF_SECONDS": "3",
        "VANTA_RATE_LIMIT_PER_MINUTE": "150",
    }
    deployed = await stack(sim={"vulnerabilities": 1_500, "seed": 45}, **settings)
    sent: list[tuple[int, Any]] = []
    services = await open_services(recording_sends(sent))
    deployed.send_request(REQUEST)
    # When each receive of the queue is one invocation, its messages run at once with the same end
    deadline, invocations = time.monotonic() + 240, 0
    while deployed.last_success(SCOPE) is None:
        assert time.monotonic() < deadline, "the run did not finish"
        for url in (deployed.request_queue_url, deployed.page_queue_url):
            messages = deployed.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if url == deployed.request_queue_url:
                for message in messages:
                    await process_sync_request(message["Body"], message["MessageId"], None, services=services)
            elif messages:
                invocations += 1
                ends = time.monotonic() + 30.0
                await asyncio.gather(
                    *(
                        process_page_message(
                            m["Body"],
                            m["MessageId"],
                            services=services,
                            remaining=lambda ends=ends: ends - time.monotonic(),
                        )
                        for m in messages
                    )
                )
            settle(deployed.sqs, url, messages, set())
        await asyncio.sleep(0.2)
    run_id = deployed.last_success(SCOPE)
    assert run_id is not None
    # Then every record is written once
    assert_every_record_once(deployed, run_id)
    # And the ranges an invocation handed on at its end went as one message, which the next invocation
    # ran: several continuations in one PageRanges
    bundles = [m for delay, m in sent if delay == 0 and isinstance(m, PageRanges)]
    print(
        "SENT",
        invocations,
        [(d, type(m).__name__, getattr(m, "shard", None), getattr(m, "seq", None)) for d, m in sent],
    )
    assert bundles, "no invocation handed on several ranges at once"
    assert all(len(b.ranges) >= 2 for b in bundles)
    # And no range split off went to the queue alone (to begin a container of its own; the first
    # message is the plan)
    alone = [m for delay, m in sent[1:] if delay == 0 and isinstance(m, PageRange) and m.seq == 0]
    assert not alone
    assert invocations >= 3


async def compact_plan(
    stack: Callable[..., Awaitable[Stack]],
    open_services: Callable[..., Awaitable[Services]],
    vulnerabilities: int = 300,
    **settings: str,
) -> tuple[Stack, Services, list[tuple[int, Any]], PageRanges]:
    """A compact run planned as several offset ranges (from the last run's count), its plan one message
    received; the services record every page message sent."""
    deployed = await stack(sim={"vulnerabilities": vulnerabilities, "seed": 46}, **{**SETTINGS, **settings})
    deployed.counted_before(SCOPE, (SCOPE,))
    sent: list[tuple[int, Any]] = []
    services = await open_services(recording_sends(sent))
    deployed.send_request(REQUEST)
    [request] = deployed.sqs.receive_message(QueueUrl=deployed.request_queue_url).get("Messages", [])
    await process_sync_request(request["Body"], request["MessageId"], None, services=services)
    [(_, plan)] = sent
    assert isinstance(plan, PageRanges)
    assert len(plan.ranges) >= 2
    sent.clear()
    return deployed, services, sent, plan


async def rate_slots_a_minute_away(services: Services) -> None:
    """A 429 elsewhere in the fleet pushed every rate slot a minute away."""
    fleet = FleetRateLimiter(
        services.aws.dynamodb, services.settings.state_table, services.settings.vanta.rate_limit_per_minute
    )
    await fleet.penalize(60)


async def test_first_steps_that_their_invocations_end_stops_before_a_page_go_again_together_at_once(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given a compact run's plan, and every rate slot a minute away
    _, services, sent, plan = await compact_plan(stack, open_services)
    await rate_slots_a_minute_away(services)
    # When an invocation with 20 s left (too little to take a step on) runs it: no step reads its first
    # page
    outcome = await process_page_message(
        plan.to_json().decode(), "m-plan", services=services, remaining=lambda: 20.0
    )
    # Then the steps go again as one message, sent at once, that one invocation will run: not each alone
    # and delayed, where each began a container of its own for the rest of the run
    assert outcome == ",".join(["noop"] * len(plan.ranges))
    assert [(delay, type(m)) for delay, m in sent] == [(0, PageRanges)]
    [(_, again)] = sent
    assert isinstance(again, PageRanges)
    assert sorted(r.shard for r in again.ranges) == sorted(r.shard for r in plan.ranges)
    assert all(r.seq == 0 for r in again.ranges)


async def test_steps_that_their_invocations_end_stops_before_a_page_hand_on_together_at_once(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given a compact run's ranges one page in (steps of a page, handed on as one message)
    _, services, sent, plan = await compact_plan(
        stack, open_services, PAGE_BUDGET="1", VANTA_RATE_LIMIT_PER_MINUTE="600"
    )
    await process_page_message(plan.to_json().decode(), "m-plan", services=services, remaining=lambda: 40.0)
    [(_, continuations)] = sent
    assert isinstance(continuations, PageRanges)
    assert all(r.seq >= 1 for r in continuations.ranges)
    # When every rate slot is a minute away and an invocation with 20 s left runs them: none reads a page
    await rate_slots_a_minute_away(services)
    sent.clear()
    outcome = await process_page_message(
        continuations.to_json().decode(), "m-next", services=services, remaining=lambda: 20.0
    )
    # Then each commits its empty step and they hand on as one message, at once
    assert outcome == ",".join(["step"] * len(continuations.ranges))
    assert [(delay, type(m)) for delay, m in sent] == [(0, PageRanges)]
    [(_, handed)] = sent
    assert isinstance(handed, PageRanges)
    assert sorted((r.shard, r.seq) for r in handed.ranges) == sorted(
        (r.shard, r.seq + 1) for r in continuations.ranges
    )


async def test_steps_that_their_invocations_time_stops_hand_on_together_not_taken_on(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given a compact run's plan of several ranges whose steps stop only for their invocation's end
    # (1 s hand-off reserve: a step may be taken on with ~3 s left, and a page needs up to 3 s)
    _, services, sent, plan = await compact_plan(
        stack,
        open_services,
        vulnerabilities=1_500,
        PAGE_BUDGET="500",
        STEP_HANDOFF_SECONDS="1",
        VANTA_RATE_LIMIT_PER_MINUTE="600",
    )
    # When an invocation with 8 s runs it
    ends = time.monotonic() + 8.0
    outcome = await process_page_message(
        plan.to_json().decode(), "m-plan", services=services, remaining=lambda: ends - time.monotonic()
    )
    # Then each range reads pages until its time runs low, commits, and the continuations go as one
    # message, at once. Taken on instead, each stopped again before its first request, committed an
    # empty step and went to the queue alone and delayed, to a container of its own for the rest of
    # the run.
    assert outcome == ",".join(["step"] * len(plan.ranges))
    assert [(delay, type(m)) for delay, m in sent] == [(0, PageRanges)], sent
    [(_, handed)] = sent
    assert isinstance(handed, PageRanges)
    assert sorted(r.shard for r in handed.ranges) == sorted(r.shard for r in plan.ranges)
    assert all(r.seq >= 1 for r in handed.ranges)
