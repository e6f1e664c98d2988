"""A targeted resync writes exactly its subset; a second request for a running scope joins that run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vanta_vuln_sync.run.services import Services

from .conftest import Stack
from .drive import deliver_requests, pump

EVENTS = Path(__file__).resolve().parents[2] / "events"


async def test_targeted_resync_writes_exactly_its_subset(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # Given a tenant and the example resync of CRITICAL vulnerabilities
    deployed = await stack(sim={"vulnerabilities": 600, "seed": 4}, PAGE_SIZE="20", PAGE_BUDGET="2")
    services = await open_services()
    deployed.send_request((EVENTS / "sync-request-resync-critical.json").read_text())
    # When the pipeline runs it to the end
    [run_id] = await _run_all(deployed, services)
    # Then exactly the CRITICAL vulnerabilities were written, once each, and nothing else
    written = deployed.records_by_key(run_id)
    assert all("/resource=vulnerabilities/" in key for key in written)
    got = sorted(r["id"] for records in written.values() for r in records)
    expected = sorted(
        r["id"] for r in deployed.sim.dataset.records("vulnerabilities") if r["severity"] == "CRITICAL"
    )
    assert got == expected
    assert len(expected) > 0
    assert deployed.manifest(run_id)["scope"] != "all"


async def test_second_request_for_a_running_scope_joins_that_run(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    deployed = await stack(sim={"vulnerabilities": 300, "seed": 5}, PAGE_SIZE="50")
    services = await open_services()
    request = (EVENTS / "sync-request-full.json").read_text()
    # Given a full sync whose ranges are queued but not yet fetched
    deployed.send_request(request)
    assert await deliver_requests(deployed, services) == ["started"]
    [running] = deployed.run_ids()
    queued = int(
        deployed.sqs.get_queue_attributes(
            QueueUrl=deployed.page_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    # When a second request for the same scope arrives (here: the schedule's)
    deployed.send_request((EVENTS / "schedule-input.json").read_text())
    assert await deliver_requests(deployed, services) == ["joined"]
    # Then no second run and no second set of ranges exists, and the one run completes
    assert deployed.run_ids() == [running]
    assert (
        int(
            deployed.sqs.get_queue_attributes(
                QueueUrl=deployed.page_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
        == queued
    )
    stats = await pump(deployed, services, done=lambda: deployed.last_success("all") == running)
    assert stats.outcomes["succeeded"] == 1
    # And once it is over, the next request starts a new run
    deployed.send_request(request)
    assert await deliver_requests(deployed, services) == ["started"]
    assert len(deployed.run_ids()) == 2


async def _run_all(deployed: Stack, services: Services, runs: int = 1) -> list[str]:
    """Pump until `runs` runs exist and none is running; returns their ids."""

    def finished() -> bool:
        ids = deployed.run_ids()
        return len(ids) >= runs and all(deployed.run_item(r)["status"]["S"] != "running" for r in ids)

    stats = await pump(deployed, services, done=finished)
    assert stats.failures == 0, stats.errors
    ids = deployed.run_ids()
    assert [deployed.run_item(r)["status"]["S"] for r in ids] == ["succeeded"] * len(ids)
    return ids


async def test_incremental_request_syncs_remediations_from_the_last_success_with_a_day_of_overlap(
    stack: Callable[..., Awaitable[Stack]], open_services: Callable[..., Awaitable[Services]]
) -> None:
    # (The tenant's dates are relative to now, so that the last day holds some remediations.)
    deployed = await stack(sim={"vulnerabilities": 400, "seed": 12, "now": datetime.now(UTC)}, PAGE_SIZE="50")
    services = await open_services()
    remediations = (
        '{"v": 1, "type": "SyncRequest", "resources": ["vulnerability-remediations"], "mode": "%s"}'
    )
    # Given a full remediation sync that succeeded
    deployed.send_request(remediations % "full")
    [first] = await _run_all(deployed, services)
    started = datetime.fromisoformat(deployed.run_item(first)["started_at"]["S"].replace("Z", "+00:00"))
    # When an incremental request follows
    deployed.send_request(remediations % "incremental")
    [second] = [r for r in await _run_all(deployed, services, runs=2) if r != first]
    # Then it lists only what was remediated since a day before the first run started
    since = started - timedelta(days=1)
    manifest = deployed.manifest(second)
    assert manifest["mode"] == {"vulnerability-remediations": "incremental"}
    got = sorted(r["id"] for records in deployed.records_by_key(second).values() for r in records)
    expected = sorted(
        r["id"]
        for r in deployed.sim.dataset.records("vulnerability-remediations")
        if r["remediationDate"]
        and datetime.fromisoformat(r["remediationDate"].replace("Z", "+00:00")) >= since
    )
    assert got == expected
    assert 0 < len(got) < len(deployed.sim.dataset.records("vulnerability-remediations"))
