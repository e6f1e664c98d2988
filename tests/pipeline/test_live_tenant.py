"""A sync stays exact while Vanta's lists change under it (the simulator's churn mode).

The guarantee, checked against the simulator's ground truth record by record: every record present for
the whole sync is in raw/ exactly once, one added or removed during it at most once, no id twice, the
manifest and stats.json count exactly what raw/ holds; and a run that could not keep this says so.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from .conftest import Stack
from .drive import ThreadedDriver

RESOURCES = ("vulnerabilities", "vulnerability-remediations")
REQUEST = orjson.dumps(
    {"v": 1, "type": "SyncRequest", "resources": list(RESOURCES), "mode": "full", "reason": "churn test"}
)
SCOPE = "vulnerabilities,vulnerability-remediations"


def sync(deployed: Stack, *, workers: int = 2, timeout: float = 150) -> str:
    deployed.send_request(REQUEST)
    driver = ThreadedDriver(deployed, workers=workers)

    def finished() -> bool:
        runs = deployed.run_ids()
        return bool(runs) and deployed.run_item(runs[0])["status"]["S"] != "running"

    driver.run_until(finished, timeout)
    [run_id] = deployed.run_ids()
    assert deployed.run_item(run_id)["status"]["S"] == "succeeded"
    return run_id


def assert_guarantee_holds(deployed: Stack, run_id: str) -> None:
    written = deployed.records_by_key(run_id)
    manifest = deployed.manifest(run_id)
    assert sorted(o["key"] for o in manifest["objects"]) == sorted(written)
    for resource in RESOURCES:
        got = Counter(r["id"] for key, rs in written.items() if f"resource={resource}/" in key for r in rs)
        truth = deployed.sim.dataset.churn_truth(resource)
        twice = [i for i, n in got.items() if n > 1]
        assert not twice, f"{resource}: {len(twice)} ids written twice"
        missing = truth.stable - set(got)
        assert not missing, f"{resource}: {len(missing)} records present all along are missing"
        unknown = set(got) - truth.stable - truth.transient
        assert not unknown, f"{resource}: {len(unknown)} ids that never existed"
        assert manifest["records"][resource] == sum(got.values())
    assert manifest["exact"] is True, manifest["warnings"]
    stats = deployed.get_json(f"runs/{run_id}/stats.json")
    assert stats["run"]["exact"] is True
    assert stats["run"]["records"]["vulnerabilities"] == manifest["records"]["vulnerabilities"]


@pytest.mark.exactness
@pytest.mark.parametrize("cursor_style", ["arrayconnection", "opaque"])
async def test_every_record_present_all_along_is_written_once_while_the_list_changes_every_5_requests(
    stack: Callable[..., Awaitable[Stack]], cursor_style: str
) -> None:
    # Given a tenant that loses one record and gains one every 5 list requests, with 5xx and cut bodies
    deployed = await stack(
        sim={
            "vulnerabilities": 1_500,
            "remediations": 600,
            "cursor_style": cursor_style,
            "seed": 5,
            "error_rate": 0.03,
            "truncate_rate": 0.03,
        },
        PAGE_SIZE="25",
        PAGE_BUDGET="8",
    )
    deployed.sim.churn(every=5, delete=1, insert=1, reset_truth=True)
    # When a full sync of both lists runs
    run_id = await asyncio.to_thread(sync, deployed)
    # Then the guarantee holds, and the tenant really changed during it
    assert deployed.sim.churn_status()["events"] >= 15
    assert_guarantee_holds(deployed, run_id)


@pytest.mark.slow  # 20,000 records twice: `nox -s chaos` runs it (after the full chaos suite)
@pytest.mark.parametrize("cursor_style", ["arrayconnection", "opaque"])
async def test_a_burst_of_100_removals_and_100_additions_mid_sync_loses_no_record(
    stack: Callable[..., Awaitable[Stack]], cursor_style: str
) -> None:
    # Given 20,000 vulnerabilities, and a burst of 100 + 100 changes once the sync is well under way
    deployed = await stack(
        sim={"vulnerabilities": 20_000, "remediations": 2_000, "cursor_style": cursor_style, "seed": 6},
        PAGE_BUDGET="20",
    )
    deployed.sim.churn(reset_truth=True)
    deployed.sim.burst(delete=100, insert=100, after_requests=120, resource="vulnerabilities")
    # When the sync runs
    run_id = await asyncio.to_thread(sync, deployed)
    # Then the burst happened during it and the guarantee holds
    assert deployed.sim.churn_status()["deleted"] == 100
    assert_guarantee_holds(deployed, run_id)


async def test_a_burst_too_large_to_repair_flags_the_run_instead_of_publishing_it_as_exact(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    # Given offset ranges of pages of 10 (a range steps back at most ten pages), and 600 of 1,200
    # records removed between two pages
    deployed = await stack(
        sim={"vulnerabilities": 1_200, "remediations": 50, "seed": 7}, PAGE_SIZE="10", PAGE_BUDGET="5"
    )
    deployed.sim.churn(reset_truth=True)
    deployed.sim.burst(delete=600, insert=0, after_requests=60, resource="vulnerabilities")
    # When the sync runs
    run_id = await asyncio.to_thread(sync, deployed)
    # Then the run knows it is not exact, in the manifest, stats.json and the run item
    manifest: dict[str, Any] = deployed.manifest(run_id)
    assert manifest["exact"] is False
    assert manifest["warnings"]
    assert deployed.get_json(f"runs/{run_id}/stats.json")["run"]["exact"] is False
    assert "warnings" in deployed.run_item(run_id)


async def test_a_shard_filter_that_does_not_split_its_list_is_noticed_and_the_list_read_unsplit(
    stack: Callable[..., Awaitable[Stack]],
) -> None:
    # Given opaque cursors (so lists are split by filters) and a Vanta whose remediation severity filter
    # is case-sensitive against the lower-case values its records carry: severity=CRITICAL matches nothing
    deployed = await stack(
        sim={
            "vulnerabilities": 600,
            "remediations": 900,
            "cursor_style": "opaque",
            "seed": 9,
            "remediation_severity_case_sensitive": True,
        },
        PAGE_SIZE="50",
    )
    # When a full sync runs
    run_id = await asyncio.to_thread(sync, deployed)
    # Then the run noticed that the severity filter does not split remediations, and only that
    notices = deployed.manifest(run_id)["notices"]
    assert len(notices) == 1
    assert notices[0].startswith("vulnerability-remediations: the severity filter does not split")
    # And every record of both lists is in raw/ exactly once
    written = deployed.records_by_key(run_id)
    for resource in RESOURCES:
        got = [r["id"] for key, rs in written.items() if f"resource={resource}/" in key for r in rs]
        assert sorted(got) == sorted(r["id"] for r in deployed.sim.dataset.records(resource))
