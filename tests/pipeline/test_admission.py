"""Admission control: a cap on concurrent runs, bounded requests, and a plan that a PageRange must be in.

Requests go through `process_sync_request` (what the scheduler handler calls) on moto server and the
simulator; a request beyond the cap raises RunCapReached, so the handler reports its record failed and
SQS delivers it again later: it waits on the queue, never in the DLQ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from vanta_vuln_sync.handlers.records import process_page_message
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.store.state import RUNNING

from .conftest import PlannedRange, Stack
from .drive import deliver_requests, pump

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
EVENTS = Path(__file__).resolve().parents[2] / "events"
FULL_SYNC = (EVENTS / "sync-request-full.json").read_text()


def resync(severity: str, **extra: Any) -> str:
    filters = {"severity": severity, **extra}
    return orjson.dumps(
        {
            "v": 1,
            "type": "SyncRequest",
            "resources": ["vulnerabilities"],
            "filters": {"vulnerabilities": filters},
            "mode": "full",
            "reason": f"resync {severity}",
        }
    ).decode()


def running_runs(stack: Stack) -> list[str]:
    return [r for r in stack.run_ids() if stack.run_item(r)["status"]["S"] == RUNNING]


async def test_resyncs_beyond_the_cap_wait_on_the_queue_and_all_complete_once_slots_free(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    deployed = await stack(sim={"vulnerabilities": 200, "seed": 8}, PAGE_SIZE="50", MAX_CONCURRENT_RUNS="2")
    services = await open_services()
    # Given four resyncs of distinct scopes, sent at once (a loop in a script)
    for severity in SEVERITIES:
        deployed.send_request(resync(severity))
    # When the scheduler takes them
    outcomes = await deliver_requests(deployed, services)
    # Then two runs start and the other two wait on the request queue, none parked
    assert sorted(outcomes) == ["started", "started", "waits", "waits"]
    assert len(running_runs(deployed)) == 2
    assert deployed.dlq_messages(deployed.request_dlq_url) == []
    # and a request identical to a running one still joins it, without a slot
    started_severity = deployed.run_item(running_runs(deployed)[0])["reason"]["S"].removeprefix("resync ")
    deployed.send_request(resync(started_severity))
    # and the scheduled full sync is never held back by resyncs
    deployed.send_request(FULL_SYNC)
    again = await deliver_requests(deployed, services)
    assert sorted(again) == ["joined", "started", "waits", "waits"]
    assert len(running_runs(deployed)) == 3  # two resyncs and the full sync
    # When the fleet works the queues (waiting requests come back each time they are received)
    await pump(
        deployed,
        services,
        done=lambda: (
            all(deployed.last_success(scope) for scope in ("all", *_resync_scopes(deployed)))
            and len(_resync_scopes(deployed)) == 4
        ),
        timeout=120,
    )
    # Then every resync ran exactly once, and nothing was parked
    assert len(deployed.run_ids()) == 5
    assert not running_runs(deployed)
    assert deployed.dlq_messages(deployed.request_dlq_url) == []


def _resync_scopes(stack: Stack) -> set[str]:
    return {stack.run_item(r)["scope"]["S"] for r in stack.run_ids()} - {"all"}


async def test_a_resync_with_outsized_filters_is_poison(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    deployed = await stack(sim={"vulnerabilities": 20}, MAX_FILTER_VALUE_LENGTH="40")
    services = await open_services()
    deployed.send_request(resync("HIGH", q="x" * 41))
    assert await deliver_requests(deployed, services) == ["parked"]
    [parked] = deployed.dlq_messages(deployed.request_dlq_url)
    assert "MAX_FILTER_VALUE_LENGTH" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert deployed.run_ids() == []


@pytest.fixture
def planned_range(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> Callable[..., Awaitable[PlannedRange]]:
    """Factory: `deployed, services, planned = await planned_range(MAX_PAGE_BUDGET="20")` makes a stack of
    50 vulnerabilities with these settings, opens services on it and starts a CRITICAL resync; `planned`
    is the first range of its plan."""

    async def make(**settings: str) -> PlannedRange:
        deployed = await stack(sim={"vulnerabilities": 50}, **settings)
        services = await open_services()
        deployed.send_request(resync("CRITICAL"))
        assert await deliver_requests(deployed, services) == ["started"]
        [run_id] = deployed.run_ids()
        return deployed, services, (await services.store.get_plan(run_id))[0]

    return make


async def test_a_page_range_above_the_page_budget_bound_is_poison(
    planned_range: Callable[..., Awaitable[PlannedRange]],
) -> None:
    deployed, services, planned = await planned_range(MAX_PAGE_BUDGET="20")
    requests_before = deployed.sim.counters.requests
    greedy = replace(planned, page_budget=21)
    outcome = await process_page_message(
        greedy.to_json().decode(), "m-1", services=services, remaining=lambda: 900.0
    )
    assert outcome == "parked"
    [parked] = deployed.dlq_messages(deployed.page_dlq_url)
    assert "MAX_PAGE_BUDGET" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert deployed.sim.counters.requests == requests_before  # nothing fetched for it


async def test_a_page_range_for_a_shard_outside_its_run_plan_is_poison_and_counts_nothing(
    planned_range: Callable[..., Awaitable[PlannedRange]],
) -> None:
    deployed, services, planned = await planned_range()
    stranger = replace(planned, shard="not-planned", offset=None, end_offset=None, cursor=None)
    outcome = await process_page_message(
        stranger.to_json().decode(), "m-1", services=services, remaining=lambda: 900.0
    )
    assert outcome == "parked"
    [parked] = deployed.dlq_messages(deployed.page_dlq_url)
    assert "not in the plan" in parked["MessageAttributes"]["reason"]["StringValue"]
    run = deployed.run_item(planned.run_id)
    assert run["status"]["S"] == RUNNING
    assert int(run["ranges_done"]["N"]) == 0
    assert "finalize_sent" not in run


async def test_the_planned_first_step_still_runs(
    planned_range: Callable[..., Awaitable[PlannedRange]],
) -> None:
    _, services, planned = await planned_range()
    outcome = await process_page_message(
        planned.to_json().decode(), "m-1", services=services, remaining=lambda: 900.0
    )
    assert outcome == "step"
