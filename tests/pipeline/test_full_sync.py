"""A scheduled full sync through both handlers and SQS writes every simulator record exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from .conftest import Stack
from .drive import ThreadedDriver

SCHEDULE_INPUT = (Path(__file__).resolve().parents[2] / "events" / "schedule-input.json").read_text()
RESOURCES = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")


def assert_every_record_exactly_once(stack: Stack, run_id: str) -> None:
    """The run's raw objects hold each simulator record once, and the manifest lists exactly them."""
    written = stack.records_by_key(run_id)
    manifest = stack.manifest(run_id)
    assert sorted(o["key"] for o in manifest["objects"]) == sorted(written)
    for obj in manifest["objects"]:
        assert obj["records"] == len(written[obj["key"]])
    for resource in RESOURCES:
        got = [r["id"] for key, records in written.items() if f"resource={resource}/" in key for r in records]
        expected = [r["id"] for r in stack.sim.dataset.records(resource)]
        duplicates = [i for i, n in Counter(got).items() if n > 1]
        assert not duplicates, f"{resource}: {len(duplicates)} records written twice"
        assert sorted(got) == sorted(expected), f"{resource}: {len(got)} written, {len(expected)} served"
        assert manifest["records"][resource] == len(expected)


@pytest.mark.exactness
@pytest.mark.parametrize("cursor_style", ["arrayconnection", "opaque"])
async def test_scheduled_full_sync_writes_every_record_exactly_once_when_cursors_are(
    stack: Callable[..., Awaitable[Stack]], cursor_style: str
) -> None:
    # Given 5,000 vulnerabilities (plus their remediations and assets) and no rate limit to wait on. The
    # size is not the point (`nox -s chaos` and the demo sync 20,000): what is, every list split into many
    # ranges (offset ranges, or filter shards read in steps of 10 pages when cursors are opaque)
    deployed = await stack(
        sim={"vulnerabilities": 5_000, "cursor_style": cursor_style, "seed": 11}, PAGE_BUDGET="10"
    )
    # When the schedule's SyncRequest goes through the scheduler and two worker containers
    deployed.send_request(SCHEDULE_INPUT)
    driver = ThreadedDriver(deployed, workers=2)
    await asyncio.to_thread(driver.run_until, lambda: deployed.last_success("all") is not None, 120)
    # Then every record is in S3 exactly once, listed by the manifest, and the run succeeded once
    run_id = deployed.last_success("all")
    assert run_id is not None
    assert deployed.run_ids() == [run_id]
    assert deployed.run_item(run_id)["status"]["S"] == "succeeded"
    assert_every_record_exactly_once(deployed, run_id)
    assert deployed.sim.counters.tokens_minted == 1
    assert sum(f.records_failed for f in driver.stats.functions.values()) == 0
